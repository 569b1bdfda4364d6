//! The recogniser: MMS (wav2vec2 CTC) through tract, with per-language adapters fed as graph inputs.
//!
//! - [`Engine`]: the base model, loaded and optimised once, shared read-only between threads.
//! - [`LanguagePack`]: one language's adapters, head and vocabulary; switching is swapping packs.
//! - [`Recognizer`]: an engine plus the active language, as the daemon uses it.
//! - [`store`]: the configured languages' adapters, fetched, verified and cached.
//! - [`ctc`], [`features`]: pure decoding and normalisation.

mod adapter;
mod chain;
pub mod ctc;
mod engine;
mod error;
pub mod features;
pub mod manifest;
mod onnx_parse;
pub mod optimize;
mod recognizer;
pub mod store;
pub mod vocab;
mod weights_file;

pub use adapter::LanguagePack;
pub use chain::ProfileKey;
pub use engine::{process_status_kb, Engine, EngineOptions, LoadTimings, Logits};
pub use error::AsrError;
pub use recognizer::{Recognizer, Transcript, Word};
