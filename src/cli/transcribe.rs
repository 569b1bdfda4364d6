//! `edgescribe transcribe`: one WAV file in, its transcript out.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::ModelArgs;
use crate::asr::store::{cache, AdapterStore, StoreOptions};
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
    /// WAV file: 8-48 kHz, mono or stereo, 8/16/24/32-bit integer or 32-bit float. Up to 30 s it
    /// is transcribed in one piece; a longer one is cut at pauses (the daemon's voice-activity
    /// detector) and read as it goes, so any length fits in memory.
    wav: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let model_dir = args.model.model_dir()?;
    let options = args.model.engine_options();
    // Open the audio first: a bad file should not cost a model load.
    let stream = WavStream::open(&args.wav, MODEL_RATE_HZ).context("reading audio")?;
    let engine = Arc::new(Engine::load(&model_dir, &options)?);
    let lang = args
        .model
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
    let transcript = offline::transcribe(&recognizer, stream)
        .with_context(|| format!("transcribing {}", args.wav.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&transcript)?);
    } else {
        println!("{}", transcript.text);
    }
    Ok(())
}
