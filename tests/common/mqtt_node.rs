//! Building blocks for tests of the `mqtt` module: a node configuration with short timings, a
//! device description, synthetic transcripts.

use std::time::Duration;

use edgescribe::asr::{Transcript, Word};
use edgescribe::mqtt::{DeviceInfo, MqttConfig, TranscriptMessage};

/// A node publishing to `broker` as `edgescribe/<device_id>/…`, with timings short enough for
/// tests (keep-alive 5 s, reconnect backoff 100 ms → 800 ms) and discovery off unless asked.
pub fn config(broker: &str, device_id: &str) -> MqttConfig {
    MqttConfig {
        broker: Some(broker.to_string()),
        device_id: Some(device_id.to_string()),
        keep_alive_s: 5,
        reconnect_min_ms: 100,
        reconnect_max_ms: 800,
        ha_discovery: false,
        ..MqttConfig::default()
    }
}

pub fn info() -> DeviceInfo {
    DeviceInfo {
        languages: vec!["eng".into(), "fra".into(), "deu".into()],
        language: "eng".into(),
        model: "mms-tiny-test".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// A transcript numbered `i` (its text says which).
pub fn transcript(i: u64) -> Transcript {
    Transcript {
        text: format!("utterance number {i}"),
        language: "eng".into(),
        confidence: 0.75,
        duration_ms: 1200,
        words: vec![
            Word {
                word: "utterance".into(),
                start_ms: 0,
                end_ms: 500,
                confidence: 0.5,
            },
            Word {
                word: "number".into(),
                start_ms: 520,
                end_ms: 800,
                confidence: 1.0,
            },
        ],
        decoding: Default::default(),
    }
}

pub fn parse(payload: &[u8]) -> TranscriptMessage {
    serde_json::from_slice(payload).expect("transcript payload is not a TranscriptMessage")
}

/// Checks that the first occurrences of `seqs` are exactly 1..=n in order (duplicates allowed
/// anywhere after a first occurrence). Returns the number of duplicates.
pub fn assert_complete_in_order(seqs: &[u64], n: u64) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let mut firsts = Vec::new();
    for s in seqs {
        if seen.insert(*s) {
            firsts.push(*s);
        }
    }
    let expected: Vec<u64> = (1..=n).collect();
    assert_eq!(firsts, expected, "transcripts missing or out of order");
    seqs.len() - firsts.len()
}

pub const WAIT: Duration = Duration::from_secs(15);
