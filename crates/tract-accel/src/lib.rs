//! tract-accel: faster loading and int8 inference of wav2vec2-style ONNX exports (MMS) on tract
//! 0.23.9, with results bit-identical to stock tract.
//!
//! - [`load`]: parse an export with its weights read on all threads ([`onnx_parse`],
//!   [`weights_file`]), type it with a symbolic audio length, cut it into segments and optimise
//!   them in parallel into a [`Chain`].
//! - [`chain`]: the optimised segments, run one after the other per utterance.
//! - [`optimize`]: our passes over tract's graph and the kernels they run on. Each pass fixes one
//!   thing stock tract does slowly, is tested bit for bit against stock tract
//!   (`tests/bit_identity.rs`), and is written up as an upstream report in the repository's
//!   `docs/upstream/`: delete a pass once tract fixes its cause.
//!
//! This crate holds all of edgescribe's kernel `unsafe` code: each block says why it is sound in a
//! `SAFETY:` comment (`clippy::undocumented_unsafe_blocks`), each `unsafe fn` states its contract in
//! a `# Safety` section, and `unsafe fn` bodies still mark their unsafe operations
//! (`unsafe_op_in_unsafe_fn`).

pub mod chain;
pub mod load;
mod onnx_parse;
pub mod optimize;
mod weights_file;

pub use chain::{Chain, NodeTimes, ProfileKey};
pub use load::{parse, process_status_kb, LoadTimings, Parsed};
pub use optimize::{Applied, Passes};
