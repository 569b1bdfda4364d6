#!/usr/bin/env python3
"""Convert an MMS (wav2vec2 CTC + per-language adapters) checkpoint into what edgescribe runs.

    python3 models/export.py CHECKPOINT OUT_DIR [--quantize int8|none] [--languages eng,fra,...]
    python3 models/export.py --random-init tiny|300m|1b CHECKPOINT OUT_DIR ...

CHECKPOINT is a Hugging Face model id (`facebook/mms-1b-all`) or a local directory in the hub's layout
(`config.json`, `model.safetensors`, `vocab.json` with one dict per language, `adapter.<lang>.safetensors`).
With `--random-init`, CHECKPOINT is the directory where a randomly initialised model with the exact MMS
architecture is first written (in that same layout), so tests and benchmarks exercise the real export path.

OUT_DIR receives:
  model.<int8|fp32>.onnx   the base encoder; every adapter tensor is a graph *input*, so one optimised
                           model serves every language and switching language is swapping tensors
  manifest.json            architecture, graph I/O names, adapter tensor names/shapes, sha256 of every
                           file, the sha256 of every adapter the checkpoint has, and the licence
  vocab.json               the checkpoint's per-language vocabularies (small; lets the daemon validate codes)
  adapters/adapter.<lang>.safetensors   only the languages asked for, byte-identical to the hub's files

The per-language `lm_head` is not in the graph: it is applied by the runtime from the adapter file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

LICENSE_NOTES = {
    "cc-by-nc-4.0": "CC-BY-NC 4.0 (Meta's MMS weights): non-commercial use only; files exported from them "
                    "carry the same licence.",
    "cc0-1.0": "CC0 1.0: weights made by edgescribe's own tools (random or trained here), no restrictions.",
}

INPUT_NAME = "input_values"
OUTPUT_NAME = "last_hidden_state"
ADAPTER_FILE = "adapter.{}.safetensors"
OPSET = 17

# Architecture numbers for --random-init. `1b` is facebook/mms-1b-all's config; `300m` is mms-300m's encoder
# with MMS's adapters; `tiny` keeps every structural feature (7-layer conv front end with the same kernels and
# strides, stable layer norm, layer-norm feature extractor, grouped positional conv, adapters) at toy width.
SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4),
    "300m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                 conv_dim=(512,) * 7, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16),
    "1b": dict(hidden_size=1280, num_hidden_layers=48, num_attention_heads=16, intermediate_size=5120,
               conv_dim=(512,) * 7, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16),
}

# Alphabets for the random-init vocabularies (MMS vocabularies are per-language character sets).
RANDOM_ALPHABETS = {
    "eng": "abcdefghijklmnopqrstuvwxyz'",
    "fra": "abcdefghijklmnopqrstuvwxyz'àâæçéèêëîïôœùûüÿ",
    "deu": "abcdefghijklmnopqrstuvwxyz'äöüß",
    "spa": "abcdefghijklmnopqrstuvwxyz'áéíñóúü",
    "ita": "abcdefghijklmnopqrstuvwxyz'àèéìíîòóùú",
    "nld": "abcdefghijklmnopqrstuvwxyz'ëïé",
}
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "|"]


def log(msg: str) -> None:
    print(f"export: {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Random-init checkpoints in the hub layout
# ---------------------------------------------------------------------------------------------------------

def random_config(size: str, vocab_size: int):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        **SIZES[size],
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_bias=True,
        feat_extract_norm="layer",
        feat_extract_activation="gelu",
        do_stable_layer_norm=True,
        adapter_attn_dim=16,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        vocab_size=vocab_size,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        ctc_loss_reduction="mean",
        architectures=["Wav2Vec2ForCTC"],
    )


def write_random_checkpoint(size: str, ckpt: Path, seed: int) -> None:
    """A randomly initialised MMS-architecture model, saved exactly as the hub lays out mms-1b-all."""
    from safetensors.torch import save_file
    from transformers import Wav2Vec2ForCTC

    torch.manual_seed(seed)
    vocab = {lang: {tok: i for i, tok in enumerate(SPECIALS + list(alpha))}
             for lang, alpha in RANDOM_ALPHABETS.items()}
    default = "eng"
    config = random_config(size, len(vocab[default]))
    model = Wav2Vec2ForCTC(config).eval()
    ckpt.mkdir(parents=True, exist_ok=True)

    # Each language gets its own adapter layers and its own head over its own alphabet. The random init
    # gives the weights a little more spread than transformers' default so that the languages really
    # differ in their outputs, and pushes <s>, </s>, <unk> down, as a trained MMS head does (they are
    # never emitted in practice).
    adapters = {}
    for lang, lang_vocab in vocab.items():
        g = torch.Generator().manual_seed(seed + sum(map(ord, lang)))
        tensors = {}
        for name, p in model._get_adapters().items():
            shape = list(p.shape)
            if name == "lm_head.weight":
                shape[0] = len(lang_vocab)
            elif name == "lm_head.bias":
                shape = [len(lang_vocab)]
            if name.endswith("norm.weight"):
                t = 1.0 + 0.1 * torch.randn(shape, generator=g)
            elif name.endswith("bias"):
                t = 0.1 * torch.randn(shape, generator=g)
            else:
                t = torch.randn(shape, generator=g) / (shape[-1] ** 0.5)
            if name == "lm_head.bias":
                for tok in ("<s>", "</s>", "<unk>"):
                    t[lang_vocab[tok]] = -20.0
            tensors[name] = t.contiguous()
        adapters[lang] = tensors
        save_file(tensors, str(ckpt / ADAPTER_FILE.format(lang)), metadata={"format": "pt"})

    # Like mms-1b-all, the main weights carry the default language's adapter and head.
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, t in adapters[default].items():
            params[name].copy_(t)
    model.save_pretrained(str(ckpt), safe_serialization=True)
    # The hub records a model's licence in its README's front matter; ours says what these weights are.
    (ckpt / "README.md").write_text(f"---\nlicense: cc0-1.0\n---\nRandomly initialised MMS-architecture "
                                    f"model ({size}, seed {seed}) written by edgescribe's models/export.py.\n")
    (ckpt / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    write_processor_files(ckpt, default)
    log(f"random-init {size}: {sum(p.numel() for p in model.parameters()):,} parameters -> {ckpt}")


def write_processor_files(ckpt: Path, default_lang: str) -> None:
    """The feature-extractor and tokenizer configs the hub ships, so AutoProcessor works on the checkpoint."""
    (ckpt / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0.0, "processor_class": "Wav2Vec2Processor",
        "return_attention_mask": True, "sampling_rate": 16000}, indent=1))
    (ckpt / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
        "word_delimiter_token": "|", "do_lower_case": False, "replace_word_delimiter_char": " ",
        "target_lang": default_lang, "tokenizer_class": "Wav2Vec2CTCTokenizer",
        "clean_up_tokenization_spaces": False, "processor_class": "Wav2Vec2Processor"}, indent=1))
    (ckpt / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, indent=1))


# ---------------------------------------------------------------------------------------------------------
# Resolving the checkpoint
# ---------------------------------------------------------------------------------------------------------

def card_license(ckpt: Path) -> str:
    """The `license:` of the model card's front matter (the hub's own convention), or 'unknown'."""
    card = ckpt / "README.md"
    if card.exists():
        lines = card.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and lines[0].strip() == "---":
            for line in lines[1:]:
                if line.strip() == "---":
                    break
                key, _, value = line.partition(":")
                if key.strip() == "license" and value.strip():
                    return value.strip().lower()
    return "unknown"


def resolve_checkpoint(spec: str, languages: list[str]) -> tuple[Path, dict[str, dict]]:
    """Returns a local directory with the checkpoint, and {lang: {sha256, size}} for every adapter it has.

    For a hub id only the base files and the adapters asked for are downloaded; the hashes of all the
    others come from the hub's file listing (LFS metadata), so the daemon can verify adapters it pulls later.
    """
    local = Path(spec)
    if local.is_dir():
        adapters = {}
        for f in sorted(local.glob("adapter.*.safetensors")):
            lang = f.name[len("adapter."):-len(".safetensors")]
            adapters[lang] = {"sha256": sha256_file(f), "size": f.stat().st_size}
        return local, adapters

    from huggingface_hub import HfApi, snapshot_download

    info = HfApi().model_info(spec, files_metadata=True)
    adapters = {}
    for sib in info.siblings:
        name = sib.rfilename
        if name.startswith("adapter.") and name.endswith(".safetensors") and "/" not in name:
            lang = name[len("adapter."):-len(".safetensors")]
            if sib.lfs is None:
                raise SystemExit(f"export: {spec}: {name} has no LFS metadata, cannot record its sha256")
            adapters[lang] = {"sha256": sib.lfs.sha256, "size": sib.lfs.size}
    patterns = ["config.json", "model.safetensors", "vocab.json", "*_config.json", "special_tokens_map.json",
                "README.md"]
    patterns += [ADAPTER_FILE.format(lang) for lang in languages]
    path = snapshot_download(spec, revision=info.sha, allow_patterns=patterns)
    return Path(path), adapters


# ---------------------------------------------------------------------------------------------------------
# ONNX export
# ---------------------------------------------------------------------------------------------------------

def load_model(ckpt: Path):
    from transformers import Wav2Vec2ForCTC

    # Eager attention exports as plain MatMul/Softmax, which tract (and the int8 quantiser) understand.
    model = Wav2Vec2ForCTC.from_pretrained(str(ckpt), attn_implementation="eager").eval()
    # Bake the positional conv's weight norm into a plain weight: one constant instead of a norm per run.
    conv = model.wav2vec2.encoder.pos_conv_embed.conv
    if hasattr(conv, "parametrizations"):
        torch.nn.utils.parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
    return model


class AdapterFromInputs(torch.nn.Module):
    """Stands in for one Wav2Vec2AttnAdapterLayer, computing the same thing (norm, linear, ReLU, linear)
    from tensors handed in at run time instead of its parameters, so tracing makes them graph inputs."""

    def __init__(self, original):
        super().__init__()
        self.eps = original.norm.eps
        self.shape = tuple(original.norm.normalized_shape)  # static: the traced graph needs a constant
        self.tensors: dict[str, torch.Tensor] = {}

    def forward(self, h):
        t = self.tensors
        x = torch.nn.functional.layer_norm(h, self.shape, t["norm.weight"], t["norm.bias"], self.eps)
        x = torch.relu(torch.nn.functional.linear(x, t["linear_1.weight"], t["linear_1.bias"]))
        return torch.nn.functional.linear(x, t["linear_2.weight"], t["linear_2.bias"])


class EncoderWithAdapterInputs(torch.nn.Module):
    """Wav2Vec2Model whose adapter tensors are forward() arguments, hence ONNX graph inputs."""

    def __init__(self, wav2vec2, adapter_names: list[str]):
        super().__init__()
        self.wav2vec2 = wav2vec2
        self.names = adapter_names
        self.slots = {}
        for i, layer in enumerate(wav2vec2.encoder.layers):
            layer.adapter_layer = AdapterFromInputs(layer.adapter_layer)
            self.slots[f"wav2vec2.encoder.layers.{i}.adapter_layer."] = layer.adapter_layer

    def forward(self, input_values, *adapter_tensors):
        for name, t in zip(self.names, adapter_tensors):
            prefix, _, leaf = name.partition(".adapter_layer.")
            self.slots[prefix + ".adapter_layer."].tensors[leaf] = t
        return self.wav2vec2(input_values).last_hidden_state


def export_onnx(model, path: Path) -> list[dict]:

    adapter = {k: v for k, v in model._get_adapters().items() if not k.startswith("lm_head.")}
    names = list(adapter.keys())
    wrapper = EncoderWithAdapterInputs(model.wav2vec2, names).eval()
    dummy = torch.randn(1, 16000)
    args = (dummy, *[adapter[n].detach() for n in names])
    large = sum(p.numel() for p in model.parameters()) * 4 > 1_800_000_000
    tmp = Path(tempfile.mkdtemp(prefix="edgescribe-export-", dir=path.parent))
    raw = tmp / "raw.onnx"
    with torch.no_grad():
        torch.onnx.export(
            wrapper, args, str(raw),
            input_names=[INPUT_NAME] + names,
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {1: "samples"}, OUTPUT_NAME: {1: "frames"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    save_onnx(load_onnx(raw), path, large)
    shutil.rmtree(tmp)
    return [{"name": n, "shape": list(adapter[n].shape)} for n in names]


def load_onnx(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=True)


def save_onnx(proto, path: Path, large: bool) -> None:
    """One file, or with `large` one file plus one `.data` file beside it holding the weights."""
    import onnx

    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    if large:
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)
    else:
        onnx.save_model(proto, str(path))


def quantize_int8(fp32: Path, out: Path, large: bool, external: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # MatMul and Conv: quantising the conv front end too was faster in tract than MatMul alone.
    # MatMulConstBOnly: only matmuls against constant weights. Activation-by-activation products (attention
    # scores, and the adapters, whose weights are graph inputs) stay fp32: they are cheap, and quantising
    # them dynamically costs accuracy for no speed.
    # Never run onnxruntime's transformer optimiser first: its fused contrib ops are unknown to tract.
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Conv"],
                     use_external_data_format=large, extra_options={"MatMulConstBOnly": True})
    # The quantiser leaves value_info whose shapes/types tract refuses; the graph is fully typed without it.
    proto = load_onnx(out)
    del proto.graph.value_info[:]
    save_onnx(proto, out, external)


# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------

def architecture(config) -> dict:
    keys = ["model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "conv_dim", "conv_kernel", "conv_stride", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
            "adapter_attn_dim", "do_stable_layer_norm", "feat_extract_norm", "layer_norm_eps", "hidden_act"]
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in ((k, getattr(config, k)) for k in keys)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--quantize", choices=["int8", "none"], default="int8")
    ap.add_argument("--languages", default="", help="comma-separated MMS codes whose adapters to include")
    ap.add_argument("--random-init", choices=sorted(SIZES), help="first write a random MMS-architecture checkpoint")
    ap.add_argument("--seed", type=int, default=1234, help="seed for --random-init")
    args = ap.parse_args()

    languages = [l.strip() for l in args.languages.split(",") if l.strip()]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.random_init:
        write_random_checkpoint(args.random_init, Path(args.checkpoint), args.seed)
    ckpt, adapter_hashes = resolve_checkpoint(args.checkpoint, languages)

    vocab = json.loads((ckpt / "vocab.json").read_text(encoding="utf-8"))
    if not all(isinstance(v, dict) for v in vocab.values()):
        raise SystemExit("export: vocab.json must hold one vocabulary per language (the MMS layout)")
    unknown = [l for l in languages if l not in vocab or l not in adapter_hashes]
    if unknown:
        raise SystemExit(f"export: no adapter or vocabulary for {', '.join(unknown)} in {args.checkpoint}")

    model = load_model(ckpt)
    n_params = sum(p.numel() for p in model.parameters())
    large = n_params * 4 > 1_800_000_000
    # Weights inside the protobuf cost tract the message's copy on top of its tensors while parsing
    # (peak 2.4x the file at 300M, 1.1x with a `.data` file at 1B): every int8 export past the small
    # test sizes gets its weights in a `.data` file (protobuf's 2 GB limit forces it for fp32 1B).
    external = large or (args.quantize == "int8" and n_params > 50_000_000)
    tag = "int8" if args.quantize == "int8" else "fp32"
    onnx_path = out / f"model.{tag}.onnx"
    log(f"exporting {n_params:,} parameters to ONNX (opset {OPSET})")
    with tempfile.TemporaryDirectory(prefix="edgescribe-fp32-", dir=out) as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx" if args.quantize == "int8" else onnx_path
        adapter_inputs = export_onnx(model, fp32)
        if args.quantize == "int8":
            log("quantising MatMul and Conv weights to int8 (dynamic activations)")
            quantize_int8(fp32, onnx_path, large, external)

    shutil.copyfile(ckpt / "vocab.json", out / "vocab.json")
    adir = out / "adapters"
    if adir.exists():
        shutil.rmtree(adir)
    for lang in languages:
        adir.mkdir(exist_ok=True)
        shutil.copyfile(ckpt / ADAPTER_FILE.format(lang), adir / ADAPTER_FILE.format(lang))

    for f in out.rglob("*"):
        # Quantiser and safetensors write 0600 files; the daemon usually runs as another user.
        f.chmod(0o755 if f.is_dir() else 0o644)
    files = {}
    for f in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"):
        files[f.relative_to(out).as_posix()] = {"sha256": sha256_file(f), "size": f.stat().st_size}
    for lang in languages:
        got = files[f"adapters/{ADAPTER_FILE.format(lang)}"]["sha256"]
        if got != adapter_hashes[lang]["sha256"]:
            raise SystemExit(f"export: adapter {lang} does not match the checkpoint's recorded sha256")

    cfg = model.config
    license_id = card_license(ckpt)
    manifest = {
        "format": 1,
        "source": {"checkpoint": args.checkpoint, "random_init": args.random_init,
                   "parameters": n_params},
        "license": {"id": license_id, "note": LICENSE_NOTES.get(license_id, "see the checkpoint's model card")},
        "architecture": architecture(cfg),
        "audio": {"sample_rate": 16000, "frame_stride_samples": 320, "receptive_field_samples": 400,
                  "normalize": "zero_mean_unit_variance", "normalize_eps": 1e-7},
        "graph": {"file": onnx_path.name,
                  "external_data": (onnx_path.name + ".data") if external else None,
                  "quantization": "int8-dynamic" if args.quantize == "int8" else "none",
                  "opset": OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME,
                  "adapter_inputs": adapter_inputs},
        "lm_head": {"weight": "lm_head.weight", "bias": "lm_head.bias", "hidden_size": cfg.hidden_size},
        "vocab": {"file": "vocab.json", "blank": "<pad>", "word_delimiter": "|",
                  "never_printed": ["<s>", "</s>", "<unk>"]},
        "default_language": getattr(cfg, "target_lang", None) or ("eng" if "eng" in vocab else sorted(vocab)[0]),
        "adapter_file_template": "adapters/" + ADAPTER_FILE,
        "adapters": {lang: dict(h, bundled=lang in languages) for lang, h in sorted(adapter_hashes.items())},
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"wrote {out} ({', '.join(languages) or 'no adapters'}; licence {manifest['license']['id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
