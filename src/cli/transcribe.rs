//! `edgescribe transcribe`: one WAV file in, its transcript out.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::asr::store::{cache, AdapterStore, StoreOptions};
use crate::asr::{Engine, EngineOptions, Recognizer};
use crate::audio::{wav, MODEL_RATE_HZ};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exported model directory (see models/export.py). Default: $EDGESCRIBE_MODEL, then the bundled model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Language code (ISO 639-3, as MMS names them: eng, fra, deu, ...). Default: the model's default.
    #[arg(long)]
    lang: Option<String>,
    /// Print JSON: text, language, confidence, and per-word times and confidences.
    #[arg(long)]
    json: bool,
    /// Adapter cache to look in after the model directory (see `pull-adapters`). Default: the same
    /// default as `pull-adapters`.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Threads for inference (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// WAV file: 8-48 kHz, mono or stereo, 8/16/24/32-bit integer or 32-bit float.
    wav: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let model_dir = match args.model {
        Some(dir) => dir,
        None => super::default_model_dir()?,
    };
    let mut options = EngineOptions::default();
    if let Some(threads) = args.threads {
        options.threads = threads.max(1);
    }
    // Decode the audio first: a bad file should not cost a model load.
    let samples = wav::read_mono(&args.wav, MODEL_RATE_HZ).context("reading audio")?;
    let engine = Arc::new(Engine::load(&model_dir, &options)?);
    let lang = args
        .lang
        .unwrap_or_else(|| engine.manifest().default_language.clone());
    // The model directory's bundled copy first, then the cache; nothing is fetched here.
    let pack = match args.cache.or_else(cache::default_root) {
        Some(root) => {
            let store = AdapterStore::for_engine(&engine, StoreOptions::offline(root))?;
            engine.language_from(&lang, &store.locate(&lang)?)?
        }
        None => engine.language(&lang)?,
    };
    let recognizer = Recognizer::new(engine, pack);
    let transcript = recognizer
        .transcribe(&samples)
        .with_context(|| format!("transcribing {}", args.wav.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&transcript)?);
    } else {
        println!("{}", transcript.text);
    }
    Ok(())
}
