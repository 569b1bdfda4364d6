//! edgescribe: an offline, multilingual speech-to-text node.
//!
//! Data flow, one module per stage: microphone ([`audio`]) → speech segments ([`vad`]) → recogniser
//! ([`asr`], running on the `tract-accel` crate) → [`mqtt`]; [`pipeline`] wires the stages together.
//! The daemon's settings are [`config`]; living under systemd is [`service`]; every reconnect and
//! retry waits through [`retry`]. The command-line front end is [`cli`]. The process's allocator is
//! the binary's (`src/alloc.rs`), reached through [`memory`].

// All of the project's unsafe code lives in the accelerator crate and the binary's allocator module.
#![forbid(unsafe_code)]

pub mod asr;
pub mod audio;
pub mod cli;
pub mod config;
pub mod memory;
pub mod mqtt;
pub mod pipeline;
pub mod redact;
pub mod retry;
pub mod service;
pub mod vad;
pub mod wyoming;
