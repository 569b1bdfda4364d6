"""Tables (markdown, to stdout) and JSON of the emulated counts."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import counts, symbols

ENGINE_ORDER = {"ort": 0, "stock": 1, "all": 2}


@dataclass
class Result:
    cpu: str
    model: Path
    size: str
    threads: int
    engine: str  # ort / stock / all
    name: str    # as the engine reports itself
    run: counts.PerRun
    groups: dict[str, list[float]] | None
    functions: dict[str, list[float]] | None


def size_label(model: Path) -> str:
    """300M / 1B from the architecture, as bench.py labels them; anything else by its shape."""
    arch = json.loads((model / "manifest.json").read_text())["architecture"]
    shape = (arch["num_hidden_layers"], arch["hidden_size"])
    return {(24, 1024): "300M", (48, 1280): "1B"}.get(shape, f"{shape[0]}x{shape[1]}")


def collect(done: list, table: symbols.SymbolTable | None, binary: Path) -> list[Result]:
    by_key: dict[tuple, dict[int, tuple]] = {}
    for job, c, result, log in done:
        key = (job.cpu, job.model, job.threads, job.engine)
        by_key.setdefault(key, {})[job.runs] = (c, result, log)
    results = []
    for (cpu, model, threads, engine), runs in by_key.items():
        (one, _, log1), (three, result, _) = runs[1], runs[3]
        run = counts.per_run(one, three)
        groups = functions = None
        if engine != "ort" and table is not None and log1 is not None:
            base = symbols.load_base(log1, binary)
            functions = symbols.by_function(run.blocks, run.block_classes, table, base)
            groups = symbols.by_group(functions)
        name = result["engine"] if engine != "all" else "edgescribe"
        results.append(Result(cpu, model, size_label(model), threads, engine, name, run, groups, functions))
    results.sort(key=lambda r: (r.cpu, r.size, r.threads, ENGINE_ORDER[r.engine]))
    return results


def giga(x: float, scale: float | None = None) -> str:
    """G as in issue #26's table; small models' counts in M so that they keep three digits. `scale`: the
    largest figure of the table, so that one table keeps one unit."""
    return f"{x / 1e9:.2f} G" if abs(scale if scale is not None else x) >= 1e9 else f"{x / 1e6:.1f} M"


def _configs(results: list[Result]) -> dict[tuple, list[Result]]:
    out: dict[tuple, list[Result]] = {}
    for r in results:
        out.setdefault((r.cpu, r.size, r.threads), []).append(r)
    return out


def print_tables(results: list[Result], seconds: float, top: int) -> None:
    print(f"Instructions per run under qemu-user ({seconds:g} s of audio; (--runs 3 - --runs 1) / 2): "
          "counted, not timed.")
    for (cpu, size, threads), rows in _configs(results).items():
        ort = next((r for r in rows if r.engine == "ort"), None)
        print(f"\n| {size}, emulated {cpu}, {threads} thread(s) | total | SDOT/UDOT | other SIMD | load/store "
              f"| other | vs onnxruntime |")
        print("|---|---|---|---|---|---|---|")
        scale = max(r.run.total for r in rows)
        for r in rows:
            c = r.run.classes
            dot = "–" if not c["dot"] else f"{giga(c['dot'], scale)} ({100 * c['dot'] / c['total']:.0f}%)"
            ratio = f"{c['total'] / ort.run.total:.2f}x" if ort else "–"
            print(f"| {r.name} | {giga(c['total'], scale)} | {dot} | {giga(c['simd'], scale)} | "
                  f"{giga(c['mem'], scale)} | {giga(c['other'], scale)} | {ratio} |")
        if top:
            print()
            for r in rows:
                mnems = sorted(r.run.mnemonics.items(), key=lambda kv: -kv[1])[:top]
                print(f"- most executed, {r.name}: " + ", ".join(f"`{m}` {n / 1e6:.0f}M" for m, n in mnems))
        for r in rows:
            if r.groups:
                print_ops(r, top)


def print_ops(r: Result, top: int) -> None:
    total = r.run.total
    print(f"\nPer op, {r.name}, {r.size}, {r.cpu}, {r.threads} thread(s) (by function, grouped; "
          f"the classes are per run too):\n")
    print("| op group | instructions | share | SDOT/UDOT | other SIMD | load/store | other |")
    print("|---|---|---|---|---|---|---|")
    for group, row in sorted(r.groups.items(), key=lambda kv: -kv[1][0]):
        if row[0] >= 0.001 * total:
            g = [giga(x, total) for x in row]
            print(f"| {group} | {g[0]} | {100 * row[0] / total:.1f}% | {g[1]} | {g[2]} | {g[3]} | {g[4]} |")
    if top:
        print()
        for name, row in sorted(r.functions.items(), key=lambda kv: -kv[1][0])[:top]:
            print(f"- {100 * row[0] / total:.1f}% `{name[:110]}`")


def as_json(results: list[Result], top: int) -> list[dict]:
    out = []
    for r in results:
        item = dict(cpu=r.cpu, model=str(r.model), size=r.size, threads=r.threads, engine=r.name,
                    per_run=r.run.classes, once=r.run.once,
                    mnemonics=dict(sorted(r.run.mnemonics.items(), key=lambda kv: -kv[1])[:max(top, 30)]))
        if r.groups:
            item["groups"] = r.groups
            item["functions"] = dict(sorted(r.functions.items(), key=lambda kv: -kv[1][0])[:max(top, 50)])
        out.append(item)
    return out
