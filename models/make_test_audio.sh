#!/usr/bin/env bash
# Small WAV fixtures for the Rust tests: spoken commands (espeak-ng) at 16 kHz mono, and the same
# recording in the formats users feed `edgescribe transcribe` (other rates, stereo, 24/32-bit, float).
# Deterministic: espeak-ng and sox give the same bytes for the same version and arguments.
set -euo pipefail
out=${1:-tests/fixtures/audio}
mkdir -p "$out"
say() { # name voice text
  espeak-ng -v "$2" -s 150 -w "$out/$1.22k.wav" "$3"
  sox "$out/$1.22k.wav" -r 16000 -c 1 -b 16 "$out/$1.wav"
  rm "$out/$1.22k.wav"
}
say eng_lights en "turn on the kitchen light"
say fra_volets fr "ferme les volets de la chambre"
say deu_heizung de "stell die heizung im bad auf zwanzig grad"
say spa_musica es "pon la musica en el salon"
src="$out/eng_lights.wav"
sox "$src" -r 8000 -b 16 "$out/fmt_8k_s16_mono.wav"
sox "$src" -r 44100 -b 24 -c 2 "$out/fmt_44k1_s24_stereo.wav"
sox "$src" -r 48000 -e floating-point -b 32 -c 2 "$out/fmt_48k_f32_stereo.wav"
sox "$src" -r 22050 -e signed-integer -b 32 "$out/fmt_22k05_s32_mono.wav"
# A recording shorter than one 25 ms conv window (400 samples): too short to transcribe.
sox "$src" "$out/too_short.wav" trim 0 0.02
