//! `edgescribe listen`: microphone (or a recording) → VAD, printing each utterance as a JSON line.
//! For checking a microphone and the VAD on the device itself, before the recogniser is involved;
//! `benches/idle_cost.py` uses it to measure what listening costs with nobody speaking.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::audio::alsa::{AlsaConfig, AlsaSource};
use crate::audio::file::WavSource;
use crate::audio::source::AudioSource;
use crate::audio::MODEL_RATE_HZ;
use crate::pipeline::listen::Listener;
use crate::vad::VadConfig;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// ALSA capture device (see `edgescribe devices`).
    #[arg(long, default_value = "default", conflicts_with = "input")]
    device: String,
    /// A WAV recording instead of the microphone.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Pace the recording as a microphone would deliver it.
    #[arg(long, requires = "input")]
    realtime: bool,
}

pub fn run(args: Args) -> Result<()> {
    let source: Box<dyn AudioSource> = match &args.input {
        Some(path) => Box::new(WavSource::new(path, args.realtime)),
        None => Box::new(AlsaSource::new(AlsaConfig {
            device: args.device.clone(),
            ..AlsaConfig::default()
        })),
    };
    let unpaced_file = args.input.is_some() && !args.realtime;
    let mut listener = Listener::start(source, &VadConfig::default(), 16, unpaced_file)?;
    let ms = |samples: u64| samples * 1000 / MODEL_RATE_HZ as u64;
    loop {
        match listener.utterances().pop(Duration::from_millis(500)) {
            Some(u) => {
                let line = serde_json::json!({
                    "start_ms": ms(u.start_sample),
                    "end_ms": ms(u.start_sample + u.samples.len() as u64),
                    "end_reason": u.end.as_str(),
                });
                println!("{line}");
            }
            None if listener.utterances().is_closed_and_empty() => break,
            None => {}
        }
    }
    listener.wait()?;
    Ok(())
}
