#!/usr/bin/env python3
"""Benchmark harness: edgescribe (tract) beside onnxruntime on the same ONNX file and the same audio.

    python3 benches/bench.py --model DIR [--model DIR2 ...] [--stock] [--seconds 5] [--runs 3] [--threads 2]

Each engine runs in its own child process, so peak RSS (the kernel's ru_maxrss of that child) is its own:
  load_s   parse + optimise the model (and, for edgescribe, read the adapter), until ready to run
  run_s    median of --runs timed runs after one warm-up, for the audio given
  RTF      run_s / audio seconds
  load + first run   what a fresh process pays before its first transcript
  --stock  adds tract without edgescribe's passes over the optimised model (crates/tract-accel)
The ratios compare edgescribe to onnxruntime measured in the same run on the same machine, which is the
only comparison that means anything on a shared or thermally throttled machine.
Needs: numpy, onnxruntime, safetensors (models/requirements.txt) and a release build of edgescribe.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def write_test_audio(path: Path, seconds: float) -> None:
    """Deterministic speech-band noise with a syllable-rate envelope: timing does not depend on content."""
    rng = np.random.default_rng(7)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    x = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same") * envelope * 0.3
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def run_child(cmd: list[str]) -> tuple[dict, int]:
    """Runs a child that prints one JSON line; returns it and the child's peak RSS in bytes."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss * 1024


def ort_child(model_dir: Path, wav_path: Path, runs: int, threads: int, lang: str | None,
              spin: bool = True) -> None:
    """The onnxruntime side: same file, same adapter inputs, same lm_head, same normalisation."""
    import onnxruntime as ort
    from safetensors.numpy import load_file

    with wave.open(str(wav_path)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    t0 = time.perf_counter()
    manifest = json.loads((model_dir / "manifest.json").read_text())
    graph = manifest["graph"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(model_dir / graph["file"]), opts, providers=["CPUExecutionProvider"])
    lang = lang or manifest["default_language"]
    adapter = load_file(str(model_dir / manifest["adapter_file_template"].format(lang)))
    load_s = time.perf_counter() - t0

    def once():
        x = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        feeds = {graph["input"]: x[None, :].astype(np.float32)}
        feeds.update({a["name"]: adapter[a["name"]] for a in graph["adapter_inputs"]})
        hidden = sess.run([graph["output"]], feeds)[0][0]
        return (hidden @ adapter["lm_head.weight"].T + adapter["lm_head.bias"]).argmax(-1)

    t0 = time.perf_counter()
    once()
    first = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    run_s = statistics.median(times)
    seconds = len(audio) / 16000
    print(json.dumps({"engine": f"onnxruntime {ort.__version__}", "audio_s": seconds, "threads": threads,
                      "load_s": load_s, "first_run_s": first, "run_s": run_s, "rtf": run_s / seconds,
                      "runs": runs}))


def size_label(manifest: dict) -> str:
    arch = manifest["architecture"]
    shape = (arch["num_hidden_layers"], arch["hidden_size"])
    return {(24, 1024): "300M", (48, 1280): "1B"}.get(shape, f"{shape[0]}x{shape[1]}")


def bench_model(args, model: Path, wav_path: Path) -> list[dict]:
    """One model: onnxruntime, then (with --stock) stock tract, then edgescribe; one child each."""
    lang = ["--lang", args.lang] if args.lang else []
    common = ["--model", str(model), "--wav", str(wav_path), "--runs", str(args.runs),
              "--threads", str(args.threads)] + lang
    rows = []
    res, rss = run_child([sys.executable, __file__, "--ort-child"] + common)
    rows.append(dict(res, rss=rss))
    variants = (["stock"] if args.stock else []) + ["all"]
    for passes in variants:
        res, rss = run_child([str(args.binary), "bench", "--passes", passes] + common)
        rows.append(dict(res, rss=rss))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, action="append",
                    help="exported model directory (repeat for several sizes)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lang")
    ap.add_argument("--stock", action="store_true", help="also run tract without edgescribe's passes")
    ap.add_argument("--binary", type=Path, default=ROOT / "target/release/edgescribe")
    ap.add_argument("--wav", type=Path, help="audio to use instead of generated noise")
    ap.add_argument("--ort-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ort-no-spin", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--emulate", metavar="CPU",
                    help="cortex-a72 or cortex-a76: count instructions under qemu-user instead of timing "
                         "(benches/emulate/; `bench.py --emulate cortex-a76 --help` for its options)")
    if any(a == "--emulate" or a.startswith("--emulate=") for a in sys.argv[1:]):
        sys.path.insert(0, str(ROOT / "benches"))
        from emulate.run import main as emulate_main

        return emulate_main(sys.argv[1:], write_test_audio)
    args = ap.parse_args()

    if args.ort_child:
        ort_child(args.model[0], args.wav, args.runs, args.threads, args.lang, spin=not args.ort_no_spin)
        return 0
    if not args.binary.exists():
        raise SystemExit(f"bench: {args.binary} missing: cargo build --release first")

    # A busy machine flatters whichever engine suffers less from contention (onnxruntime's spinning
    # threads suffer most): a 1B table taken at load average 7 showed tract 0.68x onnxruntime, idle 1.7x.
    load0 = os.getloadavg()[0]
    if load0 > 0.5:
        print(f"bench: warning: load average {load0:.2f} before starting; the ratios are not trustworthy",
              file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = args.wav or Path(tmp) / "bench.wav"
        if not args.wav:
            write_test_audio(wav_path, args.seconds)
        for model in args.model:
            manifest = json.loads((model / "manifest.json").read_text())
            graph_bytes = sum(f["size"] for name, f in manifest["files"].items() if name.startswith("model."))
            results.append((model, manifest, graph_bytes, bench_model(args, model, wav_path)))

    load1 = os.getloadavg()[0]
    audio_s = results[0][3][0]["audio_s"]
    print(f"{audio_s:.1f} s audio, {args.threads} threads, median of {args.runs} runs after one warm-up; "
          f"{os.cpu_count()} CPUs, load average {load0:.2f} before, {load1:.2f} at the end")
    print("| size (int8 file) | engine | run (s) | RTF | load (s) | load + first run (s) | peak RSS (MB) "
          "| RSS / file | run vs ort | load + first run vs ort |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, manifest, graph_bytes, rows in results:
        ort = rows[0]
        for r in rows:
            whole = r["load_s"] + r["first_run_s"]
            ort_whole = ort["load_s"] + ort["first_run_s"]
            print(f"| {size_label(manifest)} ({graph_bytes / 1e6:.0f} MB) | {r['engine']} | {r['run_s']:.3f} | "
                  f"{r['rtf']:.3f} | {r['load_s']:.2f} | {whole:.2f} | {r['rss'] / 1e6:.0f} | "
                  f"{r['rss'] / graph_bytes:.2f} | {r['run_s'] / ort['run_s']:.2f}x | {whole / ort_whole:.2f}x |")
    for model, manifest, _, rows in results:
        for r in rows:
            if "load_timings" in r:
                t = r["load_timings"]
                rss = "".join(f", RSS {label} {r[key] * 1024 / 1e6:.0f} MB" for key, label in
                              (("rss_after_load_kb", "after load"), ("rss_after_first_run_kb", "after first run"))
                              if r.get(key))
                print(f"load breakdown {size_label(manifest)} {r['engine']}: " +
                      ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" if k.endswith("_s") else f"{k} {v}"
                                for k, v in t.items()) + rss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
