//! The daemon as a Wyoming server only (`[audio] device = "none"`), on a port it picks itself.

use std::path::Path;
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::mosquitto::Mosquitto;

pub const LANGUAGES: [&str; 4] = ["eng", "fra", "deu", "spa"];

pub struct Server {
    pub daemon: Daemon,
    pub port: u16,
}

impl Server {
    /// The server alone (no microphone), the four languages; `extra` is added to `[wyoming]`
    /// (bounds for the test at hand).
    pub fn start(
        dir: &Path,
        broker: &Mosquitto,
        device_id: &str,
        listen_ip: &str,
        extra: &str,
    ) -> Server {
        let config = dir.join(format!("{device_id}.toml"));
        let langs: Vec<String> = LANGUAGES.iter().map(|l| format!("{l:?}")).collect();
        std::fs::write(
            &config,
            format!(
                "languages = [{}]\n[audio]\ndevice = \"none\"\n[adapters]\ncache_dir = \"{}\"\nsource = \"\"\n\
                 [mqtt]\nbroker = \"{}\"\ndevice_id = \"{device_id}\"\n\
                 [wyoming]\nlisten = \"tcp://{listen_ip}:0\"\n{extra}\n",
                langs.join(", "),
                dir.join("cache").display(),
                broker.url()
            ),
        )
        .unwrap();
        Server::launch(&["--config".into(), config.display().to_string()])
    }

    /// `edgescribe run ARGS`, whose configuration turns the server on; waits until it is ready.
    pub fn launch(args: &[String]) -> Server {
        let daemon = Daemon::start(args, &[]);
        let line = daemon.wait_log("wyoming: listening on", Duration::from_secs(120));
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        daemon.wait_log("ready:", Duration::from_secs(60));
        Server { daemon, port }
    }

    pub fn port(&self) -> String {
        self.port.to_string()
    }
}
