//! `edgescribe run --input FILE.wav` end to end: real Mosquitto, a subscriber, the documented
//! transcript JSON, exit 0 once everything is acknowledged, `offline` at the end, recordings.

use std::time::Duration;

use crate::common::daemon::{quiet, read_wav, write_wav, Daemon};
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::subscriber::Subscriber;
use crate::common::*;

/// Three utterances (the fixture commands) between stretches of quiet room noise.
fn three_commands(path: &std::path::Path) {
    let mut all = quiet(16000, 1);
    for (i, name) in ["eng_lights.wav", "fra_volets.wav", "eng_lights.wav"]
        .iter()
        .enumerate()
    {
        all.extend(read_wav(&audio(name)));
        all.extend(quiet(24000, 7 + i as u32));
    }
    write_wav(path, &all);
}

#[test]
fn a_recording_is_transcribed_delivered_and_the_daemon_exits_zero() {
    let dir = scratch("daemon-input");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let sub = Subscriber::connect(broker.port, "test-sub-input", &["edgescribe/node1/#"]);
    let wav = dir.join("three.wav");
    three_commands(&wav);
    let config = dir.join("edgescribe.toml");
    std::fs::write(
        &config,
        format!(
            "languages = [\"eng\", \"fra\"]\n[adapters]\ncache_dir = \"{}\"\nsource = \"\"\n",
            dir.join("cache").display()
        ),
    )
    .unwrap();
    let records = dir.join("records");
    let args: Vec<String> = [
        "--config",
        config.to_str().unwrap(),
        "--input",
        wav.to_str().unwrap(),
        "--model",
        tiny_model("int8").to_str().unwrap(),
        "--mqtt-url",
        &broker.url(),
        "--device-id",
        "node1",
        "--record-dir",
        records.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut daemon = Daemon::start(&args, &[]);
    let status = daemon.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        daemon.log().join("\n")
    );

    let msgs = sub.drain(Duration::from_secs(2));
    let transcripts: Vec<serde_json::Value> = msgs
        .iter()
        .filter(|m| m.topic == "edgescribe/node1/transcript")
        .map(|m| m.json())
        .collect();
    assert_eq!(transcripts.len(), 3, "{msgs:#?}");
    for (i, t) in transcripts.iter().enumerate() {
        assert_eq!(t["seq"], i as u64 + 1);
        assert_eq!(t["language"], "eng");
        assert!(!t["text"].as_str().unwrap().is_empty());
        assert_eq!(t["boot_id"], transcripts[0]["boot_id"]);
        for key in [
            "confidence",
            "start",
            "end",
            "duration_ms",
            "words",
            "processing_ms",
            "model",
        ] {
            assert!(!t[key].is_null(), "{key} missing in {t}");
        }
        // Each utterance is about as long as the command (1.5 s) plus pre-roll and hangover.
        let ms = t["duration_ms"].as_u64().unwrap();
        assert!((1400..=2600).contains(&ms), "{ms} ms");
    }
    let starts: Vec<&str> = transcripts
        .iter()
        .map(|t| t["start"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    // Retained state on start, `offline` last.
    let status: Vec<String> = msgs
        .iter()
        .filter(|m| m.topic == "edgescribe/node1/status")
        .map(|m| m.text())
        .collect();
    assert_eq!(
        status.last().map(String::as_str),
        Some("offline"),
        "{status:?}"
    );
    let languages = msgs
        .iter()
        .find(|m| m.topic == "edgescribe/node1/languages")
        .expect("no …/languages message")
        .json();
    let langs: Vec<(&str, &str)> = languages
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["lang"].as_str().unwrap(), l["state"].as_str().unwrap()))
        .collect();
    assert_eq!(langs, [("eng", "bundled"), ("fra", "bundled")]);

    // --record-dir: one WAV + JSON per published transcript, the WAV the utterance's audio.
    let mut names: Vec<String> = std::fs::read_dir(&records)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(
        names[0].ends_with("-000001.json") && names[1].ends_with("-000001.wav"),
        "{names:?}"
    );
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(records.join(&names[0])).unwrap()).unwrap();
    assert_eq!(recorded["text"], transcripts[0]["text"]);
    let samples = read_wav(&records.join(&names[1]));
    assert_eq!(
        samples.len() as u64 * 1000 / 16000,
        transcripts[0]["duration_ms"].as_u64().unwrap()
    );
}

#[test]
fn start_up_failures_are_one_clear_line_and_exit_1() {
    let dir = scratch("daemon-start-errors");
    let wav = audio("eng_lights.wav");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--input", wav.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = edgescribe(&args);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(1), "{err}");
        let last = err.lines().last().unwrap_or_default().to_string();
        assert!(last.starts_with("edgescribe: error: "), "{err}");
        last
    };
    let model = tiny_model("int8");
    let model = model.to_str().unwrap();
    let e = run(&["--model", dir.join("nope").to_str().unwrap()]);
    assert!(e.contains("nope"), "{e}");
    let e = run(&["--model", model, "--lang", "englsh"]);
    assert!(e.contains("englsh") && e.contains("eng"), "{e}");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[vad]\nhangover_ms = -1\n").unwrap();
    let e = run(&["--model", model, "--config", bad.to_str().unwrap()]);
    assert!(e.contains("bad.toml:2: vad.hangover_ms"), "{e}");
    let e = run(&[
        "--model",
        model,
        "--config",
        dir.join("absent.toml").to_str().unwrap(),
    ]);
    assert!(e.contains("absent.toml: cannot read"), "{e}");
    // A configured language whose adapter is not bundled and cannot be fetched (no source).
    let e = run(&[
        "--model",
        model,
        "--lang",
        "ita",
        "--cache",
        dir.join("cache").to_str().unwrap(),
        "--config",
        {
            let c = dir.join("nosource.toml");
            std::fs::write(&c, "languages = [\"ita\"]\n[adapters]\nsource = \"\"\n").unwrap();
            Box::leak(c.into_boxed_path()).to_str().unwrap()
        },
    ]);
    assert!(
        e.contains("no configured language is available") && e.contains("ita"),
        "{e}"
    );
    let e = run(&["--model", model, "--mqtt-url", "http://x"]);
    assert!(e.contains("mqtt.broker"), "{e}");
}

#[test]
fn check_config_and_print_default_config() {
    let dir = scratch("daemon-check-config");
    let out = edgescribe(&["print-default-config"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/edgescribe.toml")
        )
        .unwrap()
    );
    let file = dir.join("default.toml");
    std::fs::write(&file, &text).unwrap();
    let out = edgescribe(&["check-config", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    std::fs::write(
        &file,
        "languages = [\"eng\"]\n[mqtt]\nbroker = \"mqtt://b\"\nkeep_alive_s = 2\n",
    )
    .unwrap();
    let out = edgescribe(&["check-config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("default.toml:4: mqtt.keep_alive_s: must be between 5 and 3600"),
        "{err}"
    );
}
