//! `edgescribe run`: the daemon (microphone → VAD → recogniser → MQTT). What systemd starts.

use std::path::PathBuf;

use anyhow::Result;

use super::ModelArgs;
use crate::config::Overrides;
use crate::pipeline::daemon::{self, RunOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file. Default: /etc/edgescribe/edgescribe.toml if it exists, else the built-in
    /// defaults (`edgescribe print-default-config` shows them).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A WAV recording instead of the microphone. The daemon exits 0 once every utterance in it is
    /// transcribed and acknowledged by the broker.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Pace the recording as a microphone would deliver it (default: as fast as it is recognised).
    #[arg(long, requires = "input")]
    realtime: bool,
    /// Broker, `mqtt://host[:port]` or `mqtts://host[:port]` (overrides mqtt.broker). Without one
    /// anywhere, the embedded broker is used.
    #[arg(long)]
    mqtt_url: Option<String>,
    /// Second topic level (overrides mqtt.device_id; default: the host name).
    #[arg(long)]
    device_id: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Adapter cache directory (overrides adapters.cache_dir).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Save each utterance as WAV + transcript JSON here (overrides record.dir).
    #[arg(long)]
    record_dir: Option<PathBuf>,
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
            record_dir: args.record_dir,
            ..Overrides::default()
        },
        input: args.input,
        realtime: args.realtime,
    })
}
