//! Wiring the stages together: microphone → VAD (→ recogniser → MQTT, with the daemon).

pub mod listen;
pub mod queue;
