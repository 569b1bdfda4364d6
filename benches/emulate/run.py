"""`bench.py --emulate CPU`: onnxruntime, stock tract and edgescribe on an emulated Cortex-A72 (Pi 4) or
Cortex-A76 (Pi 5), counting the instructions each executes per transcription under qemu-user.

Every engine runs twice per configuration, with --runs 1 and --runs 3 (each after one warm-up run), with
both plugins loaded: per run = (count with 3 - count with 1) / 2, so loading and start-up cancel out.
Same audio (the harness's deterministic noise), same CPU description (prefix.py) for all engines.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import counts, plugins, prefix, report, symbols

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH_PY = ROOT / "benches/bench.py"
ENGINES = ("ort", "stock", "all")
RUNS = (1, 3)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench.py --emulate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emulate", action="append", required=True, choices=sorted(prefix.CPUS),
                    help="emulated core (repeat for both)")
    ap.add_argument("--model", action="append", required=True, type=Path, help="model directory (repeatable)")
    ap.add_argument("--threads", action="append", type=int, help="inference threads (repeatable; default 1)")
    ap.add_argument("--seconds", type=float, default=1.0, help="audio length (default 1 s, as issue #26)")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="comma-separated subset of ort (onnxruntime), stock (tract alone), all (edgescribe)")
    ap.add_argument("--lang")
    ap.add_argument("--binary", type=Path, help="aarch64 edgescribe to run (default: build one, with symbols)")
    ap.add_argument("--cache", type=Path, default=ROOT / "target/emulate",
                    help="prefix, plugins, build and raw counts (default target/emulate)")
    ap.add_argument("--jobs", type=int, default=1, help="emulated processes at a time, 1-16 (default 1)")
    ap.add_argument("--top", type=int, default=8, help="mnemonics and functions listed, 0-100 (default 8)")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    ap.add_argument("--reuse", action="store_true",
                    help="take a configuration's counts from an earlier invocation when its inputs (binary, "
                         "model, audio length, prefix, plugins) are the same, instead of emulating it again")
    args = ap.parse_args(argv)
    args.threads = args.threads or [1]
    args.engines = [e for e in args.engines.split(",") if e]
    bad = [e for e in args.engines if e not in ENGINES]
    if bad:
        ap.error(f"--engines: unknown {', '.join(bad)} (choose from {', '.join(ENGINES)})")
    if not 1 <= args.jobs <= 16:
        ap.error("--jobs must be 1 to 16")
    if not 0 <= args.top <= 100:
        ap.error("--top must be 0 to 100")
    if not 0.1 <= args.seconds <= 60:
        ap.error("--seconds must be 0.1 to 60")
    if any(not 1 <= t <= 256 for t in args.threads):
        ap.error("--threads must be 1 to 256")
    return args


def build_binary(cache: Path) -> Path:
    """The release build for aarch64 with its symbols kept (the per-op view needs them; the code is the
    same as the stripped release's), in its own target directory so that it never rebuilds, or is
    rebuilt by, anyone's `cargo build --release` in target/."""
    target_dir = cache / "cargo"
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir), CARGO_PROFILE_RELEASE_STRIP="false")
    cmd = ". cross/env.sh && nice cargo build --release --locked --target aarch64-unknown-linux-gnu"
    print(f"emulate: {cmd} (CARGO_TARGET_DIR={target_dir})", file=sys.stderr)
    subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, check=True)
    return target_dir / "aarch64-unknown-linux-gnu/release/edgescribe"


@dataclass(frozen=True)
class Job:
    cpu: str
    model: Path
    threads: int
    engine: str
    runs: int


def inputs_key(job: Job, ctx: dict) -> str:
    """What a job's counts depend on, for --reuse: the files by content (the shared plugin is rebuilt,
    with a new modification time, by every invocation)."""
    def digest(p: Path | None) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p else ""
    return json.dumps([job.cpu, str(job.model), job.threads, job.engine, job.runs, ctx["seconds"], ctx["lang"],
                       digest(ctx["binary"]) if job.engine != "ort" else "", digest(job.model / "manifest.json"),
                       digest(ctx["prefixes"][job.cpu] / "stamp.json"), digest(ctx["insncount"]),
                       digest(ctx["tbcount"]), digest(BENCH_PY)])


def run_job(job: Job, ctx: dict, out_dir: Path) -> tuple[Job, counts.Counts, dict, Path | None]:
    """One emulated process with both plugins; returns its counts, its JSON report and its qemu log."""
    # The path's digest too: two models may have the same directory name.
    model_tag = hashlib.sha256(str(job.model).encode()).hexdigest()[:8]
    name = f"{job.cpu}-{job.model.name}-{model_tag}-t{job.threads}-{job.engine}-r{job.runs}"
    class_file, block_file, log = (out_dir / f"{name}.{ext}" for ext in ("classes", "blocks", "qemu.log"))
    key_file, result_file = out_dir / f"{name}.key", out_dir / f"{name}.json"
    key = inputs_key(job, ctx)
    if ctx["reuse"] and key_file.exists() and key_file.read_text() == key:
        print(f"emulate: {name}: counts of an earlier run with the same inputs", file=sys.stderr)
        return (job, counts.read(class_file, block_file), json.loads(result_file.read_text()),
                None if job.engine == "ort" else log)
    key_file.unlink(missing_ok=True)
    pfx = ctx["prefixes"][job.cpu]
    qemu = ["qemu-aarch64", "-cpu", job.cpu, "-L", str(pfx),
            "-plugin", f"{ctx['insncount']},out={class_file}", "-plugin", f"{ctx['tbcount']},out={block_file}"]
    common = ["--model", str(job.model), "--wav", str(ctx["wav"]), "--runs", str(job.runs),
              "--threads", str(job.threads)] + (["--lang", ctx["lang"]] if ctx["lang"] else [])
    if job.engine == "ort":
        # No spinning: an idle worker's spin loop executes instructions for as long as the host makes it
        # wait, which would count the machine's load, not the engine's work.
        cmd = qemu + ["-E", f"PYTHONPATH={prefix.site_dir(pfx)}", "-E", "PYTHONNOUSERSITE=1",
                      str(prefix.python(pfx)), str(BENCH_PY), "--ort-child", "--ort-no-spin"] + common
        qemu_log = None
    else:
        qemu_log = log
        cmd = qemu[:1] + ["-d", "page", "-D", str(log)] + qemu[1:] + [str(ctx["binary"]), "bench",
                                                                      "--passes", job.engine] + common
    t0 = time.monotonic()
    with open(out_dir / f"{name}.stderr", "w") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    if done.returncode != 0:
        tail = (out_dir / f"{name}.stderr").read_text()[-2000:]
        raise SystemExit(f"emulate: {name} failed ({done.returncode}):\n{' '.join(cmd)}\n{tail}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    c = counts.read(class_file, block_file)
    result_file.write_text(json.dumps(result))
    key_file.write_text(key)
    print(f"emulate: {name}: {c.total / 1e9:.2f} G instructions, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return job, c, result, qemu_log


def main(argv: list[str], write_test_audio) -> int:
    args = parse_args(argv)
    cache = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    insncount, tbcount = plugins.build(cache)
    binary, table = None, None
    if set(args.engines) & {"stock", "all"}:
        binary = (args.binary or build_binary(cache)).resolve()
        if not binary.exists():
            raise SystemExit(f"emulate: {binary} missing")
        table = symbols.read_symbols(binary)
        if table is None:
            print(f"emulate: {binary} has no symbols: no per-op view", file=sys.stderr)
    prefixes = {cpu: prefix.prepare(cache, prefix.CPUS[cpu]) for cpu in args.emulate}
    jobs = [Job(cpu, model.resolve(), t, engine, runs) for cpu in args.emulate for model in args.model
            for t in args.threads for engine in args.engines for runs in RUNS]
    out_dir = cache / "runs"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "bench.wav"
        write_test_audio(wav, args.seconds)
        ctx = dict(prefixes=prefixes, insncount=insncount, tbcount=tbcount, binary=binary, wav=wav,
                   lang=args.lang, seconds=args.seconds, reuse=args.reuse)
        with ThreadPoolExecutor(args.jobs) as pool:
            done = list(pool.map(lambda j: run_job(j, ctx, out_dir), jobs))
    results = report.collect(done, table, binary)
    report.print_tables(results, args.seconds, args.top)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(results, args.top), indent=1))
    return 0
