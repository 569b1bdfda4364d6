//! The decoder as the running daemon applies it (issue #24): phrase mode set over MQTT
//! (`…/set/phrases`) and beam + LM decoding turned on by a reload (SIGHUP), each taking effect
//! between two utterances of one stream, without restarting the daemon or reloading the model.
//!
//! The bundled model hears the same four recorded commands three times, fed through a FIFO block
//! by block: the test waits for each block's transcripts (and for the daemon to take the change)
//! before it writes the next block, so no timing decides which decoder an utterance meets.

use std::time::Duration;

use crate::common::daemon::{mkfifo, quiet, read_wav, Daemon, WavFifo};
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::subscriber::Subscriber;
use crate::common::*;

const MINUTE: Duration = Duration::from_secs(60);

fn recording() -> (Vec<i16>, Vec<String>) {
    let dir = fixtures().join("audio/trained");
    let text = std::fs::read_to_string(dir.join("commands_eng.txt")).unwrap();
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    (
        read_wav(&dir.join("commands_eng.wav")),
        lines.map(String::from).collect(),
    )
}

/// A unigram ARPA model of `sentences`' words, each equally likely.
fn unigram_arpa(sentences: &[String]) -> String {
    let mut words: Vec<&str> = sentences.iter().flat_map(|s| s.split(' ')).collect();
    words.sort_unstable();
    words.dedup();
    let logp = -((words.len() + 2) as f64).log10();
    let mut arpa = format!("\\data\\\nngram 1={}\n\n\\1-grams:\n", words.len() + 3);
    arpa.push_str(&format!("-99\t<s>\n{logp:.4}\t</s>\n-3.0\t<unk>\n"));
    for w in words {
        arpa.push_str(&format!("{logp:.4}\t{w}\n"));
    }
    arpa.push_str("\n\\end\\\n");
    arpa
}

/// The transcripts of one block: (text, the whole message).
fn block(sub: &Subscriber, n: usize, daemon: &Daemon) -> Vec<(String, serde_json::Value)> {
    (0..n)
        .map(|i| {
            let m = sub
                .wait_for(MINUTE, |m| m.topic == "edgescribe/dec/transcript")
                .unwrap_or_else(|| {
                    panic!(
                        "transcript {i} of {n} missing; log:\n{}",
                        daemon.log().join("\n")
                    )
                })
                .json();
            (m["text"].as_str().unwrap().to_string(), m)
        })
        .collect()
}

#[test]
fn phrases_over_mqtt_and_a_beam_by_reload_apply_between_utterances() {
    let dir = scratch("daemon-decoder");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let sub = Subscriber::connect(broker.port, "sub-dec", &["edgescribe/dec/#"]);
    let (speech, want) = recording();
    let excluded = "what is the temperature in the kitchen";
    assert!(want.iter().any(|w| w == excluded), "{want:?}");

    // The stream: the recording three times, each followed by 2 s of quiet that ends its last
    // utterance.
    let mut samples = Vec::new();
    for _ in 0..3 {
        samples.extend(&speech);
        samples.extend(quiet(32_000, 5));
    }
    let block_samples = samples.len() / 3;

    let arpa = dir.join("eng.arpa");
    std::fs::write(&arpa, unigram_arpa(&want)).unwrap();
    let cfg = dir.join("dec.toml");
    let base = format!(
        "[adapters]\ncache_dir = \"{}\"\nsource = \"\"\n[mqtt]\nbroker = \"{}\"\ndevice_id = \"dec\"\n",
        dir.join("cache").display(),
        broker.url()
    );
    std::fs::write(&cfg, &base).unwrap();
    let fifo = dir.join("input.fifo");
    mkfifo(&fifo);
    let mut daemon = Daemon::start(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--lang",
            "eng",
            "--input",
            fifo.to_str().unwrap(),
        ]
        .map(String::from),
        &[],
    );
    let mut input = WavFifo::open(&fifo, &samples);
    let mut feed = move |i: usize| input.write_until((i + 1) * block_samples);

    // 1. Greedy, as configured: the plain transcripts, no decoding extras.
    feed(0);
    for ((text, m), w) in block(&sub, want.len(), &daemon).iter().zip(&want) {
        assert_eq!(text, w);
        assert!(
            m.get("alternatives").is_none() && m.get("rejected").is_none(),
            "{m}"
        );
    }

    // 2. Phrase mode over MQTT, with every command but one (and two that are never said).
    let mut allowed: Vec<String> = want.iter().filter(|w| *w != excluded).cloned().collect();
    allowed.extend(["turn on the office light".into(), "what time is it".into()]);
    sub.publish(
        "edgescribe/dec/set/phrases",
        serde_json::to_string(&allowed).unwrap().as_bytes(),
    );
    daemon.wait_log("eng: 5 phrases set over MQTT", MINUTE);
    feed(1);
    for ((text, m), w) in block(&sub, want.len(), &daemon).iter().zip(&want) {
        if w == excluded {
            // Never executed on a mis-hearing: rejected, with an allowed sentence as the hint.
            assert_eq!(text, "", "{m}");
            assert_eq!(m["rejected"], true, "{m}");
            let hint = m["hint"].as_str().unwrap_or_default();
            assert!(allowed.iter().any(|a| a == hint), "{m}");
        } else {
            assert_eq!(text, w, "{m}");
            assert!(m.get("rejected").is_none(), "{m}");
        }
    }

    // 3. A reload to beam + LM decoding: it also ends the phrase list set over MQTT.
    std::fs::write(
        &cfg,
        format!(
            "{base}[decoder]\nmode = \"beam\"\nper_language = {{ eng = {{ lm = \"{}\" }} }}\n",
            arpa.display()
        ),
    )
    .unwrap();
    daemon.signal("HUP");
    daemon.wait_log("reloading the configuration", MINUTE);
    feed(2);
    let third = block(&sub, want.len(), &daemon);
    for ((text, m), w) in third.iter().zip(&want) {
        assert_eq!(text, w, "{m}");
        assert!(m.get("rejected").is_none(), "{m}");
    }
    // The n best come with beam decoding: at least one utterance has runners-up.
    assert!(
        third.iter().any(|(_, m)| m["alternatives"].is_array()),
        "{third:?}"
    );
    drop(feed);
    assert!(daemon.wait(MINUTE).success(), "{}", daemon.log().join("\n"));
    let loads = daemon
        .log()
        .iter()
        .filter(|l| l.contains("loaded in"))
        .count();
    assert_eq!(loads, 1, "the model is loaded once");
}
