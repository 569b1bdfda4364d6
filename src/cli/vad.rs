//! `edgescribe vad`: runs the segmenter on a WAV file, for tuning its thresholds on recordings.
//!
//! Prints one JSON line per utterance (`start_ms`, `end_ms`, `end_reason`); with `--frames`, also one
//! per analysis frame (energy, floor, decision), which `benches/vad_quality.py` scores. With `--bench`,
//! prints only the segmenter's CPU cost per second of audio.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Input frames read from the file at a time.
const READ_FRAMES: usize = 1 << 14;

use crate::audio::wav::{self, WavStream};
use crate::audio::MODEL_RATE_HZ;
use crate::vad::{Segmenter, VadConfig, VadEvent};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Analysis frame length, 10–30 ms.
    #[arg(long)]
    frame_ms: Option<u32>,
    /// High-pass cut-off before measuring energy (removes DC and rumble).
    #[arg(long)]
    highpass_hz: Option<f32>,
    /// Low-pass cut-off before measuring energy (the top of the voice band).
    #[arg(long)]
    lowpass_hz: Option<f32>,
    /// Speech starts this many dB above the noise floor.
    #[arg(long, allow_hyphen_values = true)]
    onset_db: Option<f32>,
    /// Inside an utterance, speech continues while this many dB above the floor.
    #[arg(long, allow_hyphen_values = true)]
    offset_db: Option<f32>,
    /// Frames quieter than this are never speech.
    #[arg(long, allow_hyphen_values = true)]
    min_level_dbfs: Option<f32>,
    /// Loud frames must last this long to start an utterance.
    #[arg(long)]
    min_speech_ms: Option<u32>,
    /// Silence that ends an utterance.
    #[arg(long)]
    hangover_ms: Option<u32>,
    /// Audio kept before the onset.
    #[arg(long)]
    pre_roll_ms: Option<u32>,
    /// Audio kept after the last speech frame.
    #[arg(long)]
    post_roll_ms: Option<u32>,
    /// Longer speech is split at a quiet point.
    #[arg(long)]
    max_utterance_s: Option<f32>,
    /// How far back from the limit to look for the split point.
    #[arg(long)]
    split_search_ms: Option<u32>,
    /// Window of the noise floor's minimum.
    #[arg(long)]
    floor_window_s: Option<f32>,
    /// Also print every frame's energy, floor and decision.
    #[arg(long, conflicts_with = "bench")]
    frames: bool,
    /// Print only the segmenter's CPU time per audio second (median of --runs passes).
    #[arg(long)]
    bench: bool,
    /// Passes over the audio for --bench.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Samples per push, in ms (the capture period the daemon would deliver).
    #[arg(long, default_value_t = 10)]
    push_ms: u32,
    /// WAV file: any rate, mono or stereo (converted to 16 kHz mono).
    wav: PathBuf,
}

impl Args {
    fn config(&self) -> VadConfig {
        let mut c = VadConfig::default();
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = v; } )* };
        }
        set!(
            frame_ms,
            highpass_hz,
            lowpass_hz,
            onset_db,
            offset_db,
            min_level_dbfs,
            min_speech_ms,
            hangover_ms,
            pre_roll_ms,
            post_roll_ms,
            max_utterance_s,
            split_search_ms,
            floor_window_s
        );
        c
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Utterance {
        start_ms: f64,
        end_ms: f64,
        end_reason: &'static str,
    },
    Frame {
        start_ms: f64,
        energy_dbfs: f32,
        floor_dbfs: f32,
        spread_db: f32,
        active: bool,
        speech: bool,
        in_utterance: bool,
    },
}

#[derive(Serialize)]
struct BenchReport {
    audio_s: f64,
    run_s: f64,
    runs: usize,
    /// Percent of one core the segmenter needs to keep up with real time.
    core_percent: f64,
}

fn to_ms(sample: u64) -> f64 {
    sample as f64 * 1000.0 / MODEL_RATE_HZ as f64
}

pub fn run(args: Args) -> Result<()> {
    let config = args.config();
    // Validate before decoding: a typo in a flag should not wait for a long file.
    Segmenter::new(&config, MODEL_RATE_HZ)?;
    if args.push_ms == 0 {
        bail!("--push-ms must be at least 1");
    }
    let push_len = (args.push_ms * MODEL_RATE_HZ / 1000) as usize;
    if args.bench {
        let samples = wav::read_mono(&args.wav, MODEL_RATE_HZ).context("reading audio")?;
        return bench(&config, &samples, push_len, args.runs);
    }
    // Read as it is consumed: an hours-long recording needs no more memory than a short one.
    let mut stream = WavStream::open(&args.wav, MODEL_RATE_HZ).context("reading audio")?;

    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut segmenter = Segmenter::new(&config, MODEL_RATE_HZ)?;
    let mut events = Vec::new();
    let mut frame_lines = Vec::new();
    let write_events = |out: &mut BufWriter<_>, events: &mut Vec<VadEvent>| -> Result<()> {
        for event in events.drain(..) {
            if let VadEvent::Utterance {
                start_sample,
                samples,
                end,
            } = event
            {
                let line = Line::Utterance {
                    start_ms: to_ms(start_sample),
                    end_ms: to_ms(start_sample + samples.len() as u64),
                    end_reason: end.as_str(),
                };
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
            }
        }
        Ok(())
    };
    for_each_push(&mut stream, push_len, |chunk| {
        segmenter.push_with(chunk, &mut events, |f| {
            if args.frames {
                frame_lines.push(Line::Frame {
                    start_ms: to_ms(f.start_sample),
                    energy_dbfs: f.energy_dbfs,
                    floor_dbfs: f.floor_dbfs,
                    spread_db: f.spread_db,
                    active: f.active,
                    speech: f.speech,
                    in_utterance: f.in_utterance,
                });
            }
        });
        for line in frame_lines.drain(..) {
            writeln!(out, "{}", serde_json::to_string(&line)?).context("writing output")?;
        }
        write_events(&mut out, &mut events).context("writing output")
    })?;
    segmenter.finish(&mut events);
    write_events(&mut out, &mut events).context("writing output")?;
    out.flush().context("writing output")?;
    Ok(())
}

/// Calls `f` with the file's samples in pushes of `push_len` (the last may be shorter), reading
/// as it goes.
fn for_each_push(
    stream: &mut WavStream,
    push_len: usize,
    mut f: impl FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut more = true;
    loop {
        while more && buf.len() < push_len {
            more = stream
                .read_into(READ_FRAMES, &mut buf)
                .context("reading audio")?;
        }
        let whole = if more {
            buf.len() / push_len * push_len
        } else {
            buf.len()
        };
        for chunk in buf[..whole].chunks(push_len) {
            f(chunk)?;
        }
        buf.drain(..whole);
        if !more {
            return Ok(());
        }
    }
}

/// Times the segmenter alone (the file is already decoded) over `runs` passes.
fn bench(config: &VadConfig, samples: &[f32], push_len: usize, runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut times = Vec::with_capacity(runs);
    let mut events = Vec::new();
    let mut utterances = 0usize;
    for _ in 0..runs {
        let mut segmenter = Segmenter::new(config, MODEL_RATE_HZ)?;
        let t0 = Instant::now();
        for chunk in samples.chunks(push_len) {
            segmenter.push(chunk, &mut events);
            utterances += events.len();
            events.clear();
        }
        segmenter.finish(&mut events);
        times.push(t0.elapsed().as_secs_f64());
        utterances += events.len();
        events.clear();
    }
    // Keeps the work observable, so the optimiser cannot drop it.
    std::hint::black_box(utterances);
    times.sort_by(f64::total_cmp);
    let run_s = times[times.len() / 2];
    let audio_s = samples.len() as f64 / MODEL_RATE_HZ as f64;
    let report = BenchReport {
        audio_s,
        run_s,
        runs,
        core_percent: 100.0 * run_s / audio_s.max(f64::MIN_POSITIVE),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
