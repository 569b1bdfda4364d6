//! A Wyoming speech-to-text server, so Home Assistant's voice pipeline (Assist) can use this node's
//! recogniser, discovered over mDNS. The protocol: <https://github.com/OHF-Voice/wyoming>.
//!
//! - [`codec`]: the framing, sans I/O (bytes in, events out); [`audio`]: a request's PCM to 16 kHz
//!   mono, bounded; `request`: one request's state, sans I/O; [`languages`]: MMS codes as Home
//!   Assistant's and back; `messages`: `info` and `error`;
//! - `server`: the listener and its connections (tokio, one thread `wyoming`), `worker`: the bounded
//!   queue of finished requests in front of the recogniser (thread `wyoming-asr`);
//! - [`zeroconf`]: the `_wyoming._tcp.local.` announcement.
//!
//! The recogniser is reached through [`Backend`], which the daemon implements over the model it
//! already has loaded (`pipeline::wyoming`): one model serves the microphone and the server.

pub mod audio;
pub mod codec;
mod config;
mod connection;
pub mod languages;
mod messages;
mod request;
mod server;
mod worker;
pub mod zeroconf;

use std::time::SystemTime;

pub use config::{parse_listen, WyomingConfig, DEFAULT_LISTEN};
pub use server::{Counters, Server, WyomingStats};

/// What the server needs from the recogniser.
pub trait Backend: Send + Sync + 'static {
    /// The loaded languages' MMS codes and the one used when a request names none.
    fn languages(&self) -> (Vec<String>, String);
    /// Runs the recogniser on 16 kHz mono audio in `lang` (an MMS code from `languages`), blocking;
    /// `started_at` is when the request's audio began (for MQTT). The text, or why not.
    fn transcribe(
        &self,
        lang: &str,
        samples: Vec<f32>,
        started_at: SystemTime,
    ) -> Result<String, String>;
    /// The model's name, for `info`.
    fn model_name(&self) -> String;
}
