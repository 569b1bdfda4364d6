#!/usr/bin/env python3
"""Soak run: an hour of audio through the whole daemon, faster than real time, optionally with faults.

    python3 benches/soak.py [--hours 1] [--binary target/release/edgescribe] [--model DIR]
    python3 benches/soak.py --faults [--restart-every-s 10] [--junk-per-s 20] ...

Builds a long recording (spoken commands from tests/fixtures/audio between 1-4 s of quiet room
noise), runs `edgescribe run --input long.wav` (not paced: as fast as the recogniser goes) with the
embedded MQTT broker on a free port and a subscriber counting transcripts, samples the daemon's
resident memory (VmRSS) every second, and reports: RSS after the first minute of audio and at the
end, peak RSS (VmHWM), transcripts published vs received, panics in the log, exit status.
Pass: no RSS growth beyond noise (end at most 10 % above early), zero panics, every transcript received.

With --faults the broker is a real Mosquitto (with persistence, as installed) that is stopped and
started again every --restart-every-s seconds of wall time, while junk commands arrive on the node's
command topics (unknown languages, random bytes, 2 KB payloads, broken Hermes JSON, and one retained
junk command that the broker hands over again at every reconnect). Pass additionally needs the daemon
never to restart (one process, exit 0) and every transcript received despite the restarts.
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
                            "-t", "edgescribe/soak/transcript", "-i", "soak-sub", "-c"],
                           stdout=subprocess.PIPE, text=True)

    def pump():
        for line in sub.stdout:
            seq = json.loads(line)["seq"]
            counts["seqs"].add(seq)
    threading.Thread(target=pump, daemon=True).start()
    return sub


def start_mosquitto(port: int, workdir: Path) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    # Started as root, mosquitto drops to its own user: it must be able to save its database
    # (subscribers' sessions and their queued messages) there when it stops.
    workdir.chmod(0o777)
    workdir.parent.chmod(0o755)
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {workdir}/\nautosave_interval 0\n")
    log = open(workdir / "broker.log", "a")
    if os.environ.get("SOAK_BROKER_DEBUG"):
        conf.write_text(conf.read_text() + "log_dest stderr\nlog_type all\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


JUNK = [b"klingon", b"\xff\xfe\x00", b"x" * 2048, b"", b"{\"siteId\": 5", b"maybe", b"  ", b"eng" * 400]


def junk_sender(port: int, per_s: float, stop: threading.Event, sent: list) -> None:
    """Junk on the command topics until `stop`; a retained one first."""
    topics = ["edgescribe/soak/set/language", "edgescribe/soak/set/listening"]
    subprocess.run(["mosquitto_pub", "-p", str(port), "-r", "-t", topics[1], "-m", "sometimes"],
                   stderr=subprocess.DEVNULL)
    i = 0
    while not stop.wait(1.0 / per_s):
        payload = JUNK[i % len(JUNK)]
        r = subprocess.run(["mosquitto_pub", "-p", str(port), "-t", topics[i % 2], "-s"],
                           input=payload, stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            sent[0] += 1
        i += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--binary", type=Path, default=ROOT / "target/release/edgescribe")
    ap.add_argument("--model", type=Path, default=ROOT / "tests/fixtures/mms-tiny/int8")
    ap.add_argument("--faults", action="store_true", help="real Mosquitto, restarted, and junk commands")
    ap.add_argument("--restart-every-s", type=float, default=10.0)
    ap.add_argument("--junk-per-s", type=float, default=20.0)
    ap.add_argument("--keep-log", type=Path, help="copy the daemon's log here")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wav = tmp / "long.wav"
        seconds = args.hours * 3600
        n_utt = long_recording(wav, seconds, rng)
        port = free_port()
        broker = None
        if args.faults:
            broker = start_mosquitto(port, tmp / "broker")
            mqtt = f'broker = "mqtt://127.0.0.1:{port}"\nreconnect_max_ms = 2000\n'
        else:
            mqtt = f'embedded_listen = "127.0.0.1:{port}"\n'
        (tmp / "edgescribe.toml").write_text(
            f'[mqtt]\n{mqtt}device_id = "soak"\nstats_interval_s = 10\n'
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
        junk_sent = [0]
        junk = None
        if args.faults:
            junk = threading.Thread(target=junk_sender, args=(port, args.junk_per_s, stop, junk_sent),
                                    daemon=True)
            junk.start()
        restarts = 0
        next_restart = time.monotonic() + args.restart_every_s
        samples = []  # (wall s, transcripts so far, VmRSS kB)
        while proc.poll() is None:
            if broker and time.monotonic() >= next_restart:
                broker.terminate()
                broker.wait()
                time.sleep(1.0)
                broker = start_mosquitto(port, tmp / "broker")
                restarts += 1
                next_restart = time.monotonic() + args.restart_every_s
            rss = status_kb(proc.pid, "VmRSS")
            hwm = status_kb(proc.pid, "VmHWM")
            if rss:
                samples.append((time.monotonic() - t0, len(counts["seqs"]), rss, hwm))
            time.sleep(1.0)
        wall = time.monotonic() - t0
        stop.set()
        time.sleep(1.0)
        if sub:
            sub.terminate()
        if broker:
            broker.terminate()
            broker.wait()
        log.seek(0)
        text = log.read()
        if args.keep_log:
            args.keep_log.write_text(text)
            if (tmp / "broker" / "broker.log").exists():
                args.keep_log.with_suffix(".broker").write_text((tmp / "broker" / "broker.log").read_text())
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
    missing = sorted(set(range(1, published + 1)) - counts["seqs"])
    if missing:
        runs, start = [], missing[0]
        for a, b in zip(missing, missing[1:] + [None]):
            if b != a + 1:
                runs.append(f"{start}-{a}" if a != start else f"{a}")
                if b is not None:
                    start = b
        print(f"missing seqs: {', '.join(runs[:20])}{' …' if len(runs) > 20 else ''}")
    if args.faults:
        print(f"broker restarts: {restarts}, junk commands sent: {junk_sent[0]}, "
              f"rejection log lines: {text.count('rejected command')}")
    ok = proc.returncode == 0 and panics == 0 and growth <= 10 and len(counts["seqs"]) == published
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
