//! `edgescribe transcribe`: WAV files in, their transcripts out (one line each).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::decode_args::{read_npy, write_npy, DecodeArgs};
use super::ModelArgs;
use crate::asr::manifest::Manifest;
use crate::asr::store::{cache, AdapterStore, StoreOptions};
use crate::asr::vocab::Vocabularies;
use crate::asr::{Engine, Recognizer};
use crate::audio::wav::WavStream;
use crate::audio::MODEL_RATE_HZ;
use crate::pipeline::offline;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON: text, language, confidence, and per-word times and confidences.
    #[arg(long)]
    json: bool,
    /// Adapter cache to look in after the model directory (see `pull-adapters`). Default: the same
    /// default as `pull-adapters`.
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    decode: DecodeArgs,
    /// WAV files: 8-48 kHz, mono or stereo, 8/16/24/32-bit integer or 32-bit float. Up to 30 s it
    /// is transcribed in one piece; a longer one is cut at pauses (the daemon's voice-activity
    /// detector) and read as it goes, so any length fits in memory.
    #[arg(required = true)]
    wav: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let model_dir = args.model.model_dir()?;
    let options = args.model.engine_options();
    if args.decode.from_logits {
        return decode_logits(&args, &model_dir);
    }
    // Open the audio first: a bad file should not cost a model load.
    let first = WavStream::open(&args.wav[0], MODEL_RATE_HZ).context("reading audio")?;
    let engine = Arc::new(Engine::load(&model_dir, &options)?);
    let lang = args
        .model
        .lang
        .clone()
        .unwrap_or_else(|| engine.manifest().default_language.clone());
    // The model directory's bundled copy first, then the cache; nothing is fetched here.
    let pack = match args.cache.clone().or_else(cache::default_root) {
        Some(root) => {
            let store = AdapterStore::for_engine(&engine, StoreOptions::offline(root))?;
            engine.language_from(&lang, &store.locate(&lang)?)?
        }
        None => engine.language(&lang)?,
    };
    let decoder = args.decode.decoder(&lang)?;
    let mut recognizer = Recognizer::new(engine.clone(), pack);
    recognizer.set_decoder(&lang, Arc::new(decoder));
    let mut first = Some(first);
    for wav in &args.wav {
        let stream = match first.take() {
            Some(s) => s,
            None => WavStream::open(wav, MODEL_RATE_HZ)
                .with_context(|| format!("reading {}", wav.display()))?,
        };
        if let Some(dir) = &args.decode.dump_logits {
            dump_logits(&engine, &lang, &args, wav, dir)?;
        }
        let transcript = offline::transcribe(&recognizer, stream)
            .with_context(|| format!("transcribing {}", wav.display()))?;
        if args.json {
            println!("{}", serde_json::to_string(&transcript)?);
        } else {
            println!("{}", transcript.whole.text);
        }
    }
    Ok(())
}

/// Writes `wav`'s logits as DIR/<name>.npy (files up to 30 s: one forward pass).
fn dump_logits(engine: &Engine, lang: &str, args: &Args, wav: &Path, dir: &Path) -> Result<()> {
    let mut stream = WavStream::open(wav, MODEL_RATE_HZ)?;
    if stream.duration_s() > offline::WHOLE_MAX_S {
        bail!(
            "--dump-logits: {} is longer than {} s",
            wav.display(),
            offline::WHOLE_MAX_S
        );
    }
    let mut samples = Vec::new();
    while stream.read_into(1 << 16, &mut samples)? {}
    let pack = match args.cache.clone().or_else(cache::default_root) {
        Some(root) => {
            let store = AdapterStore::for_engine(engine, StoreOptions::offline(root))?;
            engine.language_from(lang, &store.locate(lang)?)?
        }
        None => engine.language(lang)?,
    };
    let logits = engine.logits(&pack, &samples)?;
    std::fs::create_dir_all(dir)?;
    let name = wav.file_stem().unwrap_or_default().to_string_lossy();
    write_npy(
        &dir.join(format!("{name}.npy")),
        &logits.values,
        logits.frames,
        logits.vocab,
    )
}

/// `--from-logits`: decodes .npy logits with the model's vocabulary alone (no model run), and
/// reports the decoding time per second of audio on stderr.
fn decode_logits(args: &Args, model_dir: &Path) -> Result<()> {
    let manifest = Manifest::load(model_dir)?;
    let vocab_path = manifest.check_file(model_dir, &manifest.vocab.file)?;
    let vocabs = Vocabularies::load(&vocab_path, &manifest.vocab)?;
    let lang = args
        .model
        .lang
        .clone()
        .unwrap_or(manifest.default_language.clone());
    let vocab = vocabs.get(&lang)?;
    let decoder = args.decode.decoder(&lang)?;
    let (mut decode_s, mut audio_s) = (0.0f64, 0.0f64);
    for path in &args.wav {
        let (values, frames, width) = read_npy(path)?;
        if width != vocab.len() {
            bail!(
                "{}: {width} symbols, {lang} has {}",
                path.display(),
                vocab.len()
            );
        }
        let started = std::time::Instant::now();
        let out = decoder.decode(&values, vocab);
        decode_s += started.elapsed().as_secs_f64();
        audio_s += frames as f64 * manifest.frame_ms() / 1000.0;
        let decoding = crate::asr::Decoding {
            rejected: out.rejected,
            hint: out.hint,
            alternatives: out.alternatives,
        };
        if args.json {
            let line = serde_json::json!({
                "text": out.decoded.text,
                "confidence": out.decoded.confidence,
                "decoding": decoding,
            });
            println!("{line}");
        } else {
            println!("{}", out.decoded.text);
        }
    }
    eprintln!(
        "decoded {} files, {audio_s:.1} s of audio in {:.4} s: {:.4} ms per second of audio",
        args.wav.len(),
        decode_s,
        1000.0 * decode_s / audio_s.max(1e-9)
    );
    Ok(())
}
