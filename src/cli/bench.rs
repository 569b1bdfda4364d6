//! `edgescribe bench`: load time and real-time factor of the recogniser, as one JSON line.
//! Driven by benches/bench.py, which also measures peak RSS and runs onnxruntime beside it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::asr::{Engine, EngineOptions, Recognizer};
use crate::audio::{wav, MODEL_RATE_HZ};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exported model directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Language whose adapter to use (default: the model's default).
    #[arg(long)]
    lang: Option<String>,
    /// Audio to transcribe (any WAV; it is resampled to 16 kHz mono).
    #[arg(long)]
    wav: PathBuf,
    /// Timed runs after one untimed warm-up run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Threads for inference (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Report {
    engine: &'static str,
    model: String,
    audio_s: f64,
    threads: usize,
    load_s: f64,
    first_run_s: f64,
    run_s: f64,
    rtf: f64,
    runs: usize,
}

pub fn run(args: Args) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let model_dir = match args.model {
        Some(dir) => dir,
        None => super::default_model_dir()?,
    };
    let mut options = EngineOptions::default();
    if let Some(threads) = args.threads {
        options.threads = threads.max(1);
    }
    let samples = wav::read_mono(&args.wav, MODEL_RATE_HZ).context("reading audio")?;

    let t0 = Instant::now();
    let engine = Arc::new(Engine::load(&model_dir, &options)?);
    let lang = args
        .lang
        .unwrap_or_else(|| engine.manifest().default_language.clone());
    let pack = engine.language(&lang)?;
    let recognizer = Recognizer::new(engine, pack);
    let load_s = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    recognizer.transcribe(&samples)?;
    let first_run_s = t0.elapsed().as_secs_f64();
    let mut times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let t0 = Instant::now();
        recognizer.transcribe(&samples)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let run_s = times[times.len() / 2];
    let audio_s = samples.len() as f64 / MODEL_RATE_HZ as f64;
    let report = Report {
        engine: "edgescribe (tract)",
        model: model_dir.display().to_string(),
        audio_s,
        threads: options.threads,
        load_s,
        first_run_s,
        run_s,
        rtf: run_s / audio_s,
        runs: args.runs,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
