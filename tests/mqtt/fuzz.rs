//! Property test of the command parser: whatever arrives on whichever topic, it returns (no
//! panic), accepts only what is valid, and its error messages stay short.

use edgescribe::mqtt::command::{parse_incoming, Command, Incoming, ParseContext};
use edgescribe::mqtt::Topics;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const CASES: u32 = 25_000;

fn topic_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("edgescribe/pi/set/language".to_string()),
        Just("edgescribe/pi/set/listening".to_string()),
        Just("edgescribe/pi/set/phrases".to_string()),
        Just("hermes/asr/toggleOn".to_string()),
        Just("hermes/asr/toggleOff".to_string()),
        Just("homeassistant/status".to_string()),
        ".{0,40}",
    ]
}

fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Arbitrary bytes, including far more than the limit.
        proptest::collection::vec(any::<u8>(), 0..2048),
        // Plausible text: words, codes, JSON-ish fragments.
        "[a-zA-Z0-9 {}\":,_\\-\\[\\]]{0,64}".prop_map(String::into_bytes),
        // Phrase lists: any strings, any number of them.
        proptest::collection::vec(any::<String>(), 0..8)
            .prop_map(|l| serde_json::to_vec(&l).unwrap_or_default()),
        // JSON objects with a siteId of any value.
        (any::<Option<String>>(), any::<bool>()).prop_map(|(site, reason)| {
            let mut o = serde_json::Map::new();
            if let Some(s) = site {
                o.insert("siteId".into(), s.into());
            }
            if reason {
                o.insert("reason".into(), "ttsSay".into());
            }
            serde_json::Value::Object(o).to_string().into_bytes()
        }),
        prop_oneof![
            Just("eng"),
            Just("fra"),
            Just("on"),
            Just("OFF"),
            Just(" 1 ")
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

#[test]
fn command_parser_never_panics_and_only_accepts_valid_commands() {
    let topics = Topics::new("edgescribe", "pi", "homeassistant");
    let languages = vec!["eng".to_string(), "fra".to_string()];
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let tried = std::cell::Cell::new(0u32);
    let accepted = std::cell::Cell::new(0u32);
    runner
        .run(
            &(topic_strategy(), payload_strategy(), any::<bool>()),
            |(topic, payload, hermes)| {
                tried.set(tried.get() + 1);
                let ctx = ParseContext {
                    topics: &topics,
                    languages: &languages,
                    hermes,
                    site_id: "kitchen",
                };
                match parse_incoming(&topic, &payload, &ctx) {
                    Ok(Incoming::Command(Command::SetLanguage(l))) => {
                        accepted.set(accepted.get() + 1);
                        prop_assert!(topic == topics.set_language);
                        prop_assert!(languages.contains(&l));
                    }
                    Ok(Incoming::Command(Command::SetListening(_))) => {
                        accepted.set(accepted.get() + 1);
                        prop_assert!(
                            topic == topics.set_listening
                                || (hermes
                                    && (topic == topics.hermes_toggle_on
                                        || topic == topics.hermes_toggle_off))
                        );
                    }
                    Ok(Incoming::Command(Command::SetPhrases(phrases))) => {
                        accepted.set(accepted.get() + 1);
                        prop_assert!(topic == topics.set_phrases);
                        prop_assert!(phrases.len() <= edgescribe::mqtt::command::MAX_PHRASES);
                        prop_assert!(phrases.iter().all(|p| !p.is_empty()
                            && p.chars().count() <= edgescribe::mqtt::command::MAX_PHRASE_CHARS));
                    }
                    Ok(Incoming::HomeAssistantOnline) => {
                        prop_assert!(topic == topics.ha_status && payload == b"online")
                    }
                    Ok(Incoming::Ignored) => {}
                    Err(e) => {
                        let msg = e.to_string();
                        // Errors are published on …/state: bounded, whatever the input.
                        prop_assert!(msg.len() < 200, "{} bytes: {msg}", msg.len());
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    eprintln!(
        "command parser: {} random inputs tried, {} accepted as commands",
        tried.get(),
        accepted.get()
    );
    assert!(tried.get() >= CASES);
    assert!(
        accepted.get() > 0,
        "the strategies never produced a valid command"
    );
}
