//! `edgescribe bench`: load time and real-time factor of the recogniser, as one JSON line.
//! Driven by benches/bench.py, which also measures peak RSS and runs onnxruntime beside it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::ModelArgs;
use crate::asr::{process_status_kb, Engine, LoadTimings, Passes, ProfileKey, Recognizer};
use crate::audio::{wav, MODEL_RATE_HZ};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Audio to transcribe (any WAV; it is resampled to 16 kHz mono).
    #[arg(long)]
    wav: PathBuf,
    /// Timed runs after one untimed warm-up run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// `stock`: tract alone, without edgescribe's segment split and passes (crates/tract-accel).
    #[arg(long, value_enum, default_value_t = PassChoice::All)]
    passes: PassChoice,
    /// Also time every node of one run and print seconds per op type to stderr, slowest first.
    #[arg(long)]
    profile: bool,
    /// Like --profile, one line per node: op, node name, op info and input shapes, tab-separated.
    #[arg(long)]
    profile_nodes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PassChoice {
    All,
    Stock,
}

#[derive(Debug, Serialize)]
struct Report {
    engine: &'static str,
    model: String,
    load_timings: LoadTimings,
    audio_s: f64,
    threads: usize,
    load_s: f64,
    first_run_s: f64,
    run_s: f64,
    rtf: f64,
    runs: usize,
    /// Resident set once loaded, and after the first run (the harness measures the peak itself).
    rss_after_load_kb: Option<u64>,
    rss_after_first_run_kb: Option<u64>,
}

pub fn run(args: Args) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let model_dir = args.model.model_dir()?;
    let options = args.model.engine_options();
    let samples = wav::read_mono(&args.wav, MODEL_RATE_HZ).context("reading audio")?;

    let t0 = Instant::now();
    let passes = match args.passes {
        PassChoice::All => Passes::ALL,
        PassChoice::Stock => Passes::NONE,
    };
    let engine = Arc::new(Engine::load_with_passes(&model_dir, &options, passes)?);
    let load_timings = engine.load_timings();
    let lang = args
        .model
        .lang
        .unwrap_or_else(|| engine.manifest().default_language.clone());
    let pack = engine.language(&lang)?;
    let recognizer = Recognizer::new(engine.clone(), pack);
    let load_s = t0.elapsed().as_secs_f64();
    let rss_after_load_kb = process_status_kb("VmRSS:");

    let t0 = Instant::now();
    recognizer.transcribe(&samples)?;
    let first_run_s = t0.elapsed().as_secs_f64();
    // Between runs, what the daemon's recogniser does when its queue empties (outside the timing,
    // as it is outside an utterance's latency there).
    crate::memory::release_freed();
    let rss_after_first_run_kb = process_status_kb("VmRSS:");
    let mut times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let t0 = Instant::now();
        recognizer.transcribe(&samples)?;
        times.push(t0.elapsed().as_secs_f64());
        crate::memory::release_freed();
    }
    times.sort_by(f64::total_cmp);
    if args.profile || args.profile_nodes {
        let by = if args.profile_nodes {
            ProfileKey::Node
        } else {
            ProfileKey::Op
        };
        let per_op = engine.profile(&engine.language(&lang)?, &samples, by)?;
        let total: f64 = per_op.iter().map(|(_, s, _)| s).sum();
        eprintln!("profile: one run, {total:.3} s in nodes");
        for (op, seconds, nodes) in per_op {
            eprintln!(
                "{:>8.1} ms {:>5.1}% {nodes:>5} x {op}",
                seconds * 1e3,
                100.0 * seconds / total
            );
        }
    }
    let run_s = times[times.len() / 2];
    let audio_s = samples.len() as f64 / MODEL_RATE_HZ as f64;
    let report = Report {
        engine: match args.passes {
            PassChoice::All => "edgescribe (tract + passes)",
            PassChoice::Stock => "tract 0.23.9 stock",
        },
        model: model_dir.display().to_string(),
        load_timings,
        audio_s,
        threads: options.threads,
        load_s,
        first_run_s,
        run_s,
        rtf: run_s / audio_s,
        runs: args.runs,
        rss_after_load_kb,
        rss_after_first_run_kb,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
