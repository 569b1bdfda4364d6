//! Command-line interface: argument parsing and one module per subcommand.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod config_cmds;
mod daemon_args;
mod decode_args;
mod devices;
mod listen;
mod model_args;
mod pull_adapters;
mod run;
mod serve;
mod transcribe;
mod vad;

pub use daemon_args::DaemonArgs;
pub use model_args::{ModelArgs, ModelDirArg};

#[derive(Debug, Parser)]
#[command(
    name = "edgescribe",
    version,
    about = "Offline multilingual speech-to-text node (MMS through tract)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: microphone (or --input FILE.wav) → VAD → recogniser → MQTT.
    Run(run::Args),
    /// A Wyoming speech-to-text server only (no microphone), for Home Assistant's voice pipeline.
    Serve(serve::Args),
    /// Transcribe a WAV file and print the transcript.
    Transcribe(transcribe::Args),
    /// Fetch, verify and cache the adapters of the languages asked for (only those).
    PullAdapters(pull_adapters::Args),
    /// Measure load time and real-time factor (driven by benches/bench.py).
    Bench(bench::Args),
    /// List ALSA capture devices with the formats, rates and channel counts each offers.
    Devices(devices::Args),
    /// Capture and cut utterances (no recognition): one JSON line per utterance, to check a microphone.
    Listen(listen::Args),
    /// Find the utterances in a WAV file (JSON lines), to tune the voice-activity detector.
    Vad(vad::Args),
    /// Validate a configuration file without starting anything.
    CheckConfig(config_cmds::CheckArgs),
    /// Print the documented default configuration (systemd/edgescribe.toml).
    PrintDefaultConfig,
}

impl Cli {
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Run(args) => run::run(args),
            Command::Serve(args) => serve::run(args),
            Command::Transcribe(args) => transcribe::run(args),
            Command::PullAdapters(args) => pull_adapters::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Devices(args) => devices::run(args),
            Command::Listen(args) => listen::run(args),
            Command::Vad(args) => vad::run(args),
            Command::CheckConfig(args) => config_cmds::check(args),
            Command::PrintDefaultConfig => config_cmds::print_default(),
        }
    }
}
