#![allow(dead_code)] // Each fuzz target uses one of these functions.
//! What each fuzz target checks, shared by the targets (`fuzz_targets/`, run by `fuzz/run` with
//! cargo fuzz) and by the replay of the committed corpus in the ordinary test suite
//! (`tests/daemon/fuzz_corpus.rs`), so a crash found once stays fixed.
//!
//! Each function must return normally for every input; a panic is the finding.

use std::io::Cursor;
use std::path::Path;

use edgescribe::audio::wav::WavStream;
use edgescribe::config::Config;
use edgescribe::mqtt::command::{parse_incoming, Incoming, ParseContext};
use edgescribe::mqtt::{Command, Topics};

/// Any bytes as a WAV file: a clean error or samples, all finite and near full scale, in bounded
/// blocks (never the whole file at once), and an end.
pub fn wav(data: &[u8]) {
    let Ok(mut stream) = WavStream::from_reader(Cursor::new(data), Path::new("fuzz.wav"), 16_000)
    else {
        return;
    };
    let mut out = Vec::new();
    // A header may claim anything; the data is what bounds the work: at most one block per 2
    // bytes of input (plus the resampler's tail) before the stream must end.
    for _ in 0..=data.len() / 2 + 2 {
        out.clear();
        match stream.read_into(4096, &mut out) {
            Ok(more) => {
                // The resampler overshoots full scale a little on a square wave, never more.
                assert!(out.iter().all(|x| x.is_finite() && x.abs() <= 2.0));
                if !more {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    panic!("the WAV stream of {} bytes did not end", data.len());
}

/// Any text as a configuration file: a clean error naming where, or a configuration that passes
/// its own validation again.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(config) => assert!(config.validate().is_ok()),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Any message on any of the node's subscribed topics (the first byte picks the topic): a
/// command that is valid, or a rejection short enough to publish and log (never the payload
/// echoed whole).
pub fn mqtt_command(data: &[u8]) {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let topics = Topics::new("edgescribe", "fuzz", "homeassistant");
    let subscribed = [
        topics.set_language.as_str(),
        topics.set_listening.as_str(),
        topics.ha_status.as_str(),
        topics.hermes_toggle_on,
        topics.hermes_toggle_off,
    ];
    let topic = subscribed[pick as usize % subscribed.len()];
    let languages = ["eng".to_string(), "fra".to_string()];
    let ctx = ParseContext {
        topics: &topics,
        languages: &languages,
        hermes: pick & 0x80 != 0,
        site_id: "default",
    };
    match parse_incoming(topic, payload, &ctx) {
        Ok(Incoming::Command(Command::SetLanguage(lang))) => assert!(languages.contains(&lang)),
        Ok(_) => {}
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.len() <= 512,
                "{} bytes: {message:.80}",
                message.len()
            );
        }
    }
}
