//! Energy voice-activity detection and utterance segmentation (pure: samples in, events out).
//!
//! [`Segmenter`] takes 16 kHz mono f32 audio in pushes of any size and emits [`VadEvent`]s: the start of
//! speech as soon as it is confirmed (for a "listening" indicator), then the whole utterance with the
//! audio the recogniser should transcribe. No I/O, no threads, no clock: positions are sample counts.
//! Parameters: [`VadConfig`]; quality against webrtcvad: `benches/VAD.md`.

mod config;
mod energy;
mod floor;
mod segmenter;
#[cfg(test)]
mod tests;

pub use config::{VadConfig, VadConfigError};
pub use energy::SILENCE_DBFS;
pub use segmenter::Segmenter;

/// What the segmenter found.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// Speech confirmed (`min_speech_ms` of it); its utterance starts at `start_sample` (pre-roll
    /// included). Always followed, eventually, by exactly one `Utterance` with the same start.
    SpeechStart { start_sample: u64 },
    /// A finished utterance: `samples` are the input audio from `start_sample` on, unfiltered (a
    /// non-finite input sample is replaced by 0).
    Utterance {
        start_sample: u64,
        samples: Vec<f32>,
        end: EndReason,
    },
}

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `hangover_ms` of silence followed it.
    Silence,
    /// It reached `max_utterance_s` and was split at a quiet point; the speech goes on in a new
    /// utterance that starts where this one ends.
    MaxLength,
    /// The stream ended during it (`Segmenter::finish`).
    EndOfStream,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Silence => "silence",
            EndReason::MaxLength => "max_length",
            EndReason::EndOfStream => "end_of_stream",
        }
    }
}

/// The segmenter's view of one frame, for tuning and for measuring frame-level accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameDecision {
    pub start_sample: u64,
    /// Energy after the high-pass, in dBFS.
    pub energy_dbfs: f32,
    /// The noise floor after this frame, in dBFS.
    pub floor_dbfs: f32,
    /// Standard deviation (dB) of the noise frames; the thresholds are raised by a multiple of it.
    pub spread_db: f32,
    /// The frame is above the threshold in effect: `onset_db` when idle (or `offset_db`, in a run that
    /// started above `onset_db`), `offset_db` inside an utterance.
    pub active: bool,
    /// The frame is speech as the segmenter treats it, decided causally: `active`, or inside an
    /// utterance and within `post_roll_ms` of its last active frame (the post-roll the utterance
    /// keeps; webrtcvad's frame decisions likewise include its "overhang"). Pre-roll and the rest of
    /// the hangover are not.
    pub speech: bool,
    /// An utterance is in progress after this frame.
    pub in_utterance: bool,
}
