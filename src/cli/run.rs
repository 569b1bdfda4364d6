//! `edgescribe run`: the daemon (microphone → VAD → recogniser → MQTT). What systemd starts.

use std::path::PathBuf;

use anyhow::Result;

use super::DaemonArgs;
use crate::config::Overrides;
use crate::pipeline::daemon::{self, RunOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// A WAV recording instead of the microphone. The daemon exits 0 once every utterance in it is
    /// transcribed and acknowledged by the broker.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Pace the recording as a microphone would deliver it (default: as fast as it is recognised).
    #[arg(long, requires = "input")]
    realtime: bool,
    /// Save each utterance as WAV + transcript JSON here (overrides record.dir).
    #[arg(long)]
    record_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let config_path = args.daemon.config.clone();
    daemon::run(RunOptions {
        config_path,
        overrides: Overrides {
            record_dir: args.record_dir,
            ..args.daemon.overrides()
        },
        input: args.input,
        realtime: args.realtime,
    })
}
