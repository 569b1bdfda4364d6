//! The `[mqtt]` table of the daemon's configuration: typed, defaulted, validated before use.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::topics;
use crate::config::{within, MAX_LEVEL_BYTES, MAX_PREFIX_BYTES};
use crate::redact::redact_url;

/// How the node reaches MQTT. Every key is optional; units are in the names.
///
/// No key holds a secret: the password is read from `password_file` or `password_env` when the
/// connection starts, so the configuration can be logged and shared as is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (TLS, default 8883).
    /// Absent: the node runs its own broker on `embedded_listen` and publishes there.
    pub broker: Option<String>,
    /// Where the embedded broker listens when `broker` is absent. `0.0.0.0:1883` lets other
    /// machines subscribe to the device directly.
    pub embedded_listen: SocketAddr,
    /// First topic level(s): topics are `<prefix>/<device_id>/…`.
    pub prefix: String,
    /// Second topic level; default: the host name.
    pub device_id: Option<String>,
    /// MQTT client id; default `edgescribe-<device_id>`. Stable across restarts so the broker
    /// replaces a half-dead old connection of ours instead of keeping two.
    pub client_id: Option<String>,
    /// A crash shows as `offline` within 1.5 × this (the broker's keep-alive grace).
    pub keep_alive_s: u64,
    /// CA certificates (PEM) that sign the broker's certificate; `mqtts://` only. Absent: the
    /// system's trust store is not consulted (we ship no copy), so `mqtts://` requires it.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for brokers that require one; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: Option<PathBuf>,
    pub username: Option<String>,
    /// File holding the password (trailing newline ignored). Keep it mode 0600.
    pub password_file: Option<PathBuf>,
    /// Name of an environment variable holding the password (e.g. set by systemd's
    /// `LoadCredential`/`EnvironmentFile`).
    pub password_env: Option<String>,
    /// Largest packet sent or accepted. rumqttc's default (10 KiB) is too small for long
    /// transcripts with word timings.
    pub max_packet_bytes: usize,
    /// First wait before reconnecting; doubles per failed attempt up to `reconnect_max_ms`,
    /// with ±25 % jitter (kept within the two bounds) so a fleet does not reconnect in lockstep
    /// after a broker restart.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Announce the node to Home Assistant (MQTT discovery).
    pub ha_discovery: bool,
    pub ha_discovery_prefix: String,
    /// Also speak Rhasspy's Hermes protocol (`hermes/asr/textCaptured`, `toggleOn`/`toggleOff`).
    pub hermes: bool,
    /// Hermes site id: toggles for other sites are ignored.
    pub site_id: String,
    /// Transcripts kept until the broker acknowledges them; when full the oldest is dropped
    /// (and counted in `…/stats`).
    pub outbox_capacity: usize,
    /// Directory where unacknowledged transcripts are also written, so a restart of the daemon
    /// during a broker outage loses nothing. Absent: memory only.
    pub spool_dir: Option<PathBuf>,
    /// How often the daemon publishes `…/stats`.
    pub stats_interval_s: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: None,
            embedded_listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            prefix: "edgescribe".into(),
            device_id: None,
            client_id: None,
            keep_alive_s: 30,
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password_file: None,
            password_env: None,
            max_packet_bytes: 1 << 20,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            ha_discovery: true,
            ha_discovery_prefix: "homeassistant".into(),
            hermes: false,
            site_id: "default".into(),
            outbox_capacity: 5000,
            spool_dir: None,
            stats_interval_s: 60,
        }
    }
}

/// A configuration value that cannot work. Renders as `mqtt.<key>: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mqtt.{key}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

/// Topic parts longer than `max` bytes are refused before anything is built from them.
fn check_len(key: &'static str, value: &str, max: usize) -> Result<(), ConfigError> {
    if value.len() > max {
        return Err(err(
            key,
            format!("is {} bytes long: must be at most {max}", value.len()),
        ));
    }
    Ok(())
}

fn err(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

/// Where to connect, parsed from `broker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Parses `mqtt://host[:port]` / `mqtts://host[:port]`; IPv6 hosts in brackets.
pub fn parse_broker_url(url: &str) -> Result<BrokerAddr, String> {
    // Errors quote the URL: never with the credentials a mistyped one may hold.
    let shown = redact_url(url);
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(format!(
            "{shown:?}: expected mqtt://host[:port] or mqtts://host[:port]"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        // Credentials in a URL end up in logs and `ps`: refuse them.
        return Err("credentials in the URL are not accepted; use username and password_file or password_env".into());
    }
    if rest.contains('/') || rest.contains('?') {
        return Err(format!("{shown:?}: a broker URL has no path or query"));
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{shown:?}: unclosed '[' in IPv6 address"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{shown:?}: expected ':port' after ']'"))?,
                ),
            ),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{shown:?}: no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{shown:?}: port {p:?} is not a number in 1..=65535"))?,
    };
    Ok(BrokerAddr {
        host: host.to_string(),
        port,
        tls,
    })
}

impl MqttConfig {
    /// Checks every key; the first problem found is returned, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let broker = match &self.broker {
            Some(url) => Some(parse_broker_url(url).map_err(|r| err("broker", r))?),
            None => None,
        };
        if broker.is_none() && self.embedded_listen.port() == 0 {
            return Err(err(
                "embedded_listen",
                "needs a fixed port: subscribers must know where to connect",
            ));
        }
        check_len("prefix", &self.prefix, MAX_PREFIX_BYTES)?;
        topics::check_prefix(&self.prefix).map_err(|r| err("prefix", r))?;
        if let Some(id) = &self.device_id {
            check_len("device_id", id, MAX_LEVEL_BYTES)?;
            topics::check_level(id).map_err(|r| err("device_id", r))?;
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 65535 {
                return Err(err("client_id", "must be 1 to 65535 bytes"));
            }
        }
        check_len(
            "ha_discovery_prefix",
            &self.ha_discovery_prefix,
            MAX_PREFIX_BYTES,
        )?;
        topics::check_prefix(&self.ha_discovery_prefix)
            .map_err(|r| err("ha_discovery_prefix", r))?;
        if !(5..=3600).contains(&self.keep_alive_s) {
            // rumqttc refuses < 5 s; > 1 h makes a crash invisible for too long.
            return Err(err("keep_alive_s", "must be between 5 and 3600"));
        }
        if self.max_packet_bytes < 4096 || self.max_packet_bytes > 256 << 20 {
            return Err(err(
                "max_packet_bytes",
                "must be between 4096 and 268435456 (MQTT's limit)",
            ));
        }
        // Above 0: retrying at once is a busy loop against a broker that is down.
        within(self.reconnect_min_ms, 1..=60_000).map_err(|r| err("reconnect_min_ms", r))?;
        within(self.reconnect_max_ms, self.reconnect_min_ms..=3_600_000)
            .map_err(|r| err("reconnect_max_ms", r))?;
        within(self.outbox_capacity, 1..=1_000_000).map_err(|r| err("outbox_capacity", r))?;
        within(self.stats_interval_s, 1..=86_400).map_err(|r| err("stats_interval_s", r))?;
        if self.hermes {
            check_len("site_id", &self.site_id, MAX_LEVEL_BYTES)?;
            topics::check_level(&self.site_id).map_err(|r| err("site_id", r))?;
        }
        let tls = broker.as_ref().is_some_and(|b| b.tls);
        for (key, value) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            if value.is_some() && !tls {
                return Err(err(key, "only used with an mqtts:// broker"));
            }
        }
        if tls && self.ca_file.is_none() {
            return Err(err(
                "ca_file",
                "required with mqtts://: the CA that signed the broker's certificate",
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            let missing = if self.cert_file.is_some() {
                "key_file"
            } else {
                "cert_file"
            };
            return Err(err(
                missing,
                "cert_file and key_file go together (client certificate authentication)",
            ));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return Err(err(
                "password_env",
                "set password_file or password_env, not both",
            ));
        }
        if (self.password_file.is_some() || self.password_env.is_some()) && self.username.is_none()
        {
            return Err(err("username", "required when a password is configured"));
        }
        if broker.is_none()
            && (self.username.is_some()
                || self.password_file.is_some()
                || self.password_env.is_some())
        {
            return Err(err(
                "username",
                "the embedded broker (no `broker` set) takes no credentials",
            ));
        }
        Ok(())
    }

    /// The broker to connect to, `None` for the embedded one. Call after [`MqttConfig::validate`].
    pub fn broker_addr(&self) -> Result<Option<BrokerAddr>, ConfigError> {
        self.broker
            .as_deref()
            .map(|u| parse_broker_url(u).map_err(|r| err("broker", r)))
            .transpose()
    }

    /// `device_id`, or the host name (sanitised into one topic level), or `edgescribe`.
    pub fn device_id(&self) -> String {
        if let Some(id) = &self.device_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .map(|c| {
                if matches!(c, '/' | '+' | '#' | '\0') {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let host = host.trim_start_matches('$');
        if host.is_empty() {
            "edgescribe".into()
        } else {
            host.to_string()
        }
    }

    pub fn client_id(&self, device_id: &str) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("edgescribe-{device_id}"))
    }

    /// Reads the password from `password_file` or `password_env`, if one is configured.
    pub fn password(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("password_file", format!("{}: {e}", path.display())))?;
            let pw = text.strip_suffix('\n').unwrap_or(&text);
            let pw = pw.strip_suffix('\r').unwrap_or(pw);
            return Ok(Some(Secret(pw.to_string())));
        }
        if let Some(var) = &self.password_env {
            // Not `VarError`'s text: for a value that is not UTF-8 it quotes the value.
            let pw = std::env::var(var).map_err(|e| {
                let why = match e {
                    std::env::VarError::NotPresent => "is not set",
                    std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                };
                err("password_env", format!("environment variable {var} {why}"))
            })?;
            return Ok(Some(Secret(pw)));
        }
        Ok(None)
    }
}

/// A password. `Debug` and `Display` print `***`, so it cannot leak through logs or error chains.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The only way to the value; grep for it when auditing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<MqttConfig, String> {
        serde_json::from_str::<MqttConfig>(extra).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_valid_and_mean_embedded_broker() {
        let c = MqttConfig::default();
        c.validate().unwrap();
        assert_eq!(c.broker_addr().unwrap(), None);
        assert_eq!(c.prefix, "edgescribe");
        assert!(!c.device_id().is_empty());
        assert!(c.client_id("pi").starts_with("edgescribe-pi"));
    }

    #[test]
    fn broker_urls() {
        let p = |u: &str| parse_broker_url(u);
        // A mistyped scheme with credentials: the error quotes the URL, never the password.
        for url in [
            "tcp://u:SECRET@host",
            "mqtt//u:SECRET@host",
            "u:SECRET@host:1883",
        ] {
            let e = p(url).unwrap_err();
            assert!(!e.contains("SECRET"), "{e}");
            assert!(e.contains("***@host"), "{e}");
        }
        assert_eq!(
            p("mqtt://broker.lan").unwrap(),
            BrokerAddr {
                host: "broker.lan".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(p("mqtts://b:1234/").unwrap().port, 1234);
        assert_eq!(p("mqtts://b").unwrap().port, 8883);
        let v6 = p("mqtt://[::1]:1999").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1999));
        assert_eq!(v6.to_string(), "mqtt://[::1]:1999");
        for bad in [
            "tcp://b",
            "mqtt://",
            "mqtt://b:0",
            "mqtt://b:x",
            "mqtt://u:p@b",
            "mqtt://b/x",
            "mqtt://[::1",
        ] {
            assert!(p(bad).is_err(), "{bad} accepted");
        }
        assert!(p("mqtt://u:hunter2@b")
            .unwrap_err()
            .contains("password_file"));
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let e = cfg(r#"{"brokr": "mqtt://b"}"#).unwrap_err();
        assert!(e.contains("brokr"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let check = |json: &str, key: &str| {
            let e = cfg(json).unwrap().validate().unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
            assert!(e.to_string().starts_with(&format!("mqtt.{key}: ")));
        };
        check(r#"{"broker": "http://x"}"#, "broker");
        check(r#"{"prefix": "a/#"}"#, "prefix");
        check(r#"{"embedded_listen": "127.0.0.1:0"}"#, "embedded_listen");
        check(r#"{"device_id": "a/b"}"#, "device_id");
        check(r#"{"keep_alive_s": 1}"#, "keep_alive_s");
        check(r#"{"max_packet_bytes": 10}"#, "max_packet_bytes");
        check(r#"{"reconnect_min_ms": 0}"#, "reconnect_min_ms");
        check(
            r#"{"reconnect_min_ms": 100, "reconnect_max_ms": 50}"#,
            "reconnect_max_ms",
        );
        check(r#"{"outbox_capacity": 0}"#, "outbox_capacity");
        check(r#"{"broker": "mqtt://b", "ca_file": "/ca.pem"}"#, "ca_file");
        check(r#"{"broker": "mqtts://b"}"#, "ca_file");
        check(
            r#"{"broker": "mqtts://b", "ca_file": "/ca", "cert_file": "/c"}"#,
            "key_file",
        );
        check(r#"{"broker": "mqtt://b", "password_env": "P"}"#, "username");
        check(
            r#"{"broker": "mqtt://b", "username": "u", "password_env": "P", "password_file": "/p"}"#,
            "password_env",
        );
        check(r#"{"username": "u"}"#, "username");
        check(r#"{"hermes": true, "site_id": "a/b"}"#, "site_id");
    }

    #[test]
    fn password_from_file_and_env_never_printed() {
        let dir = std::env::temp_dir().join(format!("es-mqtt-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let mut c = MqttConfig {
            broker: Some("mqtt://b".into()),
            username: Some("u".into()),
            password_file: Some(file),
            ..MqttConfig::default()
        };
        let pw = c.password().unwrap().unwrap();
        assert_eq!(pw.expose(), "s3cret");
        assert!(!format!("{pw:?} {pw}").contains("s3cret"));

        c.password_file = None;
        c.password_env = Some("EDGESCRIBE_TEST_UNSET_PASSWORD_VAR".into());
        let e = c.password().unwrap_err();
        assert_eq!(e.key, "password_env");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
