//! The Wyoming server through the real client library (`wyoming` on PyPI, in a venv this test makes:
//! `venv`) and through raw sockets for what no well-behaved client sends: `edgescribe run` as a
//! child process with `[audio] device = "none"`, the bundled model, real Mosquitto.
//!
//! - `client`: describe within 1 s, the recordings' words in four languages at 16 kHz mono and
//!   44.1 kHz stereo, `en`/`eng`, an unconfigured language, 20 clients at once, MQTT's copy;
//! - `hostile`: garbage, truncated and oversized events, unknown events, over-long audio, timeouts,
//!   the connection bound; the server stays up through all of it;
//! - `shared`: one model for the microphone and the server, each in its own language;
//! - `zeroconf`: the announcement as a browser (`zeroconf` on PyPI) sees it.

#[path = "../common/mod.rs"]
mod common;

mod client;
mod hostile;
mod server;
mod shared;
mod venv;
mod zeroconf;
