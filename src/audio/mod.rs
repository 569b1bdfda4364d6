//! Getting audio in: files (and, later, ALSA capture), converted to 16 kHz mono f32.

pub mod resample;
pub mod wav;

/// The rate the recogniser (and everything after the audio stage) works at.
pub const MODEL_RATE_HZ: u32 = 16_000;
