//! `edgescribe serve`: the daemon as a Wyoming speech-to-text server only, without a microphone, for
//! a board that transcribes for others (Home Assistant's voice pipeline). `run` with
//! `[audio] device = "none"` and `[wyoming]` on (at `tcp://0.0.0.0:10300` unless configured).

use anyhow::Result;

use super::DaemonArgs;
use crate::config::Overrides;
use crate::pipeline::daemon::{self, RunOptions};

// The configuration's `[audio]` is not used (see the module comment).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Where to listen, `tcp://IP:PORT` (overrides wyoming.listen; default tcp://0.0.0.0:10300).
    #[arg(long)]
    listen: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let config_path = args.daemon.config.clone();
    daemon::run(RunOptions {
        config_path,
        overrides: Overrides {
            serve_only: true,
            wyoming_listen: args.listen,
            ..args.daemon.overrides()
        },
        input: None,
        realtime: false,
    })
}
