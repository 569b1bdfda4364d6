//! What Home Assistant does, through the real client library.

use std::time::Duration;

use serde_json::Value;

use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::subscriber::Subscriber;
use crate::common::{fixtures, scratch};
use crate::server::Server;
use crate::venv::client;

/// `(recording, MMS language, expected words)` of the held-out recordings.
fn golden() -> Vec<(String, String, String)> {
    let dir = fixtures().join("audio/trained");
    std::fs::read_to_string(dir.join("golden.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                dir.join(f[0]).display().to_string(),
                f[1].to_string(),
                f[3].to_string(),
            )
        })
        .collect()
}

/// Home Assistant's code for the bundled model's languages.
fn ha(lang: &str) -> &'static str {
    match lang {
        "eng" => "en",
        "fra" => "fr",
        "deu" => "de",
        "spa" => "es",
        other => panic!("no code for {other}"),
    }
}

#[test]
fn describe_answers_within_a_second_with_home_assistants_codes() {
    let dir = scratch("wyoming-describe");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let server = Server::start(
        &dir,
        &broker,
        "wy-describe",
        "127.0.0.1",
        "zeroconf = false",
    );
    let got = client(&["describe", "127.0.0.1", &server.port()]);
    assert!(got["elapsed_s"].as_f64().unwrap() < 1.0, "{got}");
    let asr = &got["data"]["asr"][0];
    assert_eq!(asr["name"], "edgescribe");
    assert_eq!(asr["installed"], true);
    assert!(asr["attribution"]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert!(asr["attribution"]["name"].is_string());
    assert_eq!(asr["supports_transcript_streaming"], false);
    let model = &asr["models"][0];
    assert_eq!(model["name"], "models/bundled");
    assert!(model["version"].is_string() && model["description"].is_string());
    let languages: Vec<&str> = got["asr_languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for code in [
        "en", "fr", "de", "es", "en_US", "en_GB", "fr_CA", "de_CH", "es_MX",
    ] {
        assert!(languages.contains(&code), "{code} not in {languages:?}");
    }
    for code in ["eng", "fra", "pt", "it"] {
        assert!(!languages.contains(&code), "{code} in {languages:?}");
    }
}

fn transcribe(server: &Server, wav: &str, language: &str, rate: u32, channels: u32) -> Value {
    let got = client(&[
        "transcribe",
        "127.0.0.1",
        &server.port(),
        wav,
        "--language",
        language,
        "--rate",
        &rate.to_string(),
        "--channels",
        &channels.to_string(),
        "--chunk-samples",
        "1024",
    ]);
    got[0].clone()
}

#[test]
fn recordings_give_the_right_words_in_four_languages_at_16k_mono_and_44k_stereo() {
    let dir = scratch("wyoming-words");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let topic = "edgescribe/wy-words/transcript";
    let sub = Subscriber::connect(broker.port, "sub-wy-words", &[topic]);
    let server = Server::start(&dir, &broker, "wy-words", "127.0.0.1", "zeroconf = false");
    let mut sent = 0;
    let recordings = golden();
    for (rate, channels) in [(16_000, 1), (44_100, 2)] {
        for lang in crate::server::LANGUAGES {
            // One client run per language: its recordings in turn, each on a new connection.
            let mine: Vec<&(String, String, String)> =
                recordings.iter().filter(|r| r.1 == lang).collect();
            let mut args: Vec<&str> = vec!["transcribe", "127.0.0.1"];
            let port = server.port();
            args.push(&port);
            args.extend(mine.iter().map(|r| r.0.as_str()));
            let (rate_s, channels_s) = (rate.to_string(), channels.to_string());
            args.extend([
                "--language",
                ha(lang),
                "--rate",
                &rate_s,
                "--channels",
                &channels_s,
            ]);
            args.extend(["--chunk-samples", "1024"]);
            let got = client(&args);
            for ((wav, _, words), got) in mine.iter().zip(got.as_array().unwrap()) {
                assert_eq!(
                    got["type"], "transcript",
                    "{wav} at {rate}/{channels}: {got}"
                );
                assert_eq!(
                    got["data"]["text"],
                    words.as_str(),
                    "{wav} at {rate} Hz × {channels}"
                );
                assert_eq!(got["data"]["language"], ha(lang));
                sent += 1;
            }
        }
    }
    assert_eq!(sent, 2 * recordings.len());
    // ISO 639-3 is accepted too, and a region variant; the transcript says the code asked for.
    let (wav, _, words) = &golden()[0];
    for code in ["eng", "en_GB", "en-US"] {
        let got = transcribe(&server, wav, code, 16_000, 1);
        assert_eq!(got["data"]["text"], words.as_str(), "{code}: {got}");
        assert_eq!(got["data"]["language"], code);
        sent += 1;
    }
    // Each also went out on MQTT, marked as the server's.
    for i in 0..sent {
        let m = sub
            .wait_for(Duration::from_secs(30), |m| m.topic == topic)
            .unwrap_or_else(|| panic!("MQTT transcript {i} of {sent} missing"))
            .json();
        assert_eq!(m["source"], "wyoming", "{m}");
    }
}

#[test]
fn an_unconfigured_language_is_an_error_and_the_next_request_works() {
    let dir = scratch("wyoming-language");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let server = Server::start(&dir, &broker, "wy-lang", "127.0.0.1", "zeroconf = false");
    let (wav, lang, words) = &golden()[0];
    for code in ["it", "ita", "pt_BR", "xx"] {
        let got = transcribe(&server, wav, code, 16_000, 1);
        assert_eq!(got["type"], "error", "{code}: {got}");
        assert_eq!(got["data"]["code"], "unsupported_language");
    }
    let got = transcribe(&server, wav, ha(lang), 16_000, 1);
    assert_eq!(got["data"]["text"], words.as_str());
}

#[test]
fn twenty_clients_at_once_all_get_their_words() {
    let dir = scratch("wyoming-twenty");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let server = Server::start(
        &dir,
        &broker,
        "wy-twenty",
        "127.0.0.1",
        "zeroconf = false\nqueue_requests = 20\nmax_connections = 20",
    );
    let (wav, lang, words) = &golden()[2];
    let got = client(&[
        "concurrent",
        "127.0.0.1",
        &server.port(),
        "20",
        wav,
        "--language",
        ha(lang),
    ]);
    let results = got.as_array().unwrap();
    assert_eq!(results.len(), 20);
    for r in results {
        assert_eq!(r["type"], "transcript", "{r}");
        assert_eq!(r["data"]["text"], words.as_str());
    }
}
