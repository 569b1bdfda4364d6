//! One model for the microphone and the server: a request in another language runs that language's
//! adapter while the microphone's utterances stay in the microphone's language, and both reach MQTT.

use std::time::Duration;

use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::subscriber::Subscriber;
use crate::common::{fixtures, scratch};
use crate::server::Server;
use crate::venv::client;

#[test]
fn the_microphone_keeps_its_language_while_a_request_runs_in_another() {
    let dir = scratch("wyoming-shared");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let topic = "edgescribe/wy-shared/transcript";
    let sub = Subscriber::connect(broker.port, "sub-wy-shared", &[topic]);
    let trained = fixtures().join("audio/trained");
    let config = dir.join("shared.toml");
    std::fs::write(
        &config,
        format!(
            "languages = [\"eng\", \"deu\"]\n[adapters]\ncache_dir = \"{}\"\nsource = \"\"\n\
             [mqtt]\nbroker = \"{}\"\ndevice_id = \"wy-shared\"\n\
             [wyoming]\nlisten = \"tcp://127.0.0.1:0\"\nzeroconf = false\n",
            dir.join("cache").display(),
            broker.url()
        ),
    )
    .unwrap();
    // The "microphone": English commands paced in real time (~13 s), the daemon's language eng.
    let mut server = Server::launch(&[
        "--config".into(),
        config.display().to_string(),
        "--input".into(),
        trained.join("commands_eng.wav").display().to_string(),
        "--realtime".into(),
    ]);
    let wav = trained.join("deu_1.wav");
    let got = client(&[
        "transcribe",
        "127.0.0.1",
        &server.port(),
        wav.to_str().unwrap(),
        "--language",
        "de",
    ]);
    assert_eq!(got[0]["data"]["text"], "starte die kaffeemaschine", "{got}");
    let expected: Vec<String> = std::fs::read_to_string(trained.join("commands_eng.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let (mut microphone, mut wyoming) = (Vec::new(), Vec::new());
    while microphone.len() < expected.len() || wyoming.is_empty() {
        let m = sub
            .wait_for(Duration::from_secs(60), |m| m.topic == topic)
            .unwrap_or_else(|| {
                panic!(
                    "missing transcripts; log:\n{}",
                    server.daemon.log().join("\n")
                )
            })
            .json();
        let text = m["text"].as_str().unwrap().to_string();
        match m["source"].as_str() {
            Some("wyoming") => wyoming.push((m["language"].clone(), text)),
            None => microphone.push((m["language"].clone(), text)),
            Some(other) => panic!("source {other:?}"),
        }
    }
    assert_eq!(
        wyoming,
        [("deu".into(), "starte die kaffeemaschine".to_string())]
    );
    assert!(microphone.iter().all(|(l, _)| l == "eng"), "{microphone:?}");
    let texts: Vec<String> = microphone.into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, expected);
    assert!(server.daemon.wait(Duration::from_secs(60)).success());
}
