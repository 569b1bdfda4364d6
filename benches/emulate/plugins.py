"""Builds the two qemu plugins: the shared class counter (../shared/tools/qemu-insn/, through its own
build.sh) and this package's per-block counter (tbcount.c), compiled against the plugin header that
build.sh fetched for the installed qemu."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SHARED_TOOL = ROOT.parent / "shared/tools/qemu-insn"


def build(cache: Path) -> tuple[Path, Path]:
    """Returns (class counter, block counter); rebuilds the block counter when its source is newer."""
    build_sh = SHARED_TOOL / "build.sh"
    if not build_sh.exists():
        raise SystemExit(f"emulate: {build_sh} missing: the shared qemu-insn tool is expected at "
                         "../shared/tools/qemu-insn beside the repository")
    out = cache / "qemu-insn"
    done = subprocess.run(["bash", str(build_sh), str(out)], check=True, stdout=subprocess.PIPE, text=True)
    insncount = Path(done.stdout.strip().splitlines()[-1])
    header_dir = insncount.parent
    tbcount = cache / "libtbcount.so"
    source = HERE / "tbcount.c"
    if not tbcount.exists() or tbcount.stat().st_mtime < source.stat().st_mtime:
        glib = subprocess.run(["pkg-config", "--cflags", "--libs", "glib-2.0"], check=True,
                              stdout=subprocess.PIPE, text=True).stdout.split()
        cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{header_dir}",
               str(source), "-o", str(tbcount)] + glib
        print(f"emulate: {' '.join(cmd)}", file=sys.stderr)
        subprocess.run(cmd, check=True)
    return insncount, tbcount
