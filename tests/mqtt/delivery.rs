//! Transcripts reach subscribers of a real Mosquitto, with the documented JSON, and none is lost
//! when the broker goes away (stopped mid-stream, or down when the node starts, or the node
//! restarted during the outage with a spool).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common;
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::mqtt_node::{self as node, assert_complete_in_order, WAIT};
use crate::common::subscriber::Subscriber;
use edgescribe::mqtt::Mqtt;

/// Subscribed with `mosquitto_sub` (an independent client): the transcript arrives as the
/// documented JSON, not retained, and `status` is a retained `online`.
#[test]
fn subscriber_receives_documented_json() {
    let broker = Mosquitto::start(&common::scratch("mqtt-json"), BrokerOptions::default());
    let (node, _cmds) = Mqtt::start(&node::config(&broker.url(), "json-pi"), node::info()).unwrap();

    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-q",
            "1",
            "-V",
            "mqttv311",
        ])
        .args(["-t", "edgescribe/json-pi/#", "-F", "%r %t %p"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (package mosquitto-clients)");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = sub.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |pred: &dyn Fn(&str) -> bool| loop {
        let line = rx.recv_timeout(WAIT).expect("mosquitto_sub saw nothing");
        if pred(&line) {
            return line;
        }
    };
    // The retained status is the readiness signal: mosquitto_sub is subscribed.
    assert_eq!(
        next(&|l| l.contains("/status ")),
        "1 edgescribe/json-pi/status online"
    );

    let started = SystemTime::UNIX_EPOCH + Duration::from_millis(1_714_564_800_250);
    let seq = node.publish_transcript(&node::transcript(1), started, 87);
    assert_eq!(seq, 1);
    let line = next(&|l| l.contains("/transcript "));
    let json = line
        .strip_prefix("0 edgescribe/json-pi/transcript ")
        .expect("transcript is not retained, on …/transcript");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let expected = serde_json::json!({
        "event_type": "transcript",
        "text": "utterance number 1",
        "language": "eng",
        "confidence": 0.75,
        "start": "2024-05-01T12:00:00.250Z",
        "end": "2024-05-01T12:00:01.450Z",
        "duration_ms": 1200,
        "words": [
            {"word": "utterance", "start_ms": 0, "end_ms": 500, "confidence": 0.5},
            {"word": "number", "start_ms": 520, "end_ms": 800, "confidence": 1.0}
        ],
        "seq": 1,
        "boot_id": node.boot_id(),
        "processing_ms": 87,
        "model": "mms-tiny-test"
    });
    assert_eq!(v, expected);
    assert_eq!(node.boot_id().len(), 32);
    assert!(node.wait_delivered(WAIT));
    let _ = sub.kill();
    let _ = sub.wait();

    // A clean shutdown leaves `offline` retained.
    assert!(node.shutdown(Duration::from_secs(5)));
    let check = Subscriber::connect(broker.port, "json-check", &["edgescribe/json-pi/status"]);
    let status = check
        .wait_for(WAIT, |m| m.retain)
        .expect("no retained status");
    assert_eq!(status.text(), "offline");
}

/// Transcripts produced every 40 ms (and a burst of 50 just before the stop, so some are in
/// flight) while the broker is stopped for 3 s and restarted: every one arrives, first
/// occurrences in order.
#[test]
fn broker_restart_loses_nothing() {
    let mut broker = Mosquitto::start(&common::scratch("mqtt-restart"), BrokerOptions::default());
    let sub = Subscriber::connect(
        broker.port,
        "restart-sub",
        &["edgescribe/restart-pi/transcript"],
    );
    let (node, _cmds) =
        Mqtt::start(&node::config(&broker.url(), "restart-pi"), node::info()).unwrap();
    let now = SystemTime::now();
    let mut n = 0;
    let mut produce = |count: u64, pause: Duration| {
        for _ in 0..count {
            n += 1;
            assert_eq!(node.publish_transcript(&node::transcript(n), now, 5), n);
            std::thread::sleep(pause);
        }
    };
    let cadence = Duration::from_millis(40);
    produce(20, cadence);
    // A burst right before the broker goes, so that some are on the wire, unacknowledged.
    produce(50, Duration::ZERO);
    broker.stop();
    let undelivered_at_stop = node.undelivered();
    let down = Instant::now();
    produce(75, cadence); // ~3 s of speech while the broker is down
    let undelivered_while_down = node.undelivered();
    assert!(!node.connection().connected);
    broker.restart();
    let outage = down.elapsed();
    produce(20, cadence);
    let total = n;
    assert!(
        node.wait_delivered(WAIT),
        "{} undelivered",
        node.undelivered()
    );

    let mut seqs = Vec::new();
    let deadline = Instant::now() + WAIT;
    while seqs.iter().filter(|s| **s == total).count() == 0 && Instant::now() < deadline {
        if let Some(m) = sub.next(Duration::from_secs(1)) {
            let t = node::parse(&m.payload);
            assert_eq!(t.boot_id, node.boot_id());
            assert_eq!(t.text, format!("utterance number {}", t.seq));
            seqs.push(t.seq);
        }
    }
    seqs.extend(
        sub.drain(Duration::from_millis(500))
            .iter()
            .map(|m| node::parse(&m.payload).seq),
    );
    let dups = assert_complete_in_order(&seqs, total);
    let status = node.connection();
    eprintln!(
        "broker down {:.1} s; {total} transcripts; undelivered at stop {undelivered_at_stop}, \
         while down {undelivered_while_down}; received {} ({dups} duplicates); \
         connection attempts {}, connections {}",
        outage.as_secs_f64(),
        seqs.len(),
        status.attempts,
        status.connections
    );
    assert!(
        undelivered_while_down >= 70,
        "outbox held the outage's transcripts"
    );
    assert_eq!(node.counters().reconnects, 1);
    assert_eq!(node.counters().outbox_dropped, 0);
}

/// The broker is down when the node starts: the node keeps retrying (with backoff) and delivers
/// everything once the broker is up.
#[test]
fn broker_down_at_startup() {
    let mut broker = Mosquitto::start(&common::scratch("mqtt-down"), BrokerOptions::default());
    let sub = Subscriber::connect(broker.port, "down-sub", &["edgescribe/down-pi/transcript"]);
    broker.stop();
    let (node, _cmds) = Mqtt::start(&node::config(&broker.url(), "down-pi"), node::info()).unwrap();
    for i in 1..=25 {
        node.publish_transcript(&node::transcript(i), SystemTime::now(), 1);
    }
    let before = common::eventually("the node's third connection attempt", WAIT, || {
        let s = node.connection();
        if s.attempts >= 3 {
            Ok(s)
        } else {
            Err(s)
        }
    });
    assert!(!before.connected);
    assert!(before.attempts >= 2, "{before:?}");
    assert!(
        before
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("refused"),
        "{before:?}"
    );
    broker.restart();
    assert!(node.wait_delivered(WAIT));
    let seqs: Vec<u64> = std::iter::from_fn(|| sub.next(Duration::from_secs(2)))
        .map(|m| node::parse(&m.payload).seq)
        .collect();
    let dups = assert_complete_in_order(&seqs, 25);
    eprintln!(
        "broker down at start: {} failed attempts seen, then delivered all 25; {dups} duplicates",
        before.attempts
    );
}

/// With a spool, transcripts survive a restart of the node during an outage: the second run
/// sends the first run's transcripts (with their own boot id) before its own.
#[test]
fn spool_survives_node_restart_during_outage() {
    let dir = common::scratch("mqtt-spool");
    let mut broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let sub = Subscriber::connect(
        broker.port,
        "spool-sub",
        &["edgescribe/spool-pi/transcript"],
    );
    broker.stop();
    let mut config = node::config(&broker.url(), "spool-pi");
    config.spool_dir = Some(dir.join("spool"));

    let (first, _c) = Mqtt::start(&config, node::info()).unwrap();
    for i in 1..=5 {
        first.publish_transcript(&node::transcript(i), SystemTime::now(), 1);
    }
    let first_boot = first.boot_id().to_string();
    assert!(
        !first.shutdown(Duration::from_millis(200)),
        "nothing can be delivered"
    );
    drop(first);
    let files = std::fs::read_dir(dir.join("spool")).unwrap().count();
    assert_eq!(files, 5, "one spool file per undelivered transcript");

    let (second, _c) = Mqtt::start(&config, node::info()).unwrap();
    assert_eq!(second.undelivered(), 5);
    for i in 1..=3 {
        second.publish_transcript(&node::transcript(i), SystemTime::now(), 1);
    }
    broker.restart();
    assert!(second.wait_delivered(WAIT));
    let got: Vec<(String, u64)> = std::iter::from_fn(|| sub.next(Duration::from_secs(2)))
        .map(|m| {
            let t = node::parse(&m.payload);
            (t.boot_id, t.seq)
        })
        .collect();
    let mut firsts = Vec::new();
    for g in &got {
        if !firsts.contains(g) {
            firsts.push(g.clone());
        }
    }
    let second_boot = second.boot_id().to_string();
    let expected: Vec<(String, u64)> = (1..=5)
        .map(|s| (first_boot.clone(), s))
        .chain((1..=3).map(|s| (second_boot.clone(), s)))
        .collect();
    assert_eq!(firsts, expected);
    assert_eq!(
        std::fs::read_dir(dir.join("spool")).unwrap().count(),
        0,
        "spool emptied"
    );
}
