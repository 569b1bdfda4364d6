//! A node killed with SIGKILL: subscribers see `offline` on `…/status` (the Last Will).
//!
//! The daemon binary does not exist yet, so the node is this test binary itself, re-executed
//! with `EDGESCRIBE_MQTT_CHILD_BROKER` set: then `main` runs a node instead of the test. This
//! needs `harness = false` (see Cargo.toml), which keeps the child free of libtest's output and
//! threads, and makes it a real separate process that can be killed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::mosquitto::{BrokerOptions, Mosquitto};
use common::mqtt_node as node;
use common::subscriber::Subscriber;
use edgescribe::mqtt::Mqtt;

const CHILD_ENV: &str = "EDGESCRIBE_MQTT_CHILD_BROKER";

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(url) => child(&url),
        Err(_) => {
            sigkill_shows_offline();
            println!("test sigkill_shows_offline ... ok");
        }
    }
}

/// The node: connects, publishes one transcript, then waits to be killed.
fn child(url: &str) {
    let (handle, _commands) = Mqtt::start(&node::config(url, "crash-pi"), node::info()).unwrap();
    handle.publish_transcript(&node::transcript(1), SystemTime::now(), 1);
    if !handle.wait_delivered(Duration::from_secs(30)) {
        std::process::exit(2);
    }
    println!("delivered");
    loop {
        std::thread::park();
    }
}

fn sigkill_shows_offline() {
    let broker = Mosquitto::start(&common::scratch("mqtt-crash"), BrokerOptions::default());
    let sub = Subscriber::connect(
        broker.port,
        "crash-sub",
        &[
            "edgescribe/crash-pi/status",
            "edgescribe/crash-pi/transcript",
        ],
    );
    // Under emulation (cross/test-aarch64) the test binary is re-run through the same emulator.
    let exe = std::env::current_exe().unwrap();
    let mut child = match std::env::var_os("EDGESCRIBE_TEST_RUNNER").filter(|r| !r.is_empty()) {
        Some(runner) => {
            let mut c = Command::new(runner);
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = child
        .env(CHILD_ENV, broker.url())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let online = sub
        .wait_for(node::WAIT, |m| m.topic.ends_with("/status"))
        .expect("child never said online");
    assert_eq!(online.text(), "online");
    sub.wait_for(node::WAIT, |m| m.topic.ends_with("/transcript"))
        .expect("child's transcript");

    child.kill().unwrap(); // SIGKILL: no shutdown code runs
    let killed = Instant::now();
    child.wait().unwrap();
    let offline = sub
        .wait_for(Duration::from_secs(20), |m| m.topic.ends_with("/status"))
        .expect("no status after SIGKILL");
    assert_eq!(offline.text(), "offline");
    eprintln!(
        "SIGKILL → `offline` seen after {} ms (keep-alive 5 s)",
        killed.elapsed().as_millis()
    );
    // Retained, so a subscriber arriving later sees it too.
    let late = Subscriber::connect(broker.port, "crash-late", &["edgescribe/crash-pi/status"]);
    let m = late
        .wait_for(node::WAIT, |m| m.retain)
        .expect("retained status");
    assert_eq!(m.text(), "offline");
}
