//! The options `run` and `serve` share: the configuration file and what overrides it.

use std::path::PathBuf;

use super::ModelArgs;
use crate::config::Overrides;

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Configuration file. Default: /etc/edgescribe/edgescribe.toml if it exists, else the built-in
    /// defaults (`edgescribe print-default-config` shows them).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Broker, `mqtt://host[:port]` or `mqtts://host[:port]` (overrides mqtt.broker). Without one
    /// anywhere, the embedded broker is used.
    #[arg(long)]
    mqtt_url: Option<String>,
    /// Second topic level and the Wyoming server's mDNS name (overrides mqtt.device_id; default:
    /// the host name).
    #[arg(long)]
    device_id: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Adapter cache directory (overrides adapters.cache_dir).
    #[arg(long)]
    cache: Option<PathBuf>,
}

impl DaemonArgs {
    /// The overrides these options make; the subcommand adds its own.
    pub fn overrides(self) -> Overrides {
        Overrides {
            mqtt_url: self.mqtt_url,
            device_id: self.device_id,
            lang: self.model.lang,
            model: self.model.dir.model,
            threads: self.model.threads,
            cache: self.cache,
            ..Overrides::default()
        }
    }
}
