//! edgescribe: an offline, multilingual speech-to-text node.
//!
//! Data flow, one module per stage: microphone ([`audio`]) → speech segments ([`vad`]) → recogniser
//! ([`asr`]) → [`mqtt`]; [`pipeline`] wires the stages together.
//! The daemon's settings are [`config`]; living under systemd is [`service`]. The command-line front
//! end is [`cli`]; the process's allocator is chosen and tuned in [`alloc`].

pub mod alloc;
pub mod asr;
pub mod audio;
pub mod cli;
pub mod config;
pub mod mqtt;
pub mod pipeline;
pub mod service;
pub mod vad;
