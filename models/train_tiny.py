#!/usr/bin/env python3
"""Train a tiny, MMS-architecture (wav2vec2-CTC with per-language adapters) speech recogniser on
espeak-ng speech of the command grammars in /work/shared/corpus, and export it in the hub layout of
`facebook/mms-1b-all` (config.json, model.safetensors, adapter.<lang>.safetensors, vocab.json, ...).

Modes (all state lives under --work, default /var/tmp/edgescribe-train):
  gen      synthesise the train/eval audio once to data/*.npz (+ a few sample WAVs); `train` does it if missing
  train    stage 1 (shared base, union alphabet) then stage 2 (frozen base, per-language adapters + heads),
           checkpointing every few minutes; `--resume` continues from ckpt/last.pt; exports at the end
  export   write the hub layout from the last checkpoint (works mid-training: see export_model)
  eval     per-language CER/WER of an exported model on held-out sentences spoken by held-out voices

Recipe notes (why it converges on two CPU cores):
  * audio is synthesised once and kept in memory as int16; batches are length-bucketed so little padding is computed;
  * the model is small where it costs: narrow early conv layers (they run at 3.2 kHz / 1.6 kHz frame rates);
  * pre-LN transformer (do_stable_layer_norm, as MMS), AdamW with a short warm-up then a constant LR, no dropout;
  * stage 1 also trains the adapter layers as part of the shared network, so stage 2 starts each language from the
    stage-1 model (adapters copied, head = the union head's rows for that language's symbols) and only refines.
"""

import argparse
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

SR = 16000
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "|"]  # <pad> (id 0) is the CTC blank, "|" the word delimiter

# espeak-ng base voices per language; voice variants (+m3, +f2, ...) change the speaker.
BASE_VOICES = {
    "eng": ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc"],
    "fra": ["fr-fr", "fr-be", "fr-ch"],
    "deu": ["de"],
    "spa": ["es", "es-419"],
}
# Evaluation speakers are variants never heard in training.
TRAIN_VARIANTS = ["", "m1", "m2", "m3", "m5", "m6", "m7", "f1", "f2", "f4", "f5", "klatt", "klatt3",
                  "Andy", "Annie", "benjamin", "edward", "linda", "max", "michel", "paul"]
EVAL_VARIANTS = ["m4", "m8", "f3", "klatt2", "david"]

MODEL_CONFIG = dict(
    hidden_size=192,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=768,
    conv_dim=(32, 32, 64, 64, 96, 96, 96),
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_bias=True,
    feat_extract_norm="layer",
    feat_extract_activation="gelu",
    do_stable_layer_norm=True,
    num_conv_pos_embeddings=32,
    num_conv_pos_embedding_groups=8,
    adapter_attn_dim=16,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    # no dropout: the synthetic data is plentiful and dropout slows convergence on a tight budget
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
    final_dropout=0.0, layerdrop=0.0,
    # mild SpecAugment-style time masking (MMS fine-tuning uses mask_time_prob 0.05 as well)
    apply_spec_augment=True, mask_time_prob=0.05, mask_time_length=5, mask_time_min_masks=1,
    mask_feature_prob=0.0,
    ctc_loss_reduction="mean",
    pad_token_id=0, bos_token_id=1, eos_token_id=2,
)


# ----------------------------------------------------------------------------------------------- vocabularies

def build_vocabs(groups_by_lang):
    """Per-language vocabularies (hub layout: one dict per language) and the stage-1 union vocabulary."""
    vocabs = {}
    for lang, groups in groups_by_lang.items():
        symbols = SPECIALS + corpus.alphabet(groups)
        vocabs[lang] = {s: i for i, s in enumerate(symbols)}
    union_chars = sorted({c for v in vocabs.values() for c in v} - set(SPECIALS))
    union = {s: i for i, s in enumerate(SPECIALS + union_chars)}
    return vocabs, union


def encode(text, vocab):
    return [vocab["|" if c == " " else c] for c in text]


# ----------------------------------------------------------------------------------------------- data generation

def pick_sentences(groups, n, held_out, rng):
    """Draw n sentences: template weighted by sqrt(#sentences) so short fixed commands and the big
    number templates are both well represented, then a uniform sentence of that template."""
    pools = [[s for s in g if corpus.is_held_out(s) == held_out] for g in groups]
    pools = [p for p in pools if p]
    weights = np.array([math.sqrt(len(p)) for p in pools])
    weights /= weights.sum()
    picks = rng.choice(len(pools), size=n, p=weights)
    return [pools[t][rng.integers(len(pools[t]))] for t in picks]


def synthesise(job):
    """One utterance: espeak-ng -> sox (resample to 16 kHz mono int16) -> trim -> reverb/noise -> int16."""
    text, voice, speed, pitch, seed = job
    rng = np.random.default_rng(seed)
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         check=True, capture_output=True).stdout
    raw = subprocess.run(["sox", "-t", "wav", "-", "-t", "raw", "-r", str(SR), "-e", "signed", "-b", "16",
                          "-c", "1", "-"], input=wav, check=True, capture_output=True).stdout
    x = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    # trim espeak's silences (they only cost compute), keep a random short margin
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    x = x[max(loud[0] - 480, 0):loud[-1] + 480]
    x = np.concatenate([np.zeros(rng.integers(800, 4000), np.float32), x,
                        np.zeros(rng.integers(800, 4000), np.float32)])
    if rng.random() < 0.5:  # small-room reverb: exponentially decaying noise impulse response
        rt60 = rng.uniform(0.1, 0.5)
        t = np.arange(int(0.3 * SR)) / SR
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        ir /= np.sqrt((ir ** 2).sum())
        n = len(x) + len(ir) - 1
        wet = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(ir, n), n)[:len(x)]
        x = x + rng.uniform(0.1, 0.4) * wet.astype(np.float32)
    if rng.random() < 0.8:  # coloured noise (spectrum ~ f^-beta, white..pinkish) at 15-40 dB SNR
        spec = np.fft.rfft(rng.standard_normal(len(x)))
        spec /= np.maximum(np.arange(len(spec)), 1) ** (rng.uniform(0.0, 1.0) / 2)
        noise = np.fft.irfft(spec, len(x))
        snr_db = rng.uniform(15, 40)
        noise *= np.sqrt((x ** 2).mean() / (noise ** 2).mean() / 10 ** (snr_db / 10))
        x = x + noise.astype(np.float32)
    x *= rng.uniform(0.2, 0.9) / max(np.abs(x).max(), 1e-6)
    return (x * 32767).astype(np.int16)


def make_split(name, sentences_per_lang, held_out, variants, seed, groups_by_lang):
    rng = np.random.default_rng([seed, held_out])
    items = []
    for lang in corpus.LANGS:
        for text in pick_sentences(groups_by_lang[lang], sentences_per_lang, held_out, rng):
            voice = rng.choice(BASE_VOICES[lang])
            variant = rng.choice(variants)
            items.append(dict(lang=lang, text=text, voice=f"{voice}+{variant}" if variant else voice,
                              speed=int(rng.integers(140, 241)), pitch=int(rng.integers(25, 76))))
    jobs = [(it["text"], it["voice"], it["speed"], it["pitch"], [seed, held_out, i]) for i, it in enumerate(items)]
    t0 = time.time()
    with multiprocessing.Pool(2) as pool:
        audio = []
        for i, a in enumerate(pool.imap(synthesise, jobs, chunksize=32)):
            audio.append(a)
            if (i + 1) % 2000 == 0:
                print(f"  {name}: {i + 1}/{len(jobs)} utterances, {time.time() - t0:.0f}s", flush=True)
    lengths = np.array([len(a) for a in audio])
    print(f"{name}: {len(audio)} utterances, {lengths.sum() / SR / 3600:.2f} h, "
          f"mean {lengths.mean() / SR:.2f}s, max {lengths.max() / SR:.2f}s, {time.time() - t0:.0f}s", flush=True)
    return dict(audio=np.concatenate(audio), offsets=np.concatenate([[0], np.cumsum(lengths)]),
                lang=np.array([it["lang"] for it in items]), text=np.array([it["text"] for it in items]),
                voice=np.array([it["voice"] for it in items]))


def write_samples(split, out_dir, per_lang=3):
    """A few short held-out utterances (held-out voices) as 16-bit WAV fixtures, with their true text."""
    import soundfile as sf
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for lang in corpus.LANGS:
        idx = [i for i in range(len(split["text"])) if split["lang"][i] == lang
               and split["offsets"][i + 1] - split["offsets"][i] < 3 * SR][:per_lang]
        for k, i in enumerate(idx):
            name = f"{lang}_{k}.wav"
            sf.write(out_dir / name, split["audio"][split["offsets"][i]:split["offsets"][i + 1]], SR,
                     subtype="PCM_16")
            manifest.append(dict(file=name, lang=lang, text=str(split["text"][i]), voice=str(split["voice"][i])))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")


def cmd_gen(args):
    data_dir = args.work / "data"
    if (data_dir / "train.npz").exists() and (data_dir / "eval.npz").exists():
        print(f"data already in {data_dir}", flush=True)
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    groups = {lang: corpus.load_language(lang, args.corpus) for lang in corpus.LANGS}
    for name, n, held_out, variants in [("eval", args.eval_per_lang, True, EVAL_VARIANTS),
                                        ("train", args.train_per_lang, False, TRAIN_VARIANTS)]:
        split = make_split(name, n, held_out, variants, args.seed, groups)
        np.savez(data_dir / f"{name}.tmp.npz", **split)
        os.replace(data_dir / f"{name}.tmp.npz", data_dir / f"{name}.npz")
        if name == "eval":
            write_samples(split, args.work / "samples")


def load_split(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------------------------- model

def new_model(vocab_size, seed):
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC
    torch.manual_seed(seed)
    config = Wav2Vec2Config(vocab_size=vocab_size, architectures=["Wav2Vec2ForCTC"], **MODEL_CONFIG)
    return Wav2Vec2ForCTC(config)


def language_head(union_head, union, vocab):
    """A language's lm_head initialised from the union head's rows for that language's symbols."""
    import torch
    rows = torch.tensor([union[s] for s in vocab])
    head = torch.nn.Linear(union_head.in_features, len(vocab))
    with torch.no_grad():
        head.weight.copy_(union_head.weight[rows])
        head.bias.copy_(union_head.bias[rows])
    return head


def adapter_state(model):
    """Exactly the tensors transformers' load_adapter() expects in adapter.<lang>.safetensors."""
    return {k: v.detach().clone().contiguous() for k, v in model._get_adapters().items()}


def normalise_batch(waves):
    """Wav2Vec2FeatureExtractor(do_normalize=True) semantics: per utterance zero mean / unit variance over the
    real samples (population variance, eps 1e-7), padding value 0, attention mask over the real samples."""
    import torch
    lengths = torch.tensor([len(w) for w in waves])
    x = torch.zeros(len(waves), int(lengths.max()))
    mask = torch.zeros(len(waves), int(lengths.max()), dtype=torch.long)
    for i, w in enumerate(waves):
        w = torch.from_numpy(w.astype(np.float32) / 32768.0)
        x[i, :len(w)] = (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)
        mask[i, :len(w)] = 1
    return x, mask


# ----------------------------------------------------------------------------------------------- training

class Batches:
    """Length-bucketed batches of at most `batch_seconds` of padded audio, reshuffled every epoch from (seed, epoch)
    so that a resumed run sees exactly the batches it would have seen."""

    def __init__(self, lengths, indices, batch_seconds, seed):
        self.lengths, self.indices, self.budget, self.seed = lengths, np.asarray(indices), batch_seconds * SR, seed

    def epoch(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        # sort by length with a little jitter so bucket membership changes between epochs
        order = self.indices[np.argsort(self.lengths[self.indices] * rng.uniform(0.95, 1.05, len(self.indices)))]
        batches, current = [], []
        for i in order:
            if current and (len(current) + 1) * max(self.lengths[current + [i]]) > self.budget:
                batches.append(current)
                current = []
            current.append(int(i))
        if current:
            batches.append(current)
        return [batches[j] for j in rng.permutation(len(batches))]


def ctc_loss(model, data, batch, labels):
    import torch
    waves = [data["audio"][data["offsets"][i]:data["offsets"][i + 1]] for i in batch]
    x, mask = normalise_batch(waves)
    logits = model(x, attention_mask=mask).logits
    frames = model._get_feat_extract_output_lengths(mask.sum(-1))
    targets = [torch.tensor(labels[i]) for i in batch]
    log_probs = torch.log_softmax(logits.float(), dim=-1).transpose(0, 1)
    # "mean" = per-target-character loss averaged over the batch, as transformers' Wav2Vec2ForCTC computes it
    return torch.nn.functional.ctc_loss(log_probs, torch.cat(targets), frames, torch.tensor([len(t) for t in targets]),
                                        blank=0, reduction="mean", zero_infinity=True)


def save_checkpoint(path, state):
    import torch
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def cmd_train(args):
    import torch
    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)  # transformers draws the time masks from numpy's global generator
    cmd_gen(args)
    ckpt_dir = args.work / "ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.pt"
    if last.exists() and not args.resume:
        sys.exit(f"{last} exists: pass --resume to continue it, or delete {ckpt_dir} to start over")

    groups = {lang: corpus.load_language(lang, args.corpus) for lang in corpus.LANGS}
    vocabs, union = build_vocabs(groups)
    data = load_split(args.work / "data" / "train.npz")
    lengths = np.diff(data["offsets"])
    union_labels = [encode(t, union) for t in data["text"]]
    lang_labels = [encode(t, vocabs[lang]) for t, lang in zip(data["text"], data["lang"])]

    state = dict(stage="base", step=0, epoch=0, pos=0, adapters={}, log=[], elapsed=0.0, args=vars(args).copy())
    if args.resume and last.exists():
        state = torch.load(last, weights_only=False)
        print(f"resuming stage {state['stage']} at step {state['step']} ({state['elapsed'] / 60:.1f} min so far)",
              flush=True)
    state["args"]["resume"] = args.resume
    stages = ["base"] + list(corpus.LANGS) + ["done"]
    for stage in stages[stages.index(state["stage"]):-1]:
        model = new_model(len(union), args.seed)
        if stage == "base":
            if state.get("base") is not None:
                model.load_state_dict(state["base"])
            params = list(model.parameters())
            batches = Batches(lengths, np.arange(len(lengths)), args.batch_seconds, args.seed)
            labels, lr, warmup, max_steps = union_labels, args.lr, args.warmup, args.base_max_steps
            decay = args.base_decay_steps
        else:
            # stage 2: frozen base; this language's adapter layers (from the stage-1 ones) + its own head
            model.load_state_dict(state["base"])
            model.lm_head = language_head(model.lm_head, union, vocabs[stage])
            for p in model.parameters():
                p.requires_grad_(False)
            params = list(model._get_adapters().values())
            for p in params:
                p.requires_grad_(True)
            batches = Batches(lengths, np.flatnonzero(data["lang"] == stage), args.batch_seconds, args.seed)
            labels, lr, warmup, max_steps = lang_labels, args.adapter_lr, 20, args.adapter_steps
            decay = args.adapter_steps // 2
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
        if state.get("opt") is not None:  # resuming inside this stage
            if stage != "base":
                model.load_state_dict(state["current"], strict=False)
            opt.load_state_dict(state["opt"])
        schedule = lr_schedule(lr, warmup, max_steps, decay)
        train_stage(model, opt, params, stage, data, batches, labels, schedule, max_steps, state, last, args)
        # stage finished: record its result, reset the per-stage counters
        if stage == "base":
            state["base"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state["adapters"][stage] = adapter_state(model)
        state.update(stage=stages[stages.index(stage) + 1],
                     step=0, epoch=0, pos=0, opt=None, current=None)
        save_checkpoint(last, state)
        shutil.copy(last, ckpt_dir / f"after-{stage}.pt")
    export_model(state, vocabs, union, args.out)


def lr_schedule(lr, warmup, max_steps, decay):
    """Linear warm-up, constant LR, then a linear decay to 5 % over the last `decay` steps: the constant phase does
    the learning, the short decay at the end settles the weights (a sizeable CER gain for few steps)."""
    def at(step):
        return lr * min(1.0, (step + 1) / warmup) * min(1.0, max(0.05, (max_steps - step) / max(decay, 1)))
    return at


def train_stage(model, opt, params, stage, data, batches, labels, schedule, max_steps, state, last, args):
    """Stops at max_steps, or (base stage) once the smoothed CTC loss is below --base-target-loss.
    Checkpoints every --ckpt-minutes (wall clock) so a session can stop at any time."""
    import torch
    model.train()
    ema = None
    t_start, t_ckpt = time.time(), time.time()
    elapsed0 = state["elapsed"]
    epoch_batches = batches.epoch(state["epoch"])
    while state["step"] < max_steps:
        if state["pos"] >= len(epoch_batches):
            state["epoch"] += 1
            state["pos"] = 0
            epoch_batches = batches.epoch(state["epoch"])
        batch = epoch_batches[state["pos"]]
        for g in opt.param_groups:
            g["lr"] = schedule(state["step"])
        loss = ctc_loss(model, data, batch, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        state["step"] += 1
        state["pos"] += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        state["elapsed"] = elapsed0 + time.time() - t_start
        if state["step"] % 25 == 0:
            state["log"].append((stage, state["step"], round(ema, 4), round(state["elapsed"] / 60, 2)))
            print(f"[{stage}] step {state['step']} epoch {state['epoch']} loss {loss.item():.3f} ema {ema:.3f} "
                  f"batch {len(batch)} lr {opt.param_groups[0]['lr']:.1e} {state['elapsed'] / 60:.1f} min",
                  flush=True)
        if stage == "base" and state["step"] >= args.min_base_steps and ema < args.base_target_loss:
            print(f"[{stage}] smoothed loss {ema:.3f} < {args.base_target_loss}: stage done", flush=True)
            break
        if time.time() - t_ckpt > args.ckpt_minutes * 60:
            snapshot(model, opt, stage, state, last)
            t_ckpt = time.time()
    snapshot(model, opt, stage, state, last)


def snapshot(model, opt, stage, state, last):
    state["opt"] = opt.state_dict()
    if stage == "base":
        state["base"] = model.state_dict()
    else:
        state["current"] = adapter_state(model)
    save_checkpoint(last, state)
    print(f"[{stage}] checkpoint at step {state['step']} -> {last}", flush=True)


# ----------------------------------------------------------------------------------------------- export

def export_model(state, vocabs, union, out_dir):
    """Write the mms-1b-all hub layout. Languages whose stage 2 has not run yet get the stage-1 adapters and the
    union head's rows for their symbols (a usable model at any point of training)."""
    from safetensors.torch import save_file
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor
    out_dir.mkdir(parents=True, exist_ok=True)
    adapters = {}
    for lang in corpus.LANGS:
        if lang in state["adapters"]:
            adapters[lang] = state["adapters"][lang]
        else:
            print(f"export: {lang} has no stage-2 adapter yet, using the stage-1 adapter and union head rows")
            m = new_model(len(union), 0)
            m.load_state_dict(state["base"])
            m.lm_head = language_head(m.lm_head, union, vocabs[lang])
            adapters[lang] = adapter_state(m)
        save_file(adapters[lang], str(out_dir / f"adapter.{lang}.safetensors"))

    # model.safetensors = shared base + the default language's (eng) adapter and head, as in mms-1b-all
    model = new_model(len(vocabs["eng"]), 0)
    base = {k: v for k, v in state["base"].items() if not k.startswith("lm_head.")}
    model.load_state_dict({**base, **adapters["eng"]}, strict=True)
    model.config.save_pretrained(out_dir)
    # mms-1b-all stores the weight-normed positional conv as weight_g/weight_v (pre-parametrization names);
    # transformers maps them back on load, and other loaders expect the hub's names
    renames = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
    tensors = {}
    for k, v in model.state_dict().items():
        for old, new in renames.items():
            k = k.replace(old, new)
        tensors[k] = v.contiguous()
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "vocab.json").write_text(json.dumps(vocabs, ensure_ascii=False, indent=1) + "\n")
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(out_dir)
    tokenizer = Wav2Vec2CTCTokenizer(str(out_dir / "vocab.json"), target_lang="eng", unk_token="<unk>",
                                     pad_token="<pad>", word_delimiter_token="|", bos_token="<s>", eos_token="</s>")
    tokenizer.save_pretrained(out_dir)
    # save_pretrained rewrites vocab.json; keep ours (one dict per language) authoritative
    (out_dir / "vocab.json").write_text(json.dumps(vocabs, ensure_ascii=False, indent=1) + "\n")
    print(f"exported to {out_dir}", flush=True)


def cmd_export(args):
    import torch
    state = torch.load(args.work / "ckpt" / "last.pt", weights_only=False)
    if state.get("base") is None:
        sys.exit("checkpoint has no base weights yet")
    groups = {lang: corpus.load_language(lang, args.corpus) for lang in corpus.LANGS}
    vocabs, union = build_vocabs(groups)
    export_model(state, vocabs, union, args.out)


# ----------------------------------------------------------------------------------------------- evaluation

def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def cmd_eval(args):
    """Load the exported directory the way a user of mms-1b-all would (from_pretrained(target_lang=...),
    the directory's feature extractor and tokenizer) and score greedy CTC on the held-out eval split."""
    import torch
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC
    torch.set_num_threads(args.threads)
    data = load_split(args.work / "data" / "eval.npz")
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(args.model)
    results = {}
    for lang in corpus.LANGS:
        model = Wav2Vec2ForCTC.from_pretrained(args.model, target_lang=lang, ignore_mismatched_sizes=True).eval()
        tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(args.model, target_lang=lang)
        idx = sorted(np.flatnonzero(data["lang"] == lang), key=lambda i: data["offsets"][i + 1] - data["offsets"][i])
        hyps = []
        for k in range(0, len(idx), 16):
            waves = [data["audio"][data["offsets"][i]:data["offsets"][i + 1]].astype(np.float32) / 32768.0
                     for i in idx[k:k + 16]]
            inputs = extractor(waves, sampling_rate=SR, padding=True, return_tensors="pt")
            with torch.no_grad():
                logits = model(inputs.input_values, attention_mask=inputs.attention_mask).logits
            hyps += [" ".join(h.split()) for h in tokenizer.batch_decode(logits.argmax(-1))]
        refs = [str(data["text"][i]) for i in idx]
        char_err = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
        word_err = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
        # per eval voice variant: shows whether one unseen speaker dominates the errors
        variants = [str(data["voice"][i]).partition("+")[2] for i in idx]
        by_variant = {}
        for v in sorted(set(variants)):
            pairs = [(r, h) for r, h, w in zip(refs, hyps, variants) if w == v]
            by_variant[v] = round(sum(edit_distance(r, h) for r, h in pairs) / sum(len(r) for r, _ in pairs), 4)
        results[lang] = dict(
            utterances=len(refs), cer=round(char_err / sum(len(r) for r in refs), 4),
            wer=round(word_err / sum(len(r.split()) for r in refs), 4),
            sentence_accuracy=round(sum(r == h for r, h in zip(refs, hyps)) / len(refs), 4),
            cer_by_voice_variant=by_variant,
            examples=[dict(ref=r, hyp=h) for r, h in zip(refs, hyps) if r != h][:5])
        print(f"{lang}: CER {results[lang]['cer']:.3f} WER {results[lang]['wer']:.3f} "
              f"sentences {results[lang]['sentence_accuracy']:.3f} ({len(refs)} utterances) "
              f"CER by variant {by_variant}", flush=True)
    out = args.eval_out or args.model / "eval.json"
    Path(out).write_text(json.dumps(dict(model=str(args.model), results=results), ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out}", flush=True)


# ----------------------------------------------------------------------------------------------- CLI

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["gen", "train", "export", "eval"])
    p.add_argument("--work", type=Path, default=Path("/var/tmp/edgescribe-train"))
    p.add_argument("--corpus", type=Path, default=corpus.DEFAULT_CORPUS_DIR)
    p.add_argument("--out", type=Path, default=None, help="export directory (default WORK/mms-tiny-trained)")
    p.add_argument("--model", type=Path, default=None, help="eval: exported model directory (default --out)")
    p.add_argument("--eval-out", type=Path, default=None, help="eval: JSON results file (default MODEL/eval.json)")
    p.add_argument("--seed", type=int, default=0)
    # one thread: with other jobs on the two cores, a 2-thread torch loses its OpenMP barriers and runs ~10x slower
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-per-lang", type=int, default=6000)
    p.add_argument("--eval-per-lang", type=int, default=150)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--batch-seconds", type=float, default=20.0, help="padded audio per batch")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--base-max-steps", type=int, default=7500)
    p.add_argument("--base-decay-steps", type=int, default=2500)
    p.add_argument("--min-base-steps", type=int, default=1000)
    p.add_argument("--base-target-loss", type=float, default=0.05)
    p.add_argument("--adapter-lr", type=float, default=1e-3)
    p.add_argument("--adapter-steps", type=int, default=250)
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    args = p.parse_args()
    args.out = args.out or args.work / "mms-tiny-trained"
    args.model = args.model or args.out
    {"gen": cmd_gen, "train": cmd_train, "export": cmd_export, "eval": cmd_eval}[args.mode](args)


if __name__ == "__main__":
    main()
