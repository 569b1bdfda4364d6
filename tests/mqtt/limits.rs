//! Packet limits on both sides, and retained commands, against a real Mosquitto (MQTT 5).
//!
//! - A broker that accepts smaller packets than a transcript: the transcript goes out cut to fit
//!   (`"truncated": true`) and nothing after it waits; the connection is never dropped.
//! - A retained message larger than the node accepts, left on a command topic: the broker never
//!   sends it (the node's limit is in its CONNECT), so the node stays connected.
//! - A retained command: never delivered (Retain Handling 2), so never obeyed.

use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::common;
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::mqtt_node::{self as node, WAIT};
use crate::common::subscriber::Subscriber;
use edgescribe::mqtt::{Mqtt, MqttConfig};

fn transcripts(sub: &Subscriber, n: usize) -> Vec<serde_json::Value> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Some(m) = sub.next(Duration::from_secs(1)) {
            got.push(m.json());
        }
    }
    got
}

#[test]
fn a_transcript_over_the_brokers_limit_is_cut_and_nothing_waits() {
    let broker = Mosquitto::start(
        &common::scratch("mqtt-broker-limit"),
        BrokerOptions {
            extra: "max_packet_size 4000\n".into(),
            ..BrokerOptions::default()
        },
    );
    let sub = Subscriber::connect(broker.port, "limit-sub", &["edgescribe/limit/transcript"]);
    // A long keep-alive: the node also reconnects when an acknowledgement is 2 keep-alives late,
    // which a run under emulation beside other tests once was (5 s); the reconnection this test
    // must not see is the broker's, at once, on an oversized packet.
    let config = MqttConfig {
        keep_alive_s: 60,
        ..node::config(&broker.url(), "limit")
    };
    let (node, _cmds) = Mqtt::start(&config, node::info()).unwrap();
    let now = SystemTime::now();
    let mut long = node::transcript(2);
    long.text = "a very long utterance ".repeat(1000); // 22 kB, plus its words
    node.publish_transcript(&node::transcript(1), now, 5);
    node.publish_transcript(&long, now, 5);
    node.publish_transcript(&node::transcript(3), now, 5);
    assert!(
        node.wait_delivered(WAIT),
        "{} undelivered",
        node.undelivered()
    );

    let got = transcripts(&sub, 3);
    let seqs: Vec<u64> = got.iter().map(|t| t["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(got[1]["truncated"], true);
    let text = got[1]["text"].as_str().unwrap();
    assert!(!text.is_empty() && long.text.starts_with(text) && text.len() < 4000);
    assert_eq!(got[0].get("truncated"), None, "short ones go out whole");
    assert_eq!(got[2]["text"], "utterance number 3");
    let status = node.connection();
    assert_eq!(
        (status.connections, status.last_error),
        (1, None),
        "the connection was never dropped"
    );
    let counters = node.counters();
    assert_eq!(
        (counters.transcripts_refused, counters.outbox_depth),
        (0, 0)
    );
}

#[test]
fn oversized_and_retained_commands_never_reach_the_node() {
    let dir = common::scratch("mqtt-retained-big");
    let broker = Mosquitto::start(&dir, BrokerOptions::default());
    let big = dir.join("big.txt");
    std::fs::write(&big, vec![b'x'; 1_100_000]).unwrap();
    let retain = |topic: &str, args: &[&str]| {
        let ok = Command::new("mosquitto_pub")
            .args(["-p", &broker.port.to_string(), "-r", "-q", "1", "-t", topic])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mosquitto_pub on {topic}");
    };
    retain(
        "edgescribe/big/set/language",
        &["-f", big.to_str().unwrap()],
    );
    retain("edgescribe/big/set/listening", &["-m", "off"]);

    let sub = Subscriber::connect(broker.port, "big-sub", &["edgescribe/big/transcript"]);
    let config = edgescribe::mqtt::MqttConfig {
        max_packet_bytes: 1 << 20,
        ..node::config(&broker.url(), "big")
    };
    let (node, cmds) = Mqtt::start(&config, node::info()).unwrap();
    let now = SystemTime::now();
    for i in 1..=5 {
        node.publish_transcript(&node::transcript(i), now, 5);
    }
    assert!(
        node.wait_delivered(WAIT),
        "{} undelivered",
        node.undelivered()
    );
    assert_eq!(transcripts(&sub, 5).len(), 5);
    // A live command still arrives: the subscriptions are in place, so the retained ones were
    // withheld by the broker, not missed.
    let live = Command::new("mosquitto_pub")
        .args(["-p", &broker.port.to_string(), "-q", "1"])
        .args(["-t", "edgescribe/big/set/language", "-m", "fra"])
        .status()
        .unwrap();
    assert!(live.success());
    let first = cmds.recv_timeout(WAIT).expect("the live command");
    assert_eq!(first, edgescribe::mqtt::Command::SetLanguage("fra".into()));
    assert!(
        cmds.recv_timeout(Duration::from_millis(300)).is_err(),
        "a retained command was delivered"
    );
    let status = node.connection();
    assert_eq!((status.connections, status.last_error), (1, None));
    assert_eq!(node.counters().commands_rejected, 0);
}

/// A transcript the broker refuses (its ACL denies the topic: MQTT 5 PubAck "not authorized") is
/// dropped and counted, not re-sent for ever and not counted as delivered; the connection stays.
#[test]
fn a_transcript_the_broker_refuses_is_counted_not_retried() {
    let dir = common::scratch("mqtt-acl");
    std::fs::create_dir_all(&dir).unwrap();
    let acl = dir.join("acl");
    // Anonymous clients: everything of the node's but writing its transcripts.
    std::fs::write(
        &acl,
        "topic readwrite edgescribe/acl/status\ntopic readwrite edgescribe/acl/state\n\
         topic readwrite edgescribe/acl/set/#\ntopic read edgescribe/acl/transcript\n",
    )
    .unwrap();
    std::fs::set_permissions(&acl, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let broker = Mosquitto::start(
        &dir.join("broker"),
        BrokerOptions {
            extra: format!("acl_file {}\n", acl.display()),
            ..BrokerOptions::default()
        },
    );
    let (node, _cmds) = Mqtt::start(&node::config(&broker.url(), "acl"), node::info()).unwrap();
    let now = SystemTime::now();
    node.publish_transcript(&node::transcript(1), now, 5);
    node.publish_transcript(&node::transcript(2), now, 5);
    assert!(
        node.wait_delivered(WAIT),
        "{} undelivered",
        node.undelivered()
    );
    let counters = node.counters();
    assert_eq!(
        (counters.transcripts_refused, counters.outbox_depth),
        (2, 0)
    );
    let status = node.connection();
    assert_eq!((status.connections, status.last_error), (1, None));
}
