//! Errors that stop the MQTT layer from starting. Once started it never fails: connection
//! problems are retried and reported through [`super::MqttHandle::connection`] and the log.

use std::path::PathBuf;

use super::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A key of `[mqtt]` is wrong. Fix the configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A CA, certificate or key file is unreadable or not what it should be.
    #[error("TLS file {path}: {reason}")]
    Tls { path: PathBuf, reason: String },

    /// The spool directory cannot be created or read. Fix its permissions or unset `spool_dir`.
    #[error("spool directory {path}: {source}")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The embedded broker cannot listen (address in use: another broker runs there; then set
    /// `broker` to use it instead).
    #[error("embedded broker on {addr}: {reason}")]
    EmbeddedBroker { addr: String, reason: String },

    /// The `[mqtt]` languages list is empty or does not contain the active language.
    #[error("device info: {0}")]
    DeviceInfo(String),

    /// A thread or the async runtime could not be created (out of resources).
    #[error("starting the MQTT thread: {0}")]
    Runtime(std::io::Error),
}
