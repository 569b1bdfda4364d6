//! The daemon as systemd runs it: ALSA capture (a `type file` PCM fed through a FIFO, paced like a
//! microphone), real Mosquitto, the sd_notify protocol on our own `NOTIFY_SOCKET`, SIGTERM in the
//! middle of an utterance, SIGHUP reloads and MQTT commands.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::common::daemon::{
    alsa_fifo_device, microphone, mkfifo, quiet, read_wav, write_wav, Daemon, NotifySocket,
};
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::subscriber::{Message, Subscriber};
use crate::common::*;

const MINUTE: Duration = Duration::from_secs(60);

fn transcripts(msgs: &[Message], topic: &str) -> Vec<serde_json::Value> {
    msgs.iter()
        .filter(|m| m.topic == topic)
        .map(|m| m.json())
        .collect()
}

#[test]
fn sigterm_mid_utterance_delivers_it_then_offline_with_sd_notify_in_order() {
    let dir = scratch("daemon-sigterm");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let sub = Subscriber::connect(broker.port, "test-sub-sigterm", &["edgescribe/svc/#"]);
    let fifo = dir.join("mic.fifo");
    mkfifo(&fifo);
    let alsa_path = alsa_fifo_device(&dir, &fifo);
    let speech = read_wav(&audio("eng_lights.wav"));
    // Quiet, a whole command, quiet, then the first second of the command again: the daemon is
    // in the middle of that utterance when it is stopped.
    let mut first = quiet(8000, 3);
    first.extend(&speech);
    first.extend(quiet(24000, 4));
    first.extend(&speech[..16000]);
    let (go_tx, go_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let written = microphone(&fifo, first, go_rx, stop.clone());

    let config = dir.join("edgescribe.toml");
    std::fs::write(
        &config,
        format!(
            "[audio]\ndevice = \"es_mic\"\nperiod_ms = 20\n[adapters]\ncache_dir = \"{}\"\nsource = \"\"\n[mqtt]\nbroker = \"{}\"\ndevice_id = \"svc\"\n",
            dir.join("cache").display(),
            broker.url()
        ),
    )
    .unwrap();
    let notify = NotifySocket::bind(&dir);
    let args: Vec<String> = [
        "--config",
        config.to_str().unwrap(),
        "--model",
        tiny_model("int8").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut daemon = Daemon::start(
        &args,
        &[
            ("ALSA_CONFIG_PATH", alsa_path),
            ("NOTIFY_SOCKET", notify.path.display().to_string()),
            // Ping every 250 ms, so pings are seen quickly.
            ("WATCHDOG_USEC", "500000".into()),
        ],
    );
    notify.wait("READY=1", MINUTE);
    let first_transcript = sub
        .wait_for(MINUTE, |m| m.topic == "edgescribe/svc/transcript")
        .unwrap_or_else(|| panic!("no transcript; log:\n{}", daemon.log().join("\n")));
    assert_eq!(first_transcript.json()["seq"], 1);
    // The second utterance has started (and is not finished: its audio stops mid-word).
    written.recv_timeout(MINUTE).unwrap();
    daemon.wait_log_count("vad: speech at sample", 2, MINUTE);
    notify.wait("WATCHDOG=1", MINUTE);

    daemon.signal("TERM");
    go_tx.send(()).unwrap();
    let status = daemon.wait(MINUTE);
    stop.store(true, Ordering::SeqCst);
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        daemon.log().join("\n")
    );

    let msgs = sub.drain(Duration::from_secs(2));
    let ts = transcripts(&msgs, "edgescribe/svc/transcript");
    assert_eq!(
        ts.len(),
        1,
        "the utterance in flight was not delivered: {msgs:#?}"
    );
    assert_eq!(ts[0]["seq"], 2);
    let ms = ts[0]["duration_ms"].as_u64().unwrap();
    // Pre-roll plus at most the second of speech written: cut, not the whole 1.5 s command.
    assert!((300..1500).contains(&ms), "cut utterance is {ms} ms");
    let t_at = msgs
        .iter()
        .position(|m| m.topic == "edgescribe/svc/transcript")
        .unwrap();
    let offline_at = msgs
        .iter()
        .position(|m| m.topic == "edgescribe/svc/status" && m.text() == "offline")
        .expect("no offline");
    assert!(t_at < offline_at, "offline before the last transcript");

    let n = notify.messages();
    let at = |needle: &str| {
        n.iter()
            .position(|m| m.contains(needle))
            .unwrap_or(usize::MAX)
    };
    let (ready, ping, stopping) = (at("READY=1"), at("WATCHDOG=1"), at("STOPPING=1"));
    assert!(
        ready < ping && ping < stopping && stopping < n.len(),
        "{n:?}"
    );
    assert!(
        n[ready].contains("STATUS=listening on alsa:es_mic, language eng"),
        "{n:?}"
    );
}

#[test]
fn reload_commands_and_a_language_switch_mid_stream() {
    let dir = scratch("daemon-reload");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let sub = Subscriber::connect(broker.port, "test-sub-reload", &["edgescribe/rl/#"]);
    // A recording paced in real time: a command at 1 s, at ~9 s and ~21 s (after the mute), then
    // quiet (the daemon keeps listening until stopped).
    let speech = read_wav(&audio("eng_lights.wav"));
    let mut all = quiet(16000, 5);
    all.extend(&speech);
    all.extend(quiet(16000 * 6, 6));
    all.extend(&speech);
    all.extend(quiet(16000 * 10, 8));
    all.extend(&speech);
    all.extend(quiet(16000 * 40, 7));
    let wav = dir.join("stream.wav");
    write_wav(&wav, &all);
    let config = dir.join("edgescribe.toml");
    let write_config = |langs: &str, hangover_ms: u32| {
        std::fs::write(
            &config,
            format!(
                "languages = [{langs}]\n[vad]\nhangover_ms = {hangover_ms}\n[adapters]\ncache_dir = \"{}\"\nsource = \"\"\n[mqtt]\nbroker = \"{}\"\ndevice_id = \"rl\"\nstats_interval_s = 1\n",
                dir.join("cache").display(),
                broker.url()
            ),
        )
        .unwrap();
    };
    write_config("\"eng\"", 400);
    let notify = NotifySocket::bind(&dir);
    let args: Vec<String> = [
        "--config",
        config.to_str().unwrap(),
        "--model",
        tiny_model("int8").to_str().unwrap(),
        "--input",
        wav.to_str().unwrap(),
        "--realtime",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut daemon = Daemon::start(
        &args,
        &[("NOTIFY_SOCKET", notify.path.display().to_string())],
    );
    notify.wait("READY=1", MINUTE);
    let langs = |m: &Message| -> Vec<String> {
        m.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["lang"].as_str().unwrap().to_string())
            .collect()
    };
    let m = sub
        .wait_for(MINUTE, |m| m.topic == "edgescribe/rl/languages")
        .unwrap();
    assert_eq!(langs(&m), ["eng"]);
    // `fra` is not configured yet: refused.
    sub.publish("edgescribe/rl/set/language", b"fra");
    let m = sub
        .wait_for(MINUTE, |m| {
            m.topic == "edgescribe/rl/state" && !m.json()["error"].is_null()
        })
        .unwrap();
    assert!(
        m.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fra"),
        "{}",
        m.text()
    );

    // SIGHUP with a new language and new VAD settings: no restart, the new list is announced.
    write_config("\"eng\", \"fra\"", 300);
    daemon.signal("HUP");
    notify.wait("RELOADING=1", MINUTE);
    let m = sub
        .wait_for(MINUTE, |m| {
            m.topic == "edgescribe/rl/languages" && langs(m).len() == 2
        })
        .unwrap();
    assert_eq!(langs(&m), ["eng", "fra"]);
    assert_eq!(m.json()[1]["state"], "bundled");
    daemon.wait_log("vad: new settings in effect", MINUTE);
    let ready_again = notify
        .messages()
        .iter()
        .rposition(|m| m.contains("READY=1"))
        .unwrap();
    let reloading = notify
        .messages()
        .iter()
        .position(|m| m.contains("RELOADING=1"))
        .unwrap();
    assert!(reloading < ready_again, "{:?}", notify.messages());

    // The first command is recognised in English; switch to French before the second.
    let t1 = sub
        .wait_for(MINUTE, |m| m.topic == "edgescribe/rl/transcript")
        .unwrap()
        .json();
    assert_eq!(t1["language"], "eng");
    sub.publish("edgescribe/rl/set/language", b"fra");
    let state = sub
        .wait_for(MINUTE, |m| {
            m.topic == "edgescribe/rl/state" && m.json()["language"] == "fra"
        })
        .unwrap()
        .json();
    assert!(state["error"].is_null(), "{state}");
    let t2 = sub
        .wait_for(MINUTE, |m| m.topic == "edgescribe/rl/transcript")
        .unwrap()
        .json();
    assert_eq!(t2["language"], "fra");
    assert_ne!(
        t1["text"], t2["text"],
        "the French head should read the same audio differently"
    );

    // Mute: the state says so, and the third command is counted as muted, not published.
    sub.publish("edgescribe/rl/set/listening", b"off");
    sub.wait_for(MINUTE, |m| {
        m.topic == "edgescribe/rl/state" && m.json()["listening"] == false
    })
    .unwrap();
    let stats = sub
        .wait_for(MINUTE, |m| {
            m.topic == "edgescribe/rl/stats" && m.json()["muted_utterances"].as_u64() >= Some(1)
        })
        .unwrap()
        .json();
    assert!(stats["utterances"].as_u64() >= Some(2), "{stats}");
    assert_eq!(stats["recognition_failures"], 0, "{stats}");
    assert_eq!(stats["record_errors"], 0, "{stats}");
    assert!(stats["empty_utterances"].is_u64(), "{stats}");
    // A malformed reload leaves everything running.
    std::fs::write(&config, "languages = [\"eng\"\n").unwrap();
    daemon.signal("HUP");
    daemon.wait_log("reload refused, the running configuration stays", MINUTE);

    daemon.signal("TERM");
    let status = daemon.wait(MINUTE);
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        daemon.log().join("\n")
    );
}
