"""From block addresses to functions, and from functions to ops.

The load address: qemu-user maps a position-independent executable at a base of its choosing and, with
`-d page`, logs `start_code`, the guest address of the lowest executable segment. base = start_code -
that segment's p_vaddr. Blocks outside the executable (libc's memcpy/memset, libm, ld.so) are counted
as one line: their libraries are mapped where the guest's ld.so puts them, which qemu does not log.

Functions are the executable's symbols (`nm`): with LTO, inlined code is counted in the function it was
inlined into, so an op's share can appear under its caller. The op groups are patterns over demangled
names, written from the symbols of tract 0.23.9 and edgescribe; a function that no pattern claims is
counted under "other", never dropped.
"""
from __future__ import annotations

import bisect
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

# (group, pattern): the first match wins, so specific patterns come before general ones.
GROUPS = (
    ("int8 matmul kernel (tract-linalg, asm)", r"arm64simd_mmm_i32|mmm_i32_|arm64.*_i8|qmmm|non_linear_addc_i32"),
    ("f32/f16 matmul kernel (tract-linalg, asm)", r"arm64(simd|fp16)_mmm_f(32|16)|mmm_f32"),
    ("im2col", r"[Ii]m2col"),
    ("packing (matmul inputs)", r"[Pp]ack(er|ing|ed)?\b|::pack|pack_"),
    ("softmax", r"[Ss]oftmax"),
    ("layer norm / reductions", r"[Ll]ayer_?[Nn]orm|[Rr]educe|[Rr]educer"),
    ("(de)quantise, casts", r"[Qq]uant|[Cc]ast|lookup_table|[Ss]cale"),
    ("element-wise kernels (tract-linalg)", r"^tract_linalg::|arm64simd_|arm64fp16_"),
    ("element-wise and other ops (tract-core, ndarray)", r"^tract_core::ops::|ndarray::"),
    ("graph runner, shapes (tract)", r"^tract_(core|data|hir|onnx|nnef)::"),
    ("allocator (jemalloc)", r"je_|jemalloc|^_rjem"),
    ("thread pool (rayon, crossbeam)", r"rayon|crossbeam|parking_lot|futex"),
    ("edgescribe (features, decoding)", r"^edgescribe::"),
    ("Rust std / core", r"^(core|alloc|std)::|^<(core|alloc|std)::"),
)
_COMPILED = tuple((name, re.compile(pattern)) for name, pattern in GROUPS)
OUTSIDE = "outside the executable (libc, libm, ld.so)"
HASH = re.compile(r"::h[0-9a-f]{16}$")


ACCEL = re.compile(r"^<?tract_accel::optimize::([a-z0-9_]+)")


def group_of(function: str) -> str:
    # Our own ops by their module (tract-accel's passes: one module per op).
    accel = ACCEL.search(function)
    if accel:
        return f"tract-accel {accel.group(1)}"
    for name, pattern in _COMPILED:
        if pattern.search(function):
            return name
    return "other"


def load_base(qemu_log: Path, binary: Path) -> int:
    """The executable's load bias, from qemu's `-d page` log and the ELF program headers."""
    start_code = None
    for line in qemu_log.read_text(errors="replace").splitlines():
        if line.startswith("start_code"):
            start_code = int(line.split()[1], 16)
            break
    if start_code is None:
        raise ValueError(f"{qemu_log}: no start_code line (was qemu run with -d page?)")
    headers = subprocess.run([_tool("readelf"), "-lW", str(binary)], check=True, stdout=subprocess.PIPE,
                             text=True).stdout
    exec_vaddrs = [int(f[2], 16) for f in (line.split() for line in headers.splitlines())
                   if len(f) >= 8 and f[0] == "LOAD" and "E" in "".join(f[6:-1])]
    if not exec_vaddrs:
        raise ValueError(f"{binary}: no executable LOAD segment")
    return start_code - min(exec_vaddrs)


def _tool(name: str) -> str:
    cross = f"aarch64-linux-gnu-{name}"
    return cross if shutil.which(cross) else name


@dataclass
class SymbolTable:
    starts: list[int]
    ends: list[int]
    names: list[str]

    def lookup(self, addr: int) -> str | None:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.ends[i]:
            return self.names[i]
        return None


def read_symbols(binary: Path) -> SymbolTable | None:
    """Text symbols, demangled, hashes removed; None for a stripped binary. tract-linalg's assembly
    kernels have no size (no `.size` directive): they extend to the next symbol."""
    done = subprocess.run([_tool("nm"), "-C", "-S", "--defined-only", str(binary)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    rows = []
    for line in done.stdout.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            rows.append((int(parts[0], 16), int(parts[1], 16), HASH.sub("", parts[3])))
        elif len(parts) == 3 and parts[1] in "tTwW":  # no size column
            rows.append((int(parts[0], 16), 0, HASH.sub("", parts[2])))
    if not rows:
        return None
    rows.sort()
    # An assembly kernel's local labels (".packed_packed_loop_1", ".q_scale"...) are named after the
    # kernel they are in: the inner loop and the tile's epilogue then show apart.
    enclosing = ""
    for i, (start, size, name) in enumerate(rows):
        if name.startswith("."):
            rows[i] = (start, size, f"{enclosing} {name}")
        else:
            enclosing = name
    starts = sorted({r[0] for r in rows})
    ends = []
    for start, size, _ in rows:
        later = bisect.bisect_right(starts, start)
        ends.append(start + size if size else (starts[later] if later < len(starts) else start + 4))
    return SymbolTable([r[0] for r in rows], ends, [r[2] for r in rows])


def by_function(blocks: dict[int, float], block_classes: dict[int, tuple[float, ...]], table: SymbolTable,
                base: int) -> dict[str, list[float]]:
    """function -> [instructions, dot, simd, mem, other] per run."""
    out: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    for addr, n in blocks.items():
        name = table.lookup(addr - base) or OUTSIDE
        row = out[name]
        row[0] += n
        for i, c in enumerate(block_classes.get(addr, (0, 0, 0, 0))):
            row[1 + i] += c
    return dict(out)


def by_group(functions: dict[str, list[float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    for name, row in functions.items():
        group = OUTSIDE if name == OUTSIDE else group_of(name)
        out[group] = [a + b for a, b in zip(out[group], row)]
    return dict(out)
