#!/usr/bin/env python3
"""Soak run: an hour of audio through the whole daemon, faster than real time.

    python3 benches/soak.py [--hours 1] [--binary target/release/edgescribe] [--model DIR]

Builds a long recording (spoken commands from tests/fixtures/audio between 1-4 s of quiet room
noise), runs `edgescribe run --input long.wav` (not paced: as fast as the recogniser goes) with the
embedded MQTT broker on a free port and a subscriber counting transcripts, samples the daemon's
resident memory (VmRSS) every second, and reports: RSS after the first minute of audio and at the
end, peak RSS (VmHWM), transcripts published vs received, panics in the log, exit status.
Pass: no RSS growth beyond noise (end at most 10 % above early), zero panics, every transcript received.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests/fixtures/audio"
SPEECH = ["eng_lights.wav", "fra_volets.wav", "deu_heizung.wav", "spa_musica.wav"]


def read(name: str) -> np.ndarray:
    with wave.open(str(AUDIO / name)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def long_recording(path: Path, seconds: float, rng) -> int:
    clips = [read(n) for n in SPEECH]
    n_total = int(seconds * 16000)
    utterances = 0
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        written = 0
        while written < n_total:
            gap = (rng.standard_normal(int(rng.uniform(1.0, 4.0) * 16000)) * 10).astype("<i2")
            clip = clips[utterances % len(clips)]
            w.writeframes(gap.tobytes() + clip.tobytes())
            written += len(gap) + len(clip)
            utterances += 1
        tail = (rng.standard_normal(16000 * 2) * 10).astype("<i2")
        w.writeframes(tail.tobytes())
    return utterances


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def subscribe(port: int, counts: dict, stop: threading.Event) -> subprocess.Popen:
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                            "-t", "edgescribe/soak/transcript", "-i", "soak-sub"],
                           stdout=subprocess.PIPE, text=True)

    def pump():
        for line in sub.stdout:
            seq = json.loads(line)["seq"]
            counts["seqs"].add(seq)
    threading.Thread(target=pump, daemon=True).start()
    return sub


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--binary", type=Path, default=ROOT / "target/release/edgescribe")
    ap.add_argument("--model", type=Path, default=ROOT / "tests/fixtures/mms-tiny/int8")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wav = tmp / "long.wav"
        seconds = args.hours * 3600
        n_utt = long_recording(wav, seconds, rng)
        port = free_port()
        (tmp / "edgescribe.toml").write_text(
            f'[mqtt]\nembedded_listen = "127.0.0.1:{port}"\ndevice_id = "soak"\nstats_interval_s = 10\n'
            f'[adapters]\ncache_dir = "{tmp / "cache"}"\nsource = ""\n')
        log = open(tmp / "daemon.log", "w+")
        t0 = time.monotonic()
        proc = subprocess.Popen([str(args.binary), "run", "--config", str(tmp / "edgescribe.toml"),
                                 "--model", str(args.model), "--input", str(wav)],
                                stderr=log, env={**os.environ, "RUST_LOG": "warn,edgescribe=info"})
        # The subscriber connects once the embedded broker is up.
        counts = {"seqs": set()}
        stop = threading.Event()
        sub = None
        while sub is None and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                sub = subscribe(port, counts, stop)
            except OSError:
                time.sleep(0.1)
        samples = []  # (wall s, transcripts so far, VmRSS kB)
        while proc.poll() is None:
            rss = status_kb(proc.pid, "VmRSS")
            hwm = status_kb(proc.pid, "VmHWM")
            if rss:
                samples.append((time.monotonic() - t0, len(counts["seqs"]), rss, hwm))
            time.sleep(1.0)
        wall = time.monotonic() - t0
        time.sleep(1.0)
        if sub:
            sub.terminate()
        log.seek(0)
        text = log.read()
    panics = text.count("panicked")
    published = text.count("] transcript #")
    # "Early" = once a minute's worth of utterances is through (model and buffers warmed up).
    early_at = next((s for s in samples if s[1] >= n_utt * 60 / seconds), samples[0] if samples else None)
    end = samples[-1] if samples else None
    print(f"audio: {seconds / 3600:.2f} h, {n_utt} utterances; wall {wall:.0f} s "
          f"({seconds / wall:.0f}x real time); exit {proc.returncode}")
    if early_at and end:
        growth = (end[2] - early_at[2]) / early_at[2] * 100
        print(f"RSS early: {early_at[2] / 1024:.1f} MB (after {early_at[1]} transcripts), "
              f"end: {end[2] / 1024:.1f} MB ({growth:+.1f} %), peak (VmHWM): {end[3] / 1024:.1f} MB")
    else:
        growth = float("inf")
    print(f"transcripts published: {published}, received by the subscriber: {len(counts['seqs'])}; "
          f"panics: {panics}")
    ok = proc.returncode == 0 and panics == 0 and growth <= 10 and len(counts["seqs"]) == published
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
