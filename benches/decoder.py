#!/usr/bin/env python3
"""Decoder benchmark (issue #24): greedy, beam + word LM and phrase mode on the bundled model's held-out
speech, with pyctcdecode + kenlm on the same logits and the same ARPA file as the anchor.

    python3 benches/decoder.py --binary target/release/edgescribe [--per-lang 120] [--oog-per-lang 200]

Data (made once under --work, default /var/tmp/edgescribe-decoder-bench), as models/train_tiny.py makes
its eval split: held-out sentences of ../shared/corpus (crc32 % 10 == 0, never trained on), spoken by
espeak-ng with the held-out voice variants (m4 m8 f3 klatt2 david) at random speed and pitch, then
trimmed, reverberated and noised the same way. Out-of-grammar (OOG) speech: the same voices saying
sentences the grammar does not contain, made from grammar sentences by replacing one word with another
word of the language, or by swapping two words (checked against the expanded grammar).

Every utterance is run through `edgescribe transcribe --dump-logits` once (greedy transcript and logits);
the decoders then read the logits (`--from-logits`), so all of them see exactly the same numbers.
- beam + LM: a 3-gram from the *training* sentences only (models/make_arpa.py --train-only).
- phrase mode: the language's grammar, with the same LM as the open-vocabulary reference that
  rejection compares with; its two rejection thresholds (per frame, and over any 400 ms) are
  tuned together on the first half of the in-grammar and OOG utterances (the pair with the most
  sentences exactly right among those whose false acceptance is <= 2 %) and all accuracy
  numbers are reported on the second half.
Needs: espeak-ng, sox, numpy; pyctcdecode and kenlm for the anchor (skipped, and said, when missing).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "models"))
import corpus  # noqa: E402

LANGS = ("eng", "fra", "deu", "spa")
BASE_VOICES = {"eng": ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc"],
               "fra": ["fr-fr", "fr-be", "fr-ch"], "deu": ["de"], "spa": ["es", "es-419"]}
EVAL_VARIANTS = ["m4", "m8", "f3", "klatt2", "david"]
SR = 16000
THRESHOLDS = [0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 1.0, 10.0]
LOCAL_THRESHOLDS = [2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 1000.0]
# (per frame, local) pairs whose trade-off is reported on the second half: the per-frame rule
# alone at its default, the defaults of both, and stricter local thresholds.
TRADE_OFFS = [(0.35, 1000.0), (0.35, 10.0), (0.35, 6.0), (0.35, 4.0), (0.0, 2.0)]
# Timings are the fastest of this many passes over the same files (ours and pyctcdecode's alike):
# the machine is shared, and the slowest pass measures the neighbours.
TIMING_PASSES = 3


def synthesise(text, voice, speed, pitch, rng: np.random.Generator, path: Path):
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         check=True, capture_output=True).stdout
    raw = subprocess.run(["sox", "-t", "wav", "-", "-t", "raw", "-r", str(SR), "-e", "signed", "-b", "16",
                          "-c", "1", "-"], input=wav, check=True, capture_output=True).stdout
    x = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    x = x[max(loud[0] - 480, 0):loud[-1] + 480]
    x = np.concatenate([np.zeros(rng.integers(800, 4000), np.float32), x,
                        np.zeros(rng.integers(800, 4000), np.float32)])
    if rng.random() < 0.5:  # small-room reverb, as train_tiny.py
        rt60 = rng.uniform(0.1, 0.5)
        t = np.arange(int(0.3 * SR)) / SR
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        ir /= np.sqrt((ir ** 2).sum())
        n = len(x) + len(ir) - 1
        wet = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(ir, n), n)[:len(x)]
        x = x + rng.uniform(0.1, 0.4) * wet.astype(np.float32)
    if rng.random() < 0.8:  # coloured noise at 15-40 dB SNR
        spec = np.fft.rfft(rng.standard_normal(len(x)))
        spec /= np.maximum(np.arange(len(spec)), 1) ** (rng.uniform(0.0, 1.0) / 2)
        noise = np.fft.irfft(spec, len(x))
        snr_db = rng.uniform(15, 40)
        noise *= np.sqrt((x ** 2).mean() / (noise ** 2).mean() / 10 ** (snr_db / 10))
        x = x + noise.astype(np.float32)
    x *= rng.uniform(0.2, 0.9) / max(np.abs(x).max(), 1e-6)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((x * 32767).astype(np.int16).tobytes())


def out_of_grammar(groups, n, rng: random.Random):
    """Sentences the grammar does not contain, made of the language's own words."""
    allowed = {s for g in groups for s in g}
    words = sorted({w for s in allowed for w in s.split()})
    pool = [s for g in groups for s in g]
    out = set()
    while len(out) < n:
        w = rng.choice(pool).split()
        if rng.random() < 0.5 or len(w) < 3:
            w[rng.randrange(len(w))] = rng.choice(words)
        else:
            i, j = rng.sample(range(len(w)), 2)
            w[i], w[j] = w[j], w[i]
        s = " ".join(w)
        if s not in allowed:
            out.add(s)
    return sorted(out)


def make_data(work: Path, per_lang: int, oog_per_lang: int, seed: int):
    meta = work / "data.json"
    if meta.exists():
        return json.loads(meta.read_text())
    (work / "wav").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    items = []
    for lang in LANGS:
        groups = corpus.load_language(lang)
        held = [[s for s in g if corpus.is_held_out(s)] for g in groups]
        held = [g for g in held if g]
        weights = [math.sqrt(len(g)) for g in held]
        ingrammar = [rng.choice(rng.choices(held, weights)[0]) for _ in range(per_lang)]
        for kind, texts in (("in", ingrammar), ("oog", out_of_grammar(groups, oog_per_lang, rng))):
            for i, text in enumerate(texts):
                voice = rng.choice(BASE_VOICES[lang]) + "+" + rng.choice(EVAL_VARIANTS)
                name = f"{lang}_{kind}_{i:03d}"
                synthesise(text, voice, rng.randint(140, 240), rng.randint(25, 75),
                           np.random.default_rng([seed, len(items)]), work / "wav" / f"{name}.wav")
                items.append(dict(name=name, lang=lang, kind=kind, text=text, voice=voice,
                                  half=i % 2))
    meta.write_text(json.dumps(items, ensure_ascii=False, indent=1))
    return items


def run(binary, args, capture_err=False):
    p = subprocess.run([str(binary), "transcribe", "--model", str(REPO / "models/bundled"), *args],
                       check=True, capture_output=True, text=True,
                       env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return (lines, p.stderr) if capture_err else lines


def ms_per_audio_s(stderr):
    line = [l for l in stderr.splitlines() if l.startswith("decoded ")][-1]
    return float(line.split(": ")[-1].split(" ms")[0])


def wer(ref, hyp):
    r, h = ref.split(), hyp.split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def score(items, texts):
    errs = sum(wer(it["text"], t)[0] for it, t in zip(items, texts))
    words = sum(len(it["text"].split()) for it in items)
    exact = sum(it["text"] == t for it, t in zip(items, texts))
    return errs / max(words, 1), exact / max(len(items), 1)


def pyctc_anchor(lang, vocab_json, arpa, npys, beam_width):
    try:
        import kenlm  # noqa: F401
        from pyctcdecode import build_ctcdecoder
    except ImportError as e:
        return None, f"pyctcdecode/kenlm not importable: {e}"
    vocab = json.loads(Path(vocab_json).read_text())[lang]
    labels = [None] * len(vocab)
    for tok, i in vocab.items():
        labels[i] = {"<pad>": "", "|": " ", "<s>": "\u2047", "</s>": "\u2048", "<unk>": "\u2049"}.get(tok, tok)
    decoder = build_ctcdecoder(labels, kenlm_model_path=str(arpa), alpha=0.5, beta=1.0)
    texts, total_s, audio_s = [], 0.0, 0.0
    for npy in npys:
        x = np.load(npy)
        x = x - x.max(axis=1, keepdims=True)
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        t0 = time.perf_counter()
        text = decoder.decode(x, beam_width=beam_width, beam_prune_logp=-12.0, token_min_logp=-8.0)
        total_s += time.perf_counter() - t0
        audio_s += len(x) * 0.02
        texts.append(" ".join("".join(c for c in text if c not in "\u2047\u2048\u2049").split()))
    return texts, 1000 * total_s / audio_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=str(REPO / "target/release/edgescribe"))
    ap.add_argument("--work", default="/var/tmp/edgescribe-decoder-bench")
    ap.add_argument("--per-lang", type=int, default=120)
    # 100 per half: the tuning's false-acceptance bound of 2 % is then two acceptances, not a
    # fraction of one (with 30 per half, one acceptance was 3.3 % and tuning took the strictest pair).
    ap.add_argument("--oog-per-lang", type=int, default=200)
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--out", help="write the results as JSON here too")
    args = ap.parse_args()
    work = Path(args.work)
    items = make_data(work, args.per_lang, args.oog_per_lang, args.seed)
    results = {}
    for lang in LANGS:
        mine = [it for it in items if it["lang"] == lang]
        logits = work / "logits" / lang
        wavs = [str(work / "wav" / f"{it['name']}.wav") for it in mine]
        if not (logits / f"{mine[-1]['name']}.npy").exists():
            run(args.binary, ["--lang", lang, "--json", "--dump-logits", str(logits), *wavs])
        npy = {it["name"]: str(logits / f"{it['name']}.npy") for it in mine}
        arpa = work / f"{lang}.train.arpa"
        subprocess.run([sys.executable, str(REPO / "models/make_arpa.py"), "--corpus-lang", lang,
                        "--train-only", "-o", str(arpa)], check=True, capture_output=True)
        grammar = corpus.DEFAULT_CORPUS_DIR / f"{lang}.txt"
        ing = [it for it in mine if it["kind"] == "in"]
        oog = [it for it in mine if it["kind"] == "oog"]
        base = ["--lang", lang, "--json", "--from-logits"]

        def decode(extra, subset):
            lines, err = run(args.binary, [*base, *extra, *[npy[it["name"]] for it in subset]], True)
            return lines, ms_per_audio_s(err)

        r = {}
        greedy, r["greedy_ms_per_s"] = decode([], ing)
        r["greedy_wer"], r["greedy_sent"] = score(ing, [g["text"] for g in greedy])
        beam, _ = decode(["--beam"], ing)
        r["beam_wer"], r["beam_sent"] = score(ing, [b["text"] for b in beam])
        for width in (8, 32, 128):
            passes = [decode(["--lm", str(arpa), "--beam-width", str(width)], ing)
                      for _ in range(TIMING_PASSES)]
            lm, cost = passes[0][0], min(c for _, c in passes)
            r[f"lm{width}_wer"], r[f"lm{width}_sent"] = score(ing, [x["text"] for x in lm])
            r[f"lm{width}_ms_per_s"] = cost
        # Phrase mode: tune both thresholds on half 0 (the pair with the most in-grammar
        # utterances exactly right among those whose false acceptance of OOG speech is <= 2 %;
        # none qualifying: the strictest pair), report on half 1.
        dev_in = [it for it in ing if it["half"] == 0]
        dev_oog = [it for it in oog if it["half"] == 0]

        def phrase_flags(th, local):
            return ["--phrases", str(grammar), "--lm", str(arpa), "--reject-nats-per-frame", str(th),
                    "--reject-local-nats", str(local)]

        chosen, best_key = (THRESHOLDS[0], LOCAL_THRESHOLDS[0]), None
        for th in THRESHOLDS:
            for local in LOCAL_THRESHOLDS:
                out, _ = decode(phrase_flags(th, local), dev_oog)
                fa = sum(not o["decoding"].get("rejected", False) for o in out) / max(len(out), 1)
                if fa > 0.02:
                    continue
                out, _ = decode(phrase_flags(th, local), dev_in)
                exact = score(dev_in, [o["text"] for o in out])[1]
                if best_key is None or (exact, th, local) > best_key:
                    chosen, best_key = (th, local), (exact, th, local)
        r["reject_nats_per_frame"], r["reject_local_nats"] = chosen
        flag = phrase_flags(*chosen)
        test_in = [it for it in ing if it["half"] == 1]
        test_oog = [it for it in oog if it["half"] == 1]
        out, r["phrase_ms_per_s"] = decode(flag, test_in)
        r["phrase_wer"], r["phrase_sent"] = score(test_in, [o["text"] for o in out])
        r["phrase_rejected_in_grammar"] = sum(o["decoding"].get("rejected", False) for o in out) / len(out)
        r["greedy_sent_test_half"] = score(test_in, [g["text"] for g, it in zip(greedy, ing)
                                                     if it["half"] == 1])[1]
        out, _ = decode(flag, test_oog)
        r["phrase_false_accept"] = sum(not o["decoding"].get("rejected", False) for o in out) / len(out)
        r["trade_offs"] = []
        for pair in TRADE_OFFS:
            got_in, _ = decode(phrase_flags(*pair), test_in)
            got_oog, _ = decode(phrase_flags(*pair), test_oog)
            r["trade_offs"].append(dict(
                reject_nats_per_frame=pair[0], reject_local_nats=pair[1],
                exact=score(test_in, [o["text"] for o in got_in])[1],
                rejected_in_grammar=sum(o["decoding"].get("rejected", False) for o in got_in) / len(got_in),
                false_accept=sum(not o["decoding"].get("rejected", False) for o in got_oog) / len(got_oog)))
        anchors = [pyctc_anchor(lang, REPO / "models/bundled/vocab.json", arpa,
                                [npy[it["name"]] for it in ing], 32) for _ in range(TIMING_PASSES)]
        texts = anchors[0][0]
        cost = anchors[0][1] if texts is None else min(c for _, c in anchors)
        if texts is None:
            r["pyctcdecode"] = cost
        else:
            r["pyctc32_wer"], r["pyctc32_sent"] = score(ing, texts)
            r["pyctc32_ms_per_s"] = cost
        r["n_in"], r["n_oog"] = len(ing), len(oog)
        results[lang] = r
        print(lang, json.dumps(r), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
