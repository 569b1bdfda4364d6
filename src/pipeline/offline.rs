//! Transcribing a recording without the daemon (`edgescribe transcribe`): whole when it is short,
//! cut at the VAD's boundaries when it is long, so that memory is bounded by the longest
//! utterance, not by the recording (the recogniser's memory grows faster than its input: an hour
//! at once asked tract for 2.9 GB).

use serde::Serialize;

use crate::asr::{AsrError, Decoding, Recognizer, Transcript};
use crate::audio::wav::{WavError, WavStream};
use crate::audio::MODEL_RATE_HZ;
use crate::vad::{Segmenter, VadConfig, VadEvent};

/// Recordings up to this long are transcribed in one piece, as before any cutting existed.
pub const WHOLE_MAX_S: f64 = 30.0;
/// Input frames read from the file at a time.
const READ_FRAMES: usize = 1 << 14;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("reading audio: {0}")]
    Audio(#[from] WavError),
    #[error(transparent)]
    Recognizer(#[from] AsrError),
    #[error("voice-activity detector: {0}")]
    Vad(String),
}

/// A recording's transcript: the whole, and for a recording cut into utterances each utterance
/// with what its decoding said (phrase mode's `rejected` and `hint`, beam search's
/// `alternatives`), which a joined text cannot carry: a long recording of commands is many
/// commands, each accepted or rejected on its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfflineTranscript {
    #[serde(flatten)]
    pub whole: Transcript,
    /// Each utterance of a recording cut at pauses; empty for one transcribed in one piece (its
    /// decoding is `whole`'s).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
}

/// One utterance of a recording that was cut at pauses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Empty when phrase mode rejected it (then `hint` is the closest allowed sentence).
    pub text: String,
    pub confidence: f32,
    #[serde(flatten)]
    pub decoding: Decoding,
}

/// Transcribes the whole of `stream`.
pub fn transcribe(
    recognizer: &Recognizer,
    mut stream: WavStream,
) -> Result<OfflineTranscript, OfflineError> {
    if stream.duration_s() <= WHOLE_MAX_S {
        let mut samples = Vec::new();
        while stream.read_into(READ_FRAMES, &mut samples)? {}
        return Ok(OfflineTranscript {
            whole: recognizer.transcribe(&samples)?,
            segments: Vec::new(),
        });
    }
    let vad = VadConfig {
        max_utterance_s: WHOLE_MAX_S as f32,
        ..VadConfig::default()
    };
    let mut segmenter =
        Segmenter::new(&vad, MODEL_RATE_HZ).map_err(|e| OfflineError::Vad(e.to_string()))?;
    let mut whole = Transcript {
        text: String::new(),
        language: recognizer.language().to_string(),
        confidence: 0.0,
        duration_ms: 0,
        words: Vec::new(),
        decoding: Default::default(),
    };
    let mut segments = Vec::new();
    let mut weight_ms = 0u64;
    let mut block = Vec::with_capacity(READ_FRAMES);
    let mut events = Vec::new();
    let mut total_samples = 0u64;
    let mut more = true;
    while more {
        block.clear();
        more = stream.read_into(READ_FRAMES, &mut block)?;
        total_samples += block.len() as u64;
        segmenter.push(&block, &mut events);
        if !more {
            segmenter.finish(&mut events);
        }
        for event in events.drain(..) {
            let VadEvent::Utterance {
                start_sample,
                samples,
                ..
            } = event
            else {
                continue;
            };
            let part = match recognizer.transcribe(&samples) {
                Ok(t) => t,
                // Too short for the model's receptive field: nothing to say.
                Err(AsrError::AudioTooShort { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let start_ms = start_sample * 1000 / MODEL_RATE_HZ as u64;
            segments.push(Segment {
                start_ms,
                end_ms: start_ms + part.duration_ms,
                text: part.text.clone(),
                confidence: part.confidence,
                decoding: part.decoding.clone(),
            });
            append(&mut whole, &mut weight_ms, part, start_ms);
        }
    }
    whole.duration_ms = total_samples * 1000 / MODEL_RATE_HZ as u64;
    Ok(OfflineTranscript { whole, segments })
}

/// Adds an utterance's transcript, its times moved by `offset_ms`; the confidence is the mean
/// over the utterances, weighted by their length. A rejected utterance adds nothing to the
/// whole (no text, so no say in its confidence): it is in `segments`.
fn append(whole: &mut Transcript, weight_ms: &mut u64, part: Transcript, offset_ms: u64) {
    if part.decoding.rejected {
        return;
    }
    if !part.text.is_empty() {
        if !whole.text.is_empty() {
            whole.text.push(' ');
        }
        whole.text.push_str(&part.text);
    }
    let total = *weight_ms + part.duration_ms;
    if total > 0 {
        whole.confidence = ((whole.confidence as f64 * *weight_ms as f64
            + part.confidence as f64 * part.duration_ms as f64)
            / total as f64) as f32;
    }
    *weight_ms = total;
    whole.words.extend(part.words.into_iter().map(|mut w| {
        w.start_ms += offset_ms;
        w.end_ms += offset_ms;
        w
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::Word;

    fn part(
        text: &str,
        confidence: f32,
        duration_ms: u64,
        words: &[(&str, u64, u64)],
    ) -> Transcript {
        Transcript {
            text: text.into(),
            language: "eng".into(),
            confidence,
            duration_ms,
            words: words
                .iter()
                .map(|(w, s, e)| Word {
                    word: (*w).into(),
                    start_ms: *s,
                    end_ms: *e,
                    confidence,
                })
                .collect(),
            decoding: Default::default(),
        }
    }

    #[test]
    fn utterances_join_with_their_times_moved() {
        let mut whole = part("", 0.0, 0, &[]);
        let mut weight = 0;
        append(
            &mut whole,
            &mut weight,
            part("turn on", 0.9, 1000, &[("turn", 0, 200), ("on", 300, 400)]),
            5000,
        );
        append(&mut whole, &mut weight, part("", 0.5, 1000, &[]), 9000);
        append(
            &mut whole,
            &mut weight,
            part(
                "the light",
                0.6,
                2000,
                &[("the", 100, 200), ("light", 300, 700)],
            ),
            20_000,
        );
        assert_eq!(whole.text, "turn on the light");
        let times: Vec<(u64, u64)> = whole.words.iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(
            times,
            [
                (5000, 5200),
                (5300, 5400),
                (20_100, 20_200),
                (20_300, 20_700)
            ]
        );
        assert!(
            (whole.confidence - (0.9 + 0.5 + 1.2) / 4.0).abs() < 1e-6,
            "{}",
            whole.confidence
        );
    }

    #[test]
    fn a_rejected_utterance_leaves_the_whole_alone() {
        let mut whole = part("", 0.0, 0, &[]);
        let mut weight = 0;
        append(
            &mut whole,
            &mut weight,
            part("stop", 0.8, 1000, &[("stop", 0, 400)]),
            0,
        );
        let mut rejected = part("", 0.0, 3000, &[]);
        rejected.decoding.rejected = true;
        rejected.decoding.hint = Some("stop the music".into());
        append(&mut whole, &mut weight, rejected, 2000);
        assert_eq!(whole.text, "stop");
        assert_eq!(weight, 1000);
        assert!(
            (whole.confidence - 0.8).abs() < 1e-6,
            "{}",
            whole.confidence
        );
    }
}
