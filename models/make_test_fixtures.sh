#!/usr/bin/env bash
# Rebuilds every model fixture the Rust tests use (needs the Python tools of models/requirements.txt):
# the tiny random-weight MMS checkpoint, its fp32 and int8 exports, and the reference outputs of
# transformers and onnxruntime on the fixture recordings.
set -euo pipefail
cd "$(dirname "$0")/.."
fx=tests/fixtures
langs=eng,fra,deu,spa
rm -rf "$fx/mms-tiny" "$fx/reference"
python3 models/export.py --random-init tiny "$fx/mms-tiny/checkpoint" "$fx/mms-tiny/fp32" --quantize none --languages $langs
python3 models/export.py "$fx/mms-tiny/checkpoint" "$fx/mms-tiny/int8" --quantize int8 --languages $langs
python3 models/make_references.py "$fx/mms-tiny/checkpoint" "$fx/mms-tiny/fp32" "$fx/mms-tiny/int8" "$fx/reference" \
  "$fx"/audio/{eng_lights,fra_volets,deu_heizung,spa_musica}.wav
