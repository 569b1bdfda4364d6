#!/usr/bin/env python3
"""What listening costs when nobody speaks: capture thread + ring + VAD, paced in real time.

    python3 benches/idle_cost.py [--seconds 60] [--binary target/release/edgescribe]

Runs `edgescribe listen --input quiet.wav --realtime` on a recording of a quiet room (noise at about
-70 dBFS) and reports the process's CPU time (user + system, from the kernel's rusage) over the wall time,
as a percentage of one core. Target: < 1 %.
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
    ap.add_argument("--binary", type=Path, default=ROOT / "target/release/edgescribe")
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    n = int(16000 * args.seconds)
    quiet = (rng.standard_normal(n) * 10).astype("<i2")  # ~ -70 dBFS
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quiet.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(quiet.tobytes())
        t0 = time.monotonic()
        proc = subprocess.Popen([str(args.binary), "listen", "--input", str(path), "--realtime"],
                                stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("idle_cost: edgescribe listen failed")
    cpu = usage.ru_utime + usage.ru_stime
    utterances = len(out.strip().splitlines()) if out.strip() else 0
    print(f"{args.seconds:.0f} s of quiet room in real time: wall {wall:.1f} s, CPU {cpu:.3f} s "
          f"= {100 * cpu / wall:.3f} % of one core (includes start-up and reading the file), "
          f"{utterances} false utterance(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
