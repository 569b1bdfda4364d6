//! `edgescribe serve`: the daemon as a Wyoming speech-to-text server only, without a microphone, for
//! a board that transcribes for others (Home Assistant's voice pipeline). `run` with
//! `[audio] device = "none"` and `[wyoming]` on (at `tcp://0.0.0.0:10300` unless configured).

use std::path::PathBuf;

use anyhow::Result;

use super::ModelArgs;
use crate::config::Overrides;
use crate::pipeline::daemon::{self, RunOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file. Default: /etc/edgescribe/edgescribe.toml if it exists, else the built-in
    /// defaults; its `[audio]` is not used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to listen, `tcp://IP:PORT` (overrides wyoming.listen; default tcp://0.0.0.0:10300).
    #[arg(long)]
    listen: Option<String>,
    /// Broker, `mqtt://host[:port]` or `mqtts://host[:port]` (overrides mqtt.broker); without one
    /// anywhere, the embedded broker is used.
    #[arg(long)]
    mqtt_url: Option<String>,
    /// Second topic level and the mDNS instance name (overrides mqtt.device_id; default: the host name).
    #[arg(long)]
    device_id: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Adapter cache directory (overrides adapters.cache_dir).
    #[arg(long)]
    cache: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    daemon::run(RunOptions {
        config_path: args.config,
        overrides: Overrides {
            mqtt_url: args.mqtt_url,
            device_id: args.device_id,
            lang: args.model.lang,
            model: args.model.dir.model,
            threads: args.model.threads,
            cache: args.cache,
            serve_only: true,
            wyoming_listen: args.listen,
            ..Overrides::default()
        },
        input: None,
        realtime: false,
    })
}
