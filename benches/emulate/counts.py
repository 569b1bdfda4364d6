"""Reading the plugins' output, and the per-run difference (count with --runs 3 minus count with --runs 1,
halved) that leaves out loading the model and everything else done once per process."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

CLASSES = ("dot", "simd", "mem", "other")


@dataclass
class Counts:
    """One emulated process: its classes (shared plugin), and per block and per mnemonic (tbcount)."""
    classes: dict[str, int]
    blocks: Counter = field(default_factory=Counter)  # block address -> instructions executed there
    block_classes: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # per execution
    mnemonics: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.classes["total"]


def read_classes(path: Path) -> dict[str, int]:
    """`total=N dot=N simd=N mem=N other=N`, the shared plugin's first line."""
    first = path.read_text().splitlines()[0]
    values = dict(item.split("=", 1) for item in first.split())
    missing = [k for k in ("total",) + CLASSES if k not in values]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} in {first!r}")
    return {k: int(values[k]) for k in ("total",) + CLASSES}


def read_blocks(path: Path, counts: Counts) -> None:
    """tbcount's `tb VADDR EXECS INSNS DOT SIMD MEM OTHER` and `mnem NAME COUNT` lines."""
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[0] == "tb":
            vaddr, execs, insns = int(parts[1], 16), int(parts[2]), int(parts[3])
            counts.blocks[vaddr] += execs * insns
            per_class = tuple(int(x) for x in parts[4:8])
            old = counts.block_classes.get(vaddr, (0, 0, 0, 0))
            counts.block_classes[vaddr] = tuple(o + execs * n for o, n in zip(old, per_class))
        elif parts[0] == "mnem":
            counts.mnemonics[parts[1]] += int(parts[2])


def read(class_file: Path, block_file: Path) -> Counts:
    counts = Counts(read_classes(class_file))
    read_blocks(block_file, counts)
    block_total = sum(counts.blocks.values())
    # Both plugins watched the same process: a difference means one of them lost or misread blocks.
    by_class = [sum(c[i] for c in counts.block_classes.values()) for i in range(len(CLASSES))]
    if block_total != counts.total or by_class != [counts.classes[k] for k in CLASSES]:
        raise ValueError(f"{block_file}: {block_total} instructions {by_class} counted by block, "
                         f"{counts.classes} by the class counter")
    return counts


@dataclass
class PerRun:
    """Instructions of one transcription: (runs=3 - runs=1) / 2, by class, mnemonic and block."""
    classes: dict[str, float]
    mnemonics: dict[str, float]
    blocks: dict[int, float]
    block_classes: dict[int, tuple[float, ...]]
    once: float  # what the process did besides the runs: load, warm-up, exit (runs=1 minus one run)

    @property
    def total(self) -> float:
        return self.classes["total"]


def _diff(a: dict, b: dict) -> dict:
    return {k: (b.get(k, 0) - a.get(k, 0)) / 2 for k in set(a) | set(b)}


def per_run(one: Counts, three: Counts) -> PerRun:
    classes = _diff(one.classes, three.classes)
    blocks = {k: v for k, v in _diff(one.blocks, three.blocks).items() if v}
    block_classes = {}
    for k in set(one.block_classes) | set(three.block_classes):
        a = one.block_classes.get(k, (0, 0, 0, 0))
        b = three.block_classes.get(k, (0, 0, 0, 0))
        diff = tuple((y - x) / 2 for x, y in zip(a, b))
        if any(diff):
            block_classes[k] = diff
    return PerRun(classes, _diff(one.mnemonics, three.mnemonics), blocks, block_classes,
                  one.total - classes["total"])
