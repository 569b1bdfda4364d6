//! MQTT: transcripts out, commands in, for Home Assistant, Node-RED and Rhasspy users.
//!
//! The public interface (topics, payloads, commands, Home Assistant entities, Hermes) is
//! documented in `docs/mqtt.md`.
//!
//! - Pure protocol logic, unit-tested without sockets: [`topics`], [`payload`], [`command`]
//!   (the parser everything from the network goes through), [`discovery`], [`outbox`]
//!   (delivery bookkeeping), [`limits`] (packet sizes against the broker's limit).
//! - I/O: [`spool`] (disk copy of the outbox), `tls` (rustls with ring), `broker` (embedded
//!   rumqttd), `eventloop` (the thread owning the rumqttc connection), `shared` (what the
//!   daemon's handle and that thread share).
//! - What the daemon uses: [`MqttConfig`], [`Mqtt::start`], [`MqttHandle`], [`Command`].
//!
//! Delivery guarantee: a transcript is removed from the bounded outbox only when the broker
//! acknowledges it (QoS 1 PubAck); after any reconnect the unacknowledged ones are sent again,
//! in order. Subscribers may therefore see duplicates, recognisable by `(boot_id, seq)`. A
//! transcript the broker refuses (a PubAck with an error reason: ACL, quota) or that exceeds its
//! packet limit even cut down is dropped, logged and counted (`transcripts_refused`), never
//! retried for ever.
//!
//! MQTT 5, for what 3.1.1 cannot say: the client's packet limit in CONNECT (the broker drops
//! larger messages instead of sending them and ending the connection), the broker's limit in
//! CONNACK (transcripts are cut to fit it), reasons in PubAck, and `Retain Handling = 2` on
//! command subscriptions (the broker does not send retained commands at all).

mod broker;
pub mod command;
mod config;
mod credentials;
pub mod discovery;
mod error;
mod eventloop;
mod handle;
pub mod limits;
pub mod outbox;
pub mod payload;
mod shared;
pub mod spool;
mod tls;
pub mod topics;

pub use command::Command;
pub use config::{parse_broker_url, BrokerAddr, ConfigError, MqttConfig, Secret};
pub use credentials::check;
pub use error::MqttError;
pub use handle::{Mqtt, MqttHandle, COMMAND_QUEUE};
pub use payload::{DaemonStats, DeviceState, TranscriptMessage};
pub use shared::ConnectionStatus;
pub use topics::Topics;

/// What the node announces about itself (Home Assistant device, `set/language` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The configured languages, selectable over MQTT.
    pub languages: Vec<String>,
    /// The language active at start; one of `languages`.
    pub language: String,
    /// Acoustic model name, sent with every transcript.
    pub model: String,
    /// edgescribe's version (`env!("CARGO_PKG_VERSION")`).
    pub version: String,
}
