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
    /// `edgescribe serve` (the server alone, no microphone), the four languages; `extra` is added
    /// to `[wyoming]` (bounds for the test at hand).
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
                "languages = [{}]\n[adapters]\ncache_dir = \"{}\"\nsource = \"\"\n\
                 [mqtt]\nbroker = \"{}\"\ndevice_id = \"{device_id}\"\n[wyoming]\n{extra}\n",
                langs.join(", "),
                dir.join("cache").display(),
                broker.url()
            ),
        )
        .unwrap();
        // `serve`: no microphone, the server on; its own listen address (a free port).
        let args = [
            "--config".into(),
            config.display().to_string(),
            "--listen".into(),
            format!("tcp://{listen_ip}:0"),
        ];
        Server::started(Daemon::start_subcommand("serve", &args, &[]))
    }

    /// `edgescribe run ARGS`, whose configuration turns the server on; waits until it is ready.
    pub fn launch(args: &[String]) -> Server {
        Server::started(Daemon::start(args, &[]))
    }

    fn started(daemon: Daemon) -> Server {
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
