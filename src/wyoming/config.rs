//! `[wyoming]`: the Wyoming speech-to-text server (Home Assistant's voice pipeline).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::within;

/// Home Assistant's Wyoming speech-to-text servers listen here by convention.
pub const DEFAULT_LISTEN: &str = "tcp://0.0.0.0:10300";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WyomingConfig {
    /// `tcp://HOST:PORT`; absent: no server (the default).
    pub listen: Option<String>,
    /// Announce the server over mDNS (`_wyoming._tcp.local.`) so Home Assistant discovers it.
    pub zeroconf: bool,
    /// Connections served at once; one more is answered with an `error` and closed (counted).
    pub max_connections: usize,
    /// Requests (finished audio) waiting for the recogniser; one more is answered with an `error`
    /// `busy` (counted) rather than waiting behind a backlog no client would wait for.
    pub queue_requests: usize,
    /// The longest audio one request may send; beyond it the request gets an `error`.
    pub max_audio_s: u64,
    /// A connection silent this long between events is closed.
    pub idle_timeout_s: u64,
    /// One event must arrive whole within this time of its first byte (a slow or stalled client);
    /// also the time allowed to write a reply.
    pub event_timeout_s: u64,
    /// From `transcribe` (or `audio-start`) to `audio-stop`: a client trickling audio is cut off;
    /// and again from `audio-stop` to the transcript: a backlog or a hung recogniser.
    pub request_timeout_s: u64,
    /// Publish the server's transcripts on MQTT too (`"source": "wyoming"`).
    pub publish_mqtt: bool,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        WyomingConfig {
            listen: None,
            zeroconf: true,
            max_connections: 32,
            queue_requests: 16,
            max_audio_s: 30,
            idle_timeout_s: 60,
            event_timeout_s: 10,
            request_timeout_s: 120,
            publish_mqtt: true,
        }
    }
}

/// `(key, reason)`, as the other tables report.
type Check = Result<(), (String, String)>;

fn in_range(key: &str, value: u64, range: std::ops::RangeInclusive<u64>) -> Check {
    within(value, range).map_err(|r| (key.to_string(), r))
}

impl WyomingConfig {
    pub fn validate(&self) -> Check {
        if let Some(listen) = &self.listen {
            parse_listen(listen).map_err(|r| ("listen".to_string(), r))?;
        }
        in_range("max_connections", self.max_connections as u64, 1..=1024)?;
        in_range("queue_requests", self.queue_requests as u64, 1..=256)?;
        // Past 5 minutes an utterance is not a voice command, and its activations grow with it.
        in_range("max_audio_s", self.max_audio_s, 1..=300)?;
        in_range("idle_timeout_s", self.idle_timeout_s, 1..=86_400)?;
        in_range("event_timeout_s", self.event_timeout_s, 1..=600)?;
        in_range("request_timeout_s", self.request_timeout_s, 1..=3600)
    }

    /// The address to bind, if the server is on.
    pub fn listen_addr(&self) -> Option<Result<SocketAddr, String>> {
        self.listen.as_deref().map(parse_listen)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_s)
    }

    pub fn event_timeout(&self) -> Duration {
        Duration::from_secs(self.event_timeout_s)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_s)
    }
}

/// `tcp://0.0.0.0:10300`, `tcp://[::]:10300`, `tcp://127.0.0.1:0` (port 0: any free port).
pub fn parse_listen(listen: &str) -> Result<SocketAddr, String> {
    let addr = listen
        .strip_prefix("tcp://")
        .ok_or_else(|| format!("{listen:?}: must be tcp://HOST:PORT, e.g. {DEFAULT_LISTEN:?}"))?;
    addr.parse::<SocketAddr>().map_err(|_| {
        format!("{listen:?}: must be tcp://IP:PORT with a numeric IP, e.g. {DEFAULT_LISTEN:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen(DEFAULT_LISTEN),
            Ok("0.0.0.0:10300".parse().unwrap())
        );
        assert!(parse_listen("tcp://[::]:10300").is_ok());
        for bad in [
            "0.0.0.0:10300",
            "tcp://host.local:10300",
            "tcp://1.2.3.4",
            "unix:///x",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn off_by_default_and_bounded() {
        let c = WyomingConfig::default();
        assert_eq!(c.listen_addr(), None);
        assert_eq!(c.validate(), Ok(()));
        let c = WyomingConfig {
            max_connections: 0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "max_connections");
    }
}
