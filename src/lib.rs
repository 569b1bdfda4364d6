//! edgescribe: an offline, multilingual speech-to-text node.
//!
//! Data flow, one module per stage: microphone ([`audio`]) → recogniser ([`asr`]) → [`mqtt`].
//! The command-line front end is [`cli`].

pub mod asr;
pub mod audio;
pub mod cli;
pub mod mqtt;
