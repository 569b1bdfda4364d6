//! The recogniser and the commands built on it: what must hold on every architecture (`arch`), parity
//! with the reference implementations (`parity`), the bundled trained model (`bundled_model`), and
//! `edgescribe transcribe` / `edgescribe vad` as a user runs them (`cli_transcribe`, `cli_vad`). One
//! test binary: linking tract once is what costs. cross/test-aarch64 selects modules by name
//! (`arch::`, `parity::`).
//!
//! Not here: `tests/asr_language_switch.rs` reads this process's RSS, so it keeps a binary of its own.

#[path = "../common/mod.rs"]
mod common;

mod arch;
mod bundled_model;
mod cli_transcribe;
mod cli_vad;
mod decoder;
mod parity;
