//! edgescribe: an offline, multilingual speech-to-text node.
//!
//! Data flow, one module per stage: microphone ([`audio`]) → speech segments ([`vad`]) → recogniser
//! ([`asr`]) → [`mqtt`]; [`pipeline`] wires the stages together.
//! The command-line front end is [`cli`].

pub mod asr;
pub mod audio;
pub mod cli;
pub mod mqtt;
pub mod pipeline;
pub mod vad;
