//! What an unlucky operator or a hostile client does to the daemon: an input that blocks forever, a
//! retained command left on the broker, a configuration naming files that are not there. Each gets
//! a clear answer, and nothing wedges.

use std::time::{Duration, Instant};

use crate::common::daemon::{mkfifo, Daemon};
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::subscriber::Subscriber;
use crate::common::*;

const MINUTE: Duration = Duration::from_secs(60);

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A FIFO nobody writes to blocks the recording's `open` for ever; SIGTERM still stops the daemon,
/// within `recognizer.drain_timeout_s`, exit 0.
#[test]
fn sigterm_stops_the_daemon_while_its_input_blocks() {
    let dir = scratch("hostile-fifo");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let fifo = dir.join("input.fifo");
    mkfifo(&fifo);
    let config = dir.join("edgescribe.toml");
    std::fs::write(
        &config,
        format!(
            "[recognizer]\ndrain_timeout_s = 5\n[adapters]\ncache_dir = {:?}\nsource = \"\"\n",
            dir.join("cache")
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(
        &args(&[
            "--config",
            config.to_str().unwrap(),
            "--input",
            fifo.to_str().unwrap(),
            "--model",
            tiny_model("int8").to_str().unwrap(),
            "--mqtt-url",
            &broker.url(),
            "--device-id",
            "fifo",
        ]),
        &[],
    );
    daemon.wait_log("ready:", MINUTE);
    let t0 = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "{status:?}; log:\n{}",
        daemon.log().join("\n")
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    daemon.wait_log("left behind", Duration::from_secs(1));
}

/// A retained `off` on `…/set/listening` would mute the node after every reconnect: the node
/// subscribes with Retain Handling 2, so the broker never sends it, and the recording is
/// transcribed. (`tests/mqtt/limits.rs` checks the same at the library's level, with a live
/// command proving the subscription is there.)
#[test]
fn a_retained_command_is_never_obeyed() {
    let dir = scratch("hostile-retained");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let published = std::process::Command::new("mosquitto_pub")
        .args(["-p", &broker.port.to_string(), "-r", "-q", "1"])
        .args(["-t", "edgescribe/ret/set/listening", "-m", "off"])
        .status()
        .unwrap();
    assert!(published.success());
    let sub = Subscriber::connect(broker.port, "test-sub-retained", &["edgescribe/ret/#"]);
    let mut daemon = Daemon::start(
        &args(&[
            "--input",
            audio("trained/commands_eng.wav").to_str().unwrap(),
            "--mqtt-url",
            &broker.url(),
            "--device-id",
            "ret",
            "--cache",
            dir.join("cache").to_str().unwrap(),
        ]),
        &[],
    );
    let status = daemon.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "{status:?}; log:\n{}",
        daemon.log().join("\n")
    );
    let messages = sub.drain(Duration::from_secs(1));
    let transcripts = messages
        .iter()
        .filter(|m| m.topic == "edgescribe/ret/transcript")
        .count();
    assert!(
        transcripts >= 3,
        "{transcripts} transcripts while a retained off waited"
    );
    let muted = messages
        .iter()
        .any(|m| m.topic == "edgescribe/ret/state" && m.json()["listening"] == false);
    assert!(!muted, "the state said listening off");
    let log = daemon.log();
    assert!(
        !log.iter().any(|l| l.contains("listening off")),
        "obeyed:\n{}",
        log.join("\n")
    );

    // First run without surprises: `…/stats` went out at once (the run is far shorter than the
    // 60 s interval) and is retained, so Home Assistant's sensors have values from the start.
    let late = Subscriber::connect(broker.port, "test-sub-late", &["edgescribe/ret/stats"]);
    let stats = late
        .next(Duration::from_secs(5))
        .expect("no retained …/stats");
    assert!(stats.retain);
    assert!(
        stats.json()["mqtt"]["outbox_depth"].is_u64(),
        "{}",
        stats.text()
    );
}

/// `check-config` reads what the file names, as `run` would: each missing piece is one line
/// naming the key, exit 1.
#[test]
fn check_config_reads_the_files_and_variables_it_names() {
    let dir = scratch("hostile-check-config");
    let absent = dir.join("absent");
    let file = dir.join("edgescribe.toml");
    let check = |text: String, needle: &str| {
        std::fs::write(&file, text).unwrap();
        let out = edgescribe(&["check-config", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    };
    let mqtt = "[mqtt]\nbroker = \"mqtt://b\"\nusername = \"u\"\n";
    check(
        format!("{mqtt}password_file = {absent:?}\n"),
        "mqtt.password_file",
    );
    check(
        format!("{mqtt}password_env = \"ES_CHECK_CONFIG_UNSET\"\n"),
        "mqtt.password_env",
    );
    check(
        format!("[mqtt]\nbroker = \"mqtts://b\"\nca_file = {absent:?}\n"),
        "TLS file",
    );
    check(format!("[model]\ndir = {absent:?}\n"), "model.dir");
    check(
        "[mqtt]\nbroker = \"tcp://u:SECRET@host\"\n".into(),
        "mqtt.broker",
    );
    let out = edgescribe(&["check-config", file.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("SECRET"));
}
