//! The JSON messages the node publishes: built from plain values, no I/O.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::asr::{Decoding, Transcript};

/// One utterance on `…/transcript`. Field meanings are the public interface (`docs/mqtt.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptMessage {
    /// Always `"transcript"`: lets a Home Assistant MQTT `event` entity take the message as is
    /// (HA reads `event_type` and turns the other keys into event attributes).
    pub event_type: String,
    pub text: String,
    /// ISO 639-3 code of the language the utterance was recognised in.
    pub language: String,
    /// 0…1: mean probability of the printed characters.
    pub confidence: f32,
    /// Wall-clock time of the utterance's first sample, RFC 3339 UTC with milliseconds.
    pub start: String,
    /// `start` + `duration_ms`.
    pub end: String,
    pub duration_ms: u64,
    pub words: Vec<WordTiming>,
    /// 1, 2, 3… per `boot_id`: a subscriber that sees a `(boot_id, seq)` twice has a QoS 1
    /// duplicate and can drop it.
    pub seq: u64,
    /// Random per start of the daemon.
    pub boot_id: String,
    /// Time the recogniser took for this utterance.
    pub processing_ms: u64,
    /// Name of the acoustic model.
    pub model: String,
    /// The message was cut to fit the largest packet allowed (`mqtt.max_packet_bytes`): `words`
    /// left out, and if that was not enough, `text` shortened. Absent when whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// `"wyoming"`: the audio came from a Wyoming client (Home Assistant's voice pipeline), not the
    /// node's microphone. Absent for the microphone (and `--input`), as before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Beam decoding's `rejected`, `hint` and `alternatives` (docs/mqtt.md); absent for greedy.
    #[serde(flatten, default)]
    pub decoding: Decoding,
}

/// A word with times relative to the utterance's `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordTiming {
    pub word: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub confidence: f32,
}

/// Numbering of the transcripts of one run of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub boot_id: String,
}

impl TranscriptMessage {
    /// The message for a recogniser result; `started_at` is when the utterance's first sample was
    /// captured (wall clock).
    pub fn from_transcript(
        t: &Transcript,
        started_at: SystemTime,
        processing_ms: u64,
        model: &str,
        stamp: Stamp,
    ) -> TranscriptMessage {
        let end = started_at + Duration::from_millis(t.duration_ms);
        TranscriptMessage {
            event_type: "transcript".into(),
            text: t.text.clone(),
            language: t.language.clone(),
            confidence: t.confidence,
            start: rfc3339_ms(started_at),
            end: rfc3339_ms(end),
            duration_ms: t.duration_ms,
            words: t
                .words
                .iter()
                .map(|w| WordTiming {
                    word: w.word.clone(),
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                    confidence: w.confidence,
                })
                .collect(),
            seq: stamp.seq,
            boot_id: stamp.boot_id,
            processing_ms,
            model: model.to_string(),
            truncated: false,
            source: None,
            decoding: t.decoding.clone(),
        }
    }

    /// A queued message's JSON made to fit `max_bytes` (see [`TranscriptMessage::to_json_within`]),
    /// for a broker whose limit is only known once connected. `None` when it cannot fit or is
    /// not a transcript message.
    pub fn shrink_json(json: &[u8], max_bytes: usize) -> Option<Vec<u8>> {
        let mut msg: TranscriptMessage = serde_json::from_slice(json).ok()?;
        msg.to_json_within(max_bytes)
    }

    /// The message as JSON of at most `max_bytes`: whole when it fits, else without `words`, else
    /// with `text` shortened (at a character boundary), flagged `truncated`. `None` only when even
    /// an empty text does not fit (a limit too small for any transcript).
    pub fn to_json_within(&mut self, max_bytes: usize) -> Option<Vec<u8>> {
        let fits = |m: &TranscriptMessage| {
            serde_json::to_vec(m)
                .ok()
                .filter(|bytes| bytes.len() <= max_bytes)
        };
        if let Some(bytes) = fits(self) {
            return Some(bytes);
        }
        self.truncated = true;
        self.words.clear();
        self.decoding.alternatives.clear();
        if let Some(bytes) = fits(self) {
            return Some(bytes);
        }
        // The longest prefix of the text that fits: JSON escaping makes the size of a prefix only
        // monotonic, not proportional, so search on character boundaries.
        let text = std::mem::take(&mut self.text);
        let bounds: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        let (mut lo, mut hi) = (0, bounds.len() - 1);
        self.text = String::new();
        fits(self)?;
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            self.text = text[..bounds[mid]].to_string();
            if fits(self).is_some() {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.text = text[..bounds[lo]].to_string();
        fits(self)
    }

    /// Rhasspy's `hermes/asr/textCaptured` for this transcript.
    pub fn hermes(&self, site_id: &str) -> HermesTextCaptured {
        HermesTextCaptured {
            text: self.text.clone(),
            likelihood: self.confidence,
            seconds: self.processing_ms as f64 / 1000.0,
            site_id: site_id.to_string(),
            session_id: None,
            lang: Some(self.language.clone()),
        }
    }
}

/// `2024-05-01T12:00:00.250Z`. Times before 1970 or past 9999 (a broken clock) print as the epoch
/// rather than failing the transcript.
pub fn rfc3339_ms(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    // Truncate to whole milliseconds so the text always has exactly three decimals.
    let ms = ts.as_millisecond();
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{ts:.3}")
}

/// Rhasspy Hermes `AsrTextCaptured` (camelCase keys as Rhasspy expects them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HermesTextCaptured {
    pub text: String,
    pub likelihood: f32,
    /// Seconds the recogniser took (Hermes: "the duration it took to do the processing").
    pub seconds: f64,
    pub site_id: String,
    /// The node recognises continuously, outside Rhasspy dialogue sessions: always `null`.
    pub session_id: Option<String>,
    pub lang: Option<String>,
}

/// What the daemon is doing, retained on `…/state`; Home Assistant's select and switch read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    pub language: String,
    pub listening: bool,
}

/// `…/state`: the current state plus, after a rejected command, why it was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMessage {
    pub language: String,
    pub listening: bool,
    /// The configured languages `set/language` accepts.
    pub languages: Vec<String>,
    /// `null`, or the last command's rejection.
    pub error: Option<CommandRejection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejection {
    /// Topic the rejected command arrived on.
    pub topic: String,
    pub message: String,
}

/// Counters the daemon reports; the MQTT layer adds its own ([`MqttCounters`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonStats {
    pub uptime_s: u64,
    pub utterances: u64,
    /// Processing time / audio time over the last interval; `null` before the first utterance.
    pub real_time_factor: Option<f64>,
    pub audio_queue_depth: usize,
    pub asr_queue_depth: usize,
    pub dropped_frames: u64,
    pub dropped_utterances: u64,
    pub xruns: u64,
    /// Utterances recognised as nothing (noise the VAD let through): not published.
    pub empty_utterances: u64,
    /// Utterances discarded while listening was off.
    pub muted_utterances: u64,
    /// Utterances the recogniser failed on (logged with the cause).
    pub recognition_failures: u64,
    /// Recordings that could not be written (`--record-dir`), since it was last configured.
    pub record_errors: u64,
    /// The Wyoming server's counters since start; absent when it is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wyoming: Option<crate::wyoming::WyomingStats>,
}

/// The MQTT layer's own counters, since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttCounters {
    /// Successful connections after the first.
    pub reconnects: u64,
    /// Transcripts waiting for the broker's acknowledgement.
    pub outbox_depth: usize,
    /// Transcripts dropped because the outbox was full (the oldest go first).
    pub outbox_dropped: u64,
    /// Transcripts the broker refused (MQTT 5 PubAck reason: ACL, quota) or that did not fit in
    /// its packet limit even cut down: dropped, not re-sent.
    #[serde(default)]
    pub transcripts_refused: u64,
    /// Other messages (state, discovery, languages, stats) left out for exceeding the broker's
    /// packet limit.
    #[serde(default)]
    pub messages_too_large: u64,
    /// Transcripts that could not be written to or removed from the spool directory.
    pub spool_errors: u64,
    /// Commands dropped because the daemon had not taken the previous ones yet.
    pub commands_dropped: u64,
    /// Commands rejected as malformed or unknown.
    pub commands_rejected: u64,
}

/// `…/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsMessage {
    #[serde(flatten)]
    pub daemon: DaemonStats,
    pub mqtt: MqttCounters,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::Word;

    fn transcript() -> Transcript {
        Transcript {
            text: "turn on the lights".into(),
            language: "eng".into(),
            confidence: 0.875,
            duration_ms: 1530,
            words: vec![
                Word {
                    word: "turn".into(),
                    start_ms: 100,
                    end_ms: 300,
                    confidence: 0.5,
                },
                Word {
                    word: "on".into(),
                    start_ms: 320,
                    end_ms: 400,
                    confidence: 1.0,
                },
            ],
            decoding: Default::default(),
        }
    }

    #[test]
    fn transcript_message_has_the_documented_fields() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_714_564_800_250);
        let stamp = Stamp {
            seq: 7,
            boot_id: "b00t".into(),
        };
        let m = TranscriptMessage::from_transcript(&transcript(), start, 42, "mms-1b-all", stamp);
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "event_type",
            "text",
            "language",
            "confidence",
            "start",
            "end",
            "duration_ms",
            "words",
            "seq",
            "boot_id",
            "processing_ms",
            "model",
        ];
        expected.sort();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        assert_eq!(keys_sorted, expected);
        assert_eq!(v["start"], "2024-05-01T12:00:00.250Z");
        assert_eq!(v["end"], "2024-05-01T12:00:01.780Z");
        assert_eq!(v["words"][0]["word"], "turn");
        assert_eq!(v["words"][1]["end_ms"], 400);
        assert_eq!(v["seq"], 7);
        let back: TranscriptMessage = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn timestamps_always_have_three_decimals() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339_ms(t), "2023-11-14T22:13:20.000Z");
        let t = t + Duration::from_nanos(999_999);
        assert_eq!(rfc3339_ms(t), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn hermes_text_captured_uses_rhasspy_keys() {
        let m = TranscriptMessage::from_transcript(
            &transcript(),
            SystemTime::UNIX_EPOCH,
            1500,
            "m",
            Stamp {
                seq: 1,
                boot_id: "b".into(),
            },
        );
        let v = serde_json::to_value(m.hermes("kitchen")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"text": "turn on the lights", "likelihood": 0.875, "seconds": 1.5,
                "siteId": "kitchen", "sessionId": null, "lang": "eng"})
        );
    }

    #[test]
    fn stats_nest_the_mqtt_counters() {
        let s = StatsMessage {
            daemon: DaemonStats {
                utterances: 3,
                ..Default::default()
            },
            mqtt: MqttCounters {
                reconnects: 2,
                ..Default::default()
            },
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["utterances"], 3);
        assert_eq!(v["mqtt"]["reconnects"], 2);
        assert_eq!(v["real_time_factor"], serde_json::Value::Null);
    }

    /// A transcript over the packet limit goes out cut to fit and flagged, never refused whole
    /// (which held up every transcript after it).
    #[test]
    fn oversized_transcripts_are_cut_to_fit_and_flagged() {
        let stamp = || Stamp {
            seq: 1,
            boot_id: "b".into(),
        };
        let mut long = transcript();
        long.text = "é\"ü ".repeat(4000);
        let start = SystemTime::UNIX_EPOCH;
        let whole = TranscriptMessage::from_transcript(&transcript(), start, 1, "m", stamp());
        let mut m = whole.clone();
        let bytes = m.to_json_within(4096).unwrap();
        assert!(!m.truncated);
        assert_eq!(bytes, serde_json::to_vec(&whole).unwrap());

        for limit in [400, 1000, 4096, 20_000] {
            let mut m = TranscriptMessage::from_transcript(&long, start, 1, "m", stamp());
            let bytes = m.to_json_within(limit).unwrap();
            assert!(bytes.len() <= limit, "{} > {limit}", bytes.len());
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["truncated"], true);
            assert_eq!(v["words"], serde_json::json!([]));
            let text = v["text"].as_str().unwrap();
            assert!(long.text.starts_with(text) && !text.is_empty());
            // The longest prefix that fits: one more character would not.
            let mut longer = m.clone();
            longer.text = long.text
                [..text.len() + long.text[text.len()..].chars().next().unwrap().len_utf8()]
                .into();
            assert!(serde_json::to_vec(&longer).unwrap().len() > limit);
        }
        // Too small for even an empty text.
        let mut m = TranscriptMessage::from_transcript(&long, start, 1, "m", stamp());
        assert!(m.to_json_within(50).is_none());

        // The same from queued JSON, as the event loop does for a broker's smaller limit.
        let queued = serde_json::to_vec(&whole).unwrap();
        let cut = TranscriptMessage::shrink_json(&queued, 300).unwrap();
        assert!(cut.len() <= 300);
        let v: serde_json::Value = serde_json::from_slice(&cut).unwrap();
        assert_eq!(
            (v["truncated"].clone(), v["seq"].clone()),
            (true.into(), 1.into())
        );
        assert!(TranscriptMessage::shrink_json(&queued, 50).is_none());
        assert!(TranscriptMessage::shrink_json(b"not json", 1000).is_none());
    }
}
