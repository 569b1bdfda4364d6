#!/usr/bin/env python3
"""VAD quality harness: edgescribe's energy VAD beside webrtcvad (modes 1 and 3) on the same audio.

    python3 benches/vad_quality.py [--binary PATH] [--work DIR] [--vad-args "--onset-db 9 ..."] [--cpu]

Builds mixtures with known truth and scores every VAD on them. Everything is seeded: the same command
gives the same audio and the same numbers on any machine with the same espeak-ng.

Speech: 48 espeak-ng sentences (12 each of eng, fra, deu, spa from ../shared/corpus grammars, random
voice variant, speed and pitch) and the 8 human recordings of alsa-utils (/usr/share/sounds/alsa, not
Noise.wav), each normalised to an active level of -30 dBFS and placed 1.5-4 s apart (2 s lead-in).
Conditions: "silence" (dither at -90 dBFS), and white, pink and babble (6 espeak talkers in other
sentences) noise at SNR 20, 10 and 5 dB (active speech level over noise level).

Truth, on a 10 ms grid, from each clean clip: frames within 35 dB of the clip's 95th-percentile frame
energy are speech, and gaps shorter than 200 ms between them are filled (stop closures and micro-pauses
between words are not a VAD's business). One clip is one true utterance, from its first to its last
speech frame.

Scores, per system:
  frame P/R/F1   per-frame decisions against the truth grid. Ours: the segmenter's frame decision
                 (`speech`, no pre-roll or hangover); webrtcvad: its 30 ms frame decisions.
  seg F1         the same, but with the utterances as emitted (pre-roll, post-roll and hangover included)
                 as the decision: what the recogniser gets. For webrtcvad, the segments of the collector
                 from its own example.py (300 ms padding ring, 90 % voiced to trigger / unvoiced to end).
  hit/miss/FA    true utterances overlapped by some segment / by none; segments overlapping no truth.
  split/merge    true utterances overlapped by several segments; segments spanning several truths.
  cut            hits whose first segment starts after the true onset (the first phoneme is lost).

--cpu also times the segmenter alone (`edgescribe vad --bench`) on 60 s of a quiet room and on the
clean mixture, next to webrtcvad mode 3 on the same audio in this process, as the percentage of one
core needed to keep up with real time.

Needs: numpy, soundfile, webrtcvad (pip install webrtcvad-wheels: the original webrtcvad sdist imports
pkg_resources, gone from setuptools >= 81), espeak-ng and sox (Debian), alsa-utils for the recordings.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
GRID = 160  # samples per 10 ms truth frame
# The shared corpus sits beside the repository: <repo>/benches/vad_quality.py -> <repo>/../shared/corpus.
CORPUS = ROOT.parent / "shared" / "corpus"
ALSA = Path("/usr/share/sounds/alsa")
VOICES = {"eng": "en", "fra": "fr", "deu": "de", "spa": "es"}
VARIANTS = ["", "+f2", "+f3", "+m3", "+m5", "+klatt", "+f4", "+m2"]
SPEECH_DBFS = -30.0
SNRS = [20, 10, 5]
NOISES = ["white", "pink", "babble"]


# ---------------------------------------------------------------- speech sources

def grammar(lang: str) -> tuple[dict[str, list[str]], list[str]]:
    slots, templates = {}, []
    for line in (CORPUS / f"{lang}.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\$(\w+)\s*=\s*(.*)$", line)
        if m:
            slots[m.group(1)] = [a.strip() for a in m.group(2).split("|")]
        else:
            templates.append(line)
    return slots, templates


def sentences(lang: str, rng: np.random.Generator, n: int) -> list[str]:
    slots, templates = grammar(lang)
    out = []
    for _ in range(n):
        t = templates[rng.integers(len(templates))]
        s = re.sub(r"\$(\w+)", lambda m: slots[m.group(1)][rng.integers(len(slots[m.group(1)]))], t)
        out.append(" ".join(s.split()))
    return out


def load16k(path: Path) -> np.ndarray:
    """Any WAV to 16 kHz mono float32, through sox (its band-limited resampler)."""
    raw = subprocess.run(["sox", str(path), "-t", "raw", "-e", "float", "-b", "32", "-c", "1",
                          "-r", str(RATE), "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)


def espeak(text: str, voice: str, speed: int, pitch: int, cache: Path) -> np.ndarray:
    key = hashlib.sha256(f"{text}|{voice}|{speed}|{pitch}".encode()).hexdigest()[:20]
    path = cache / f"espeak-{key}.wav"
    if not path.exists():
        tmp = path.with_suffix(".tmp.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(tmp), text],
                       check=True, capture_output=True)
        tmp.rename(path)
    return load16k(path)


def speech_clips(rng: np.random.Generator, cache: Path) -> list[tuple[str, np.ndarray]]:
    clips = []
    for lang, voice in VOICES.items():
        for text in sentences(lang, rng, 12):
            v = voice + VARIANTS[rng.integers(len(VARIANTS))]
            clips.append((f"{lang}:{text}", espeak(text, v, int(rng.integers(130, 200)),
                                                   int(rng.integers(25, 75)), cache)))
    recordings = sorted(p for p in ALSA.glob("*.wav") if p.name != "Noise.wav")
    if not recordings:
        sys.exit("vad_quality: no recordings in /usr/share/sounds/alsa (apt-get install alsa-utils)")
    clips += [(f"alsa:{p.stem}", load16k(p)) for p in recordings]
    order = rng.permutation(len(clips))
    return [clips[i] for i in order]


# ---------------------------------------------------------------- truth and mixing

def grid_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // GRID
    ms = np.mean(x[: n * GRID].reshape(n, GRID) ** 2, axis=1)
    return 10 * np.log10(2 * ms + 1e-12)


def fill_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    mask = mask.copy()
    idx = np.flatnonzero(mask)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= max_gap:
            mask[a:b] = True
    return mask


def clip_truth(x: np.ndarray) -> np.ndarray:
    db = grid_db(x)
    top = np.percentile(db[db > -110], 95)
    return fill_gaps(db > top - 35, 20)


def active_rms(x: np.ndarray, truth: np.ndarray) -> float:
    frames = x[: len(truth) * GRID].reshape(len(truth), GRID)[truth]
    return float(np.sqrt(np.mean(frames ** 2)))


def level(dbfs: float) -> float:
    """dBFS (full-scale sine = 0) as an RMS value."""
    return 10 ** (dbfs / 20) / np.sqrt(2)


def pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def babble(rng: np.random.Generator, n: int, cache: Path, talkers: int = 6) -> np.ndarray:
    """Talkers in all four languages, each an endless run of sentences at random offsets, summed."""
    out = np.zeros(n)
    langs = list(VOICES)
    for t in range(talkers):
        lang = langs[t % len(langs)]
        offset = int(rng.integers(0, 3 * RATE))
        track, length = [], 0
        while length < n + offset:
            (text,) = sentences(lang, rng, 1)
            clip = espeak(text, VOICES[lang] + VARIANTS[rng.integers(len(VARIANTS))],
                          int(rng.integers(140, 190)), int(rng.integers(25, 75)), cache)
            clip = clip / max(np.sqrt(np.mean(clip ** 2)), 1e-9)
            pause = np.zeros(int(rng.integers(0, RATE // 10)))
            track += [clip, pause]
            length += len(clip) + len(pause)
        out += np.concatenate(track)[offset:offset + n]
    return out


class Mixture:
    """The speech track (clips at fixed places) and its truth; noise is added per condition."""

    def __init__(self, rng: np.random.Generator, cache: Path):
        clips = speech_clips(rng, cache)
        pieces, pos, self.utterances, truth = [np.zeros(2 * RATE)], 2 * RATE, [], []
        truth.append(np.zeros(2 * RATE // GRID, bool))
        for name, clip in clips:
            clip = np.concatenate([clip, np.zeros(-len(clip) % GRID)])
            t = clip_truth(clip)
            clip = clip * level(SPEECH_DBFS) / active_rms(clip, t)
            idx = np.flatnonzero(t)
            self.utterances.append((name, pos // GRID + idx[0], pos // GRID + idx[-1] + 1))
            gap = int(rng.uniform(1.5, 4.0) * 100) * GRID
            pieces += [clip, np.zeros(gap)]
            truth += [t, np.zeros(gap // GRID, bool)]
            pos += len(clip) + gap
        self.speech = np.concatenate(pieces)
        self.truth = np.concatenate(truth)
        assert len(self.truth) * GRID == len(self.speech)

    def noise(self, kind: str, rng: np.random.Generator, cache: Path) -> np.ndarray:
        """One noise track of each kind, the same at every SNR."""
        n = len(self.speech)
        if kind in ("silence", "white"):
            return rng.standard_normal(n)
        return pink(rng, n) if kind == "pink" else babble(rng, n, cache)

    def with_noise(self, noise: np.ndarray, kind: str, snr_db: float | None) -> np.ndarray:
        noise_dbfs = -90.0 if kind == "silence" else SPEECH_DBFS - snr_db
        noise = noise * level(noise_dbfs) / np.sqrt(np.mean(noise ** 2))
        x = self.speech + noise
        peak = np.max(np.abs(x))
        if peak >= 1.0:
            sys.exit(f"vad_quality: mixture {kind}/{snr_db} clips (peak {peak:.2f})")
        return x


def write_wav(path: Path, x: np.ndarray) -> None:
    sf.write(str(path), np.round(x * 32767).astype(np.int16), RATE, subtype="PCM_16")


# ---------------------------------------------------------------- systems

def to_grid(starts_ms: np.ndarray, decisions: np.ndarray, frame_ms: float, n: int) -> np.ndarray:
    """Frame decisions to the 10 ms grid: each grid frame takes the decision of the frame at its centre."""
    centres = np.arange(n) * 10 + 5
    j = np.searchsorted(starts_ms, centres, side="right") - 1
    ok = (j >= 0) & (centres < starts_ms[np.clip(j, 0, None)] + frame_ms)
    return np.where(ok, decisions[np.clip(j, 0, len(decisions) - 1)], False)


def spans_to_grid(spans_ms: list[tuple[float, float]], n: int) -> np.ndarray:
    g = np.zeros(n, bool)
    centres = np.arange(n) * 10 + 5
    for a, b in spans_ms:
        g[(centres >= a) & (centres < b)] = True
    return g


def run_ours(binary: Path, wav: Path, vad_args: list[str], n: int) -> dict:
    out = subprocess.run([str(binary), "vad", "--frames", *vad_args, str(wav)], check=True,
                         capture_output=True, text=True).stdout
    starts, speech, active, spans = [], [], [], []
    for line in out.splitlines():
        rec = json.loads(line)
        if rec["type"] == "frame":
            starts.append(rec["start_ms"])
            speech.append(rec["speech"])
            active.append(rec["active"])
        else:
            spans.append((rec["start_ms"], rec["end_ms"]))
    starts = np.array(starts)
    frame_ms = float(starts[1] - starts[0])
    return {"frames": to_grid(starts, np.array(speech), frame_ms, n), "spans": spans,
            "raw": to_grid(starts, np.array(active), frame_ms, n)}


def webrtc_decisions(pcm: bytes, mode: int, frame_ms: int = 30) -> np.ndarray:
    import webrtcvad
    vad = webrtcvad.Vad(mode)
    step = RATE * frame_ms // 1000 * 2
    return np.array([vad.is_speech(pcm[i:i + step], RATE)
                     for i in range(0, len(pcm) - step + 1, step)])


def webrtc_collector(decisions: np.ndarray, frame_ms: int = 30, padding_ms: int = 300,
                     ratio: float = 0.9) -> list[tuple[float, float]]:
    """vad_collector of py-webrtcvad's example.py, returning segment times."""
    ring = collections.deque(maxlen=padding_ms // frame_ms)
    triggered, spans, start = False, [], 0.0
    for i, is_speech in enumerate(decisions):
        t = i * frame_ms
        ring.append((t, is_speech))
        if not triggered:
            if sum(s for _, s in ring) > ratio * ring.maxlen:
                triggered, start = True, ring[0][0]
                ring.clear()
        elif sum(not s for _, s in ring) > ratio * ring.maxlen:
            triggered = False
            spans.append((start, t + frame_ms))
            ring.clear()
    if triggered:
        spans.append((start, len(decisions) * frame_ms))
    return spans


def run_webrtc(x: np.ndarray, mode: int, n: int) -> dict:
    pcm = np.round(x * 32767).astype("<i2").tobytes()
    d = webrtc_decisions(pcm, mode)
    starts = np.arange(len(d)) * 30.0
    return {"frames": to_grid(starts, d, 30.0, n), "spans": webrtc_collector(d)}


# ---------------------------------------------------------------- scoring

def prf(decided: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = np.sum(decided & truth)
    p = tp / max(np.sum(decided), 1)
    r = tp / max(np.sum(truth), 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


def score(system: dict, truth: np.ndarray, utterances: list) -> dict:
    n = len(truth)
    p, r, f1 = prf(system["frames"], truth)
    seg_f1 = prf(spans_to_grid(system["spans"], n), truth)[2]
    raw_f1 = prf(system["raw"], truth)[2] if "raw" in system else None
    hits = misses = cuts = splits = 0
    used = [0] * len(system["spans"])
    for _, a, b in utterances:  # grid indices
        a_ms, b_ms = a * 10.0, b * 10.0
        over = [k for k, (s, e) in enumerate(system["spans"]) if s < b_ms and e > a_ms]
        for k in over:
            used[k] += 1
        if not over:
            misses += 1
            continue
        hits += 1
        splits += len(over) > 1
        cuts += system["spans"][over[0]][0] > a_ms
    return {"P": float(p), "R": float(r), "F1": float(f1), "segF1": float(seg_f1),
            "rawF1": None if raw_f1 is None else float(raw_f1), "hit": hits,
            "miss": misses, "FA": sum(u == 0 for u in used), "split": int(splits),
            "merge": sum(u > 1 for u in used), "cut": int(cuts)}


# ---------------------------------------------------------------- cpu

def cpu(binary: Path, work: Path, mixture_wav: Path, vad_args: list[str]) -> list[str]:
    rng = np.random.default_rng(99)
    quiet = work / "quiet_room_60s.wav"
    write_wav(quiet, rng.standard_normal(60 * RATE) * level(-70))
    lines = ["| audio | edgescribe segmenter, % of one core | webrtcvad mode 3 (same audio), % of one core |",
             "|---|---|---|"]
    for name, wav in [("60 s quiet room (-70 dBFS)", quiet), ("clean mixture (speech)", mixture_wav)]:
        ours = json.loads(subprocess.run([str(binary), "vad", "--bench", "--runs", "5", *vad_args, str(wav)],
                                         check=True, capture_output=True, text=True).stdout)
        x, _ = sf.read(str(wav), dtype="int16")
        pcm = x.astype("<i2").tobytes()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            webrtc_decisions(pcm, 3)
            times.append(time.perf_counter() - t0)
        ref = 100 * sorted(times)[2] / (len(x) / RATE)
        lines.append(f"| {name} | {ours['core_percent']:.4f} | {ref:.4f} |")
    return lines


# ---------------------------------------------------------------- main

def default_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ["release", "debug"]:
        if (target / profile / "edgescribe").exists():
            return target / profile / "edgescribe"
    sys.exit("vad_quality: build edgescribe first (cargo build --release) or pass --binary")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgescribe-vad-quality")
    ap.add_argument("--vad-args", default="", help="extra flags for `edgescribe vad`, e.g. '--onset-db 8'")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--cpu", action="store_true", help="also measure CPU cost")
    ap.add_argument("--json", type=Path, help="also write all scores here")
    ap.add_argument("--only", default="", help="comma-separated conditions to run, e.g. 'white:10,babble:20'")
    args = ap.parse_args()
    binary = args.binary or default_binary()
    vad_args = shlex.split(args.vad_args)
    cache = args.work / "cache"
    cache.mkdir(parents=True, exist_ok=True)

    mixture = Mixture(np.random.default_rng(args.seed), cache)
    n = len(mixture.truth)
    print(f"{len(mixture.utterances)} utterances, {len(mixture.speech) / RATE:.0f} s per condition, "
          f"speech {100 * mixture.truth.mean():.0f} % of frames; binary {binary}", file=sys.stderr)
    conditions = [("silence", None)] + [(k, s) for s in SNRS for k in NOISES]
    if args.only:
        wanted = set(args.only.split(","))
        conditions = [(k, s) for k, s in conditions if f"{k}:{s}" in wanted or k in wanted]
    systems = ["edgescribe", "webrtcvad-1", "webrtcvad-3"]
    results = {}
    clean_wav = None
    noises = {}
    for kind, snr in conditions:
        if kind not in noises:
            seed = args.seed + 1 + ["silence", *NOISES].index(kind)
            noises[kind] = mixture.noise(kind, np.random.default_rng(seed), cache)
        x = mixture.with_noise(noises[kind], kind, snr)
        wav = args.work / f"mix-{kind}-{snr}.wav"
        write_wav(wav, x)
        clean_wav = clean_wav or wav
        x16 = np.round(x * 32767) / 32767
        runs = {"edgescribe": run_ours(binary, wav, vad_args, n),
                "webrtcvad-1": run_webrtc(x16, 1, n), "webrtcvad-3": run_webrtc(x16, 3, n)}
        for name in systems:
            results[(kind, snr, name)] = score(runs[name], mixture.truth, mixture.utterances)
        print(f"  {kind} {snr}: " + ", ".join(
            f"{s} F1 {results[(kind, snr, s)]['F1']:.3f}" for s in systems), file=sys.stderr)

    total = len(mixture.utterances)
    print(f"Frame-level scores ({total} true utterances per condition; "
          f"{len(mixture.speech) / RATE:.0f} s each)\n")
    print("| noise | SNR dB | system | frame P | frame R | frame F1 | raw F1 | seg F1 | hit | miss | FA | split "
          "| merge | onset cut |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, snr in conditions:
        for name in systems:
            r = results[(kind, snr, name)]
            raw = "-" if r["rawF1"] is None else f"{r['rawF1']:.3f}"
            print(f"| {kind} | {snr if snr is not None else '-'} | {name} | {r['P']:.3f} | {r['R']:.3f} "
                  f"| **{r['F1']:.3f}** | {raw} "
                  f"| {r['segF1']:.3f} | {r['hit']} | {r['miss']} | {r['FA']} "
                  f"| {r['split']} | {r['merge']} | {r['cut']} |")
    print("\nMean frame F1 per SNR (white, pink, babble)\n")
    print("| SNR dB | " + " | ".join(systems) + " |")
    print("|---|" + "---|" * len(systems))
    for snr in SNRS:
        if not all((k, snr, systems[0]) in results for k in NOISES):
            continue
        means = [np.mean([results[(k, snr, s)]["F1"] for k in NOISES]) for s in systems]
        print(f"| {snr} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    if args.json:
        args.json.write_text(json.dumps([{"noise": k, "snr_db": s, "system": name, **r}
                                         for (k, s, name), r in results.items()], indent=1))
    if args.cpu:
        print("\nCPU cost (median of 5 passes; segmenter alone, file already decoded)\n")
        print("\n".join(cpu(binary, args.work, clean_wav, vad_args)))


if __name__ == "__main__":
    main()
