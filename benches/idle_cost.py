#!/usr/bin/env python3
"""What listening costs when nobody speaks: capture thread + ring + VAD, paced in real time.

    python3 benches/idle_cost.py [--seconds 60] [--levels -70,-45] [--binary target/release/edgescribe]

For each level, runs `edgescribe listen --input room.wav --realtime` on a recording of a room with no
speech in it (white noise at that level in dBFS: -70 a quiet room, -45 a loud fan) and reports the
process's CPU time (user + system, from the kernel's rusage) over the wall time, as a percentage of one
core, and the utterances it found (all false). Target: < 1 %.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--levels", default="-70,-45", help="noise levels in dBFS, comma-separated")
    ap.add_argument("--binary", type=Path, default=None)
    args = ap.parse_args()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = args.binary or target / "release/edgescribe"
    failed = False
    for level_dbfs in (float(v) for v in args.levels.split(",")):
        failed |= not measure(binary, args.seconds, level_dbfs)
    return 1 if failed else 0


def measure(binary: Path, seconds: float, level_dbfs: float) -> bool:
    rng = np.random.default_rng(3)
    n = int(16000 * seconds)
    # dBFS with a full-scale sine at 0: RMS = 32767 * 10^(dB/20) / sqrt(2) (-70 dBFS: about 7 LSB).
    rms = 32767 * 10 ** (level_dbfs / 20) / np.sqrt(2)
    quiet = np.round(rng.standard_normal(n) * rms).astype("<i2")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quiet.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(quiet.tobytes())
        t0 = time.monotonic()
        proc = subprocess.Popen([str(binary), "listen", "--input", str(path), "--realtime"],
                                stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"idle_cost: edgescribe listen failed at {level_dbfs} dBFS", file=sys.stderr)
        return False
    cpu = usage.ru_utime + usage.ru_stime
    utterances = len(out.strip().splitlines()) if out.strip() else 0
    print(f"{seconds:.0f} s of a room at {level_dbfs:.0f} dBFS in real time: wall {wall:.1f} s, "
          f"CPU {cpu:.3f} s = {100 * cpu / wall:.3f} % of one core (includes start-up and reading the "
          f"file), {utterances} false utterance(s)", flush=True)
    return True


if __name__ == "__main__":
    sys.exit(main())
