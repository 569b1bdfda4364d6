//! The recogniser: MMS (wav2vec2 CTC) through tract, with per-language adapters fed as graph inputs.
//! Loading and running the encoder fast is the accelerator's job (the `tract-accel` crate).
//!
//! - [`Engine`]: the base model, loaded and optimised once, shared read-only between threads.
//! - [`LanguagePack`]: one language's adapters, head and vocabulary; switching is swapping packs.
//! - [`Recognizer`]: an engine plus the active language, as the daemon uses it.
//! - [`store`]: the configured languages' adapters, fetched, verified and cached.
//! - [`ctc`], [`features`]: pure decoding and normalisation.

mod adapter;
pub mod ctc;
pub mod decode;
mod engine;
mod error;
pub mod features;
pub mod manifest;
mod recognizer;
pub mod store;
pub mod threads;
pub mod vocab;

pub use adapter::LanguagePack;
pub use decode::{Decoder, Decoding};
pub use engine::{Engine, EngineOptions, Logits};
pub use error::AsrError;
pub use recognizer::{Recognizer, Transcript, Word};
pub use tract_accel::{process_status_kb, LoadTimings, Passes, ProfileKey};
