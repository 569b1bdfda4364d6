//! Wiring the stages together: microphone → VAD → recogniser → MQTT.
//!
//! [`listen`] runs capture and the VAD, [`offline`] transcribes a recording without the daemon, [`recognize`] the recogniser thread, [`daemon`] starts
//! everything and runs the control loop (`edgescribe run`); [`queue`] is the bounded hand-over
//! between threads.

pub mod daemon;
mod languages;
pub mod listen;
pub mod offline;
pub mod queue;
pub mod recognize;
pub mod record;
mod stats;
pub mod wyoming;
