#!/usr/bin/env python3
"""Reference outputs for edgescribe's parity tests, produced by the reference implementations.

    python3 models/make_references.py CHECKPOINT EXPORT_FP32 EXPORT_INT8 OUT_DIR WAV...

For every 16 kHz mono WAV and every language bundled in the exports, writes into OUT_DIR:
  <wav stem>.safetensors  `<lang>.logits`: transformers' Wav2Vec2ForCTC after load_adapter(lang) (fp32),
                          `<lang>.ort_fp32` / `<lang>.ort_int8`: onnxruntime on the exported graphs, with the
                          lm_head applied from the adapter file exactly as the Rust runtime does
  references.json         processor.decode(argmax) per wav and language, and transformers' word offsets

The Rust tests read only these files, so `cargo test` needs neither torch nor onnxruntime.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch
from safetensors.numpy import load_file, save_file
from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC


def ort_logits(export: Path, audio: np.ndarray, lang: str) -> np.ndarray:
    manifest = json.loads((export / "manifest.json").read_text())
    graph = manifest["graph"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(export / graph["file"]), opts, providers=["CPUExecutionProvider"])
    adapter = load_file(str(export / manifest["adapter_file_template"].format(lang)))
    feeds = {graph["input"]: audio[None, :].astype(np.float32)}
    feeds.update({a["name"]: adapter[a["name"]] for a in graph["adapter_inputs"]})
    hidden = sess.run([graph["output"]], feeds)[0][0]
    return hidden @ adapter["lm_head.weight"].T + adapter["lm_head.bias"]


def main() -> int:
    ckpt, fp32, int8, out = map(Path, sys.argv[1:5])
    wavs = [Path(p) for p in sys.argv[5:]]
    out.mkdir(parents=True, exist_ok=True)
    langs = sorted(l for l, a in json.loads((fp32 / "manifest.json").read_text())["adapters"].items() if a["bundled"])
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(ckpt))
    model = Wav2Vec2ForCTC.from_pretrained(str(ckpt)).eval()
    refs: dict = {}
    for wav in wavs:
        samples, rate = sf.read(str(wav), dtype="int16")
        assert rate == 16000 and samples.ndim == 1, f"{wav}: reference WAVs must be 16 kHz mono"
        audio = samples.astype(np.float32) / 32768.0
        inputs = extractor(audio, sampling_rate=16000, return_tensors="pt")
        tensors, refs[wav.stem] = {}, {}
        for lang in langs:
            model.load_adapter(lang)
            tok = Wav2Vec2CTCTokenizer.from_pretrained(str(ckpt), target_lang=lang)
            with torch.no_grad():
                logits = model(inputs.input_values).logits[0].numpy()
            ids = logits.argmax(-1)
            decoded = tok.decode(ids, output_word_offsets=True)
            tensors[f"{lang}.logits"] = logits
            normed = inputs.input_values[0].numpy()
            tensors[f"{lang}.ort_fp32"] = ort_logits(fp32, normed, lang).astype(np.float32)
            tensors[f"{lang}.ort_int8"] = ort_logits(int8, normed, lang).astype(np.float32)
            refs[wav.stem][lang] = {
                "text": decoded.text,
                "words": [[w["word"], int(w["start_offset"]), int(w["end_offset"])] for w in decoded.word_offsets],
                "frames": int(logits.shape[0]),
            }
        save_file(tensors, str(out / f"{wav.stem}.safetensors"))
    (out / "references.json").write_text(json.dumps(refs, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
