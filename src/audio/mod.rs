//! Getting audio in: a microphone (ALSA) or a recording (WAV), as 16 kHz mono f32 samples in a
//! bounded ring to the VAD.
//!
//! - [`source::AudioSource`]: the one boundary; [`alsa::AlsaSource`] and [`file::WavSource`] implement it.
//! - [`source::Capture`]: the named capture thread driving a source.
//! - [`ring`]: the wait-free channel (drops and counts when the reader is behind).
//! - [`capture`]: the device loop (negotiated format → 16 kHz mono, overrun/unplug recovery).
//! - [`resample`], [`wav`]: pure conversions.

pub mod alsa;
pub mod capture;
pub mod file;
pub mod resample;
pub mod ring;
pub mod source;
pub mod wav;

/// The rate the recogniser (and everything after the audio stage) works at.
pub const MODEL_RATE_HZ: u32 = 16_000;
