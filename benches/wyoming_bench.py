#!/usr/bin/env python3
"""edgescribe's Wyoming server measured with wyoming-bench (PyPI), the way Home Assistant uses it.

    python3 benches/wyoming_bench.py [--model DIR] [--languages eng,fra,deu,spa] [--rounds 3]

Makes a venv with wyoming-bench (pinned) under target/, a corpus per language from the held-out
recordings (tests/fixtures/audio/trained/golden.tsv: WAV + expected text), starts the release build
as a Wyoming server only (`[audio] device = "none"`, embedded MQTT broker on a free port), and runs
`wyoming-bench stt` once per language (the transcribe's language as Home Assistant sends it: `en`,
`fr`, ...). wyoming-bench prints its own tables: Total (transcribe → transcript), RTF, WER, CER.
Needs a release build (`cargo build --release`) and Python 3.10+ with venv.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = "wyoming-bench==2026.10.0"
HA = {"eng": "en", "fra": "fr", "deu": "de", "spa": "es"}


def venv() -> Path:
    d = ROOT / "target" / "wyoming-bench-venv"
    stamp = d / "pin.txt"
    if not (stamp.is_file() and stamp.read_text() == PIN):
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
        subprocess.run([str(d / "bin/pip"), "install", "-q", PIN], check=True)
        stamp.write_text(PIN)
    return d / "bin/wyoming-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corpus(into: Path, lang: str) -> Path:
    trained = ROOT / "tests/fixtures/audio/trained"
    d = into / lang
    d.mkdir(parents=True)
    for line in (trained / "golden.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        wav, lang_of, _voice, text = line.split("\t")
        if lang_of == lang:
            shutil.copy(trained / wav, d / wav)
            (d / wav).with_suffix(".txt").write_text(text + "\n")
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: the bundled model)")
    ap.add_argument("--languages", default="eng,fra,deu,spa")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default=str(ROOT / "target/release/edgescribe"))
    ap.add_argument("bench_args", nargs="*", help="passed to `wyoming-bench stt` (after --)")
    a = ap.parse_args()
    langs = a.languages.split(",")
    bench = venv()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = free_port()
        config = tmp / "edgescribe.toml"
        model = f'[model]\ndir = "{a.model}"\n' if a.model else ""
        config.write_text(
            f"languages = {langs!r}\n".replace("'", '"') + model
            + f'[audio]\ndevice = "none"\n[adapters]\ncache_dir = "{tmp / "cache"}"\n'
            + f'[mqtt]\nembedded_listen = "127.0.0.1:{free_port()}"\ndevice_id = "bench"\n'
            + f'[wyoming]\nlisten = "tcp://127.0.0.1:{port}"\nzeroconf = false\n')
        log = open(tmp / "daemon.log", "w+")
        daemon = subprocess.Popen([a.binary, "run", "--config", str(config)], stderr=log,
                                  env={**os.environ, "RUST_LOG": "info"})
        try:
            deadline = time.monotonic() + 600
            while "ready:" not in (tmp / "daemon.log").read_text():
                if daemon.poll() is not None or time.monotonic() > deadline:
                    sys.exit("edgescribe did not start:\n" + (tmp / "daemon.log").read_text())
                time.sleep(0.2)
            for lang in langs:
                print(f"## {lang} (transcribe language {HA.get(lang, lang)!r})", flush=True)
                subprocess.run([str(bench), "stt", f"127.0.0.1:{port}", "--corpus", str(corpus(tmp / "corpus", lang)),
                                "--mode", "non_streaming", "--rounds", str(a.rounds), *a.bench_args,
                                "--config", f'{{"language": "{HA.get(lang, lang)}"}}'], check=True)
        finally:
            daemon.terminate()
            daemon.wait(60)


if __name__ == "__main__":
    main()
