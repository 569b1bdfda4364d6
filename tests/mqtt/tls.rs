//! TLS and passwords against a real Mosquitto: the right CA connects; a wrong CA or a wrong
//! password gives a clear error and is retried with backoff, not in a busy loop.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common;
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::mqtt_node::{self as node, WAIT};
use crate::common::subscriber::Subscriber;
use edgescribe::mqtt::{Mqtt, MqttHandle};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA generated for this run; returns the CA certificate's path.
fn make_ca(dir: &Path, name: &str) -> (PathBuf, CertifiedIssuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, ca.pem()).unwrap();
    (path, ca)
}

/// A server certificate for `localhost` and 127.0.0.1 signed by `ca`: (cert, key) paths.
fn make_server_cert(dir: &Path, ca: &CertifiedIssuer<'static, KeyPair>) -> (PathBuf, PathBuf) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &**ca).unwrap();
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn tls_broker(name: &str) -> (Mosquitto, PathBuf, PathBuf) {
    let dir = common::scratch(name);
    let (ca_path, ca) = make_ca(&dir, "test-ca");
    let (cert, key) = make_server_cert(&dir, &ca);
    let broker = Mosquitto::start(
        &dir.join("broker"),
        BrokerOptions {
            tls: Some((ca_path.clone(), cert, key)),
            ..BrokerOptions::default()
        },
    );
    (broker, dir, ca_path)
}

/// Counts the connection attempts a failing node makes in `window` (after its first failure).
fn attempts_in_window(node: &MqttHandle, window: Duration) -> u64 {
    common::eventually("the node's first failed connection attempt", WAIT, || {
        let s = node.connection();
        if s.attempts >= 1 && s.last_error.is_some() {
            Ok(())
        } else {
            Err(s)
        }
    });
    let before = node.connection().attempts;
    std::thread::sleep(window); // the measurement window itself
    node.connection().attempts - before
}

/// The broker's own count of connection attempts (its log is block-buffered when piped, so it
/// is complete only once the broker has exited), against the node's count.
fn broker_side_attempts(node: &MqttHandle, broker: &mut Mosquitto) -> (usize, u64) {
    broker.stop();
    let seen = broker.count("New connection from") + broker.count("Client connection from");
    (seen, node.connection().attempts)
}

#[test]
fn tls_with_the_right_ca_connects_and_delivers() {
    let (broker, _dir, ca) = tls_broker("mqtt-tls-ok");
    let mut config = node::config(&format!("mqtts://localhost:{}", broker.port), "tls-pi");
    config.ca_file = Some(ca);
    let (node, _c) = Mqtt::start(&config, node::info()).unwrap();
    node.publish_transcript(&node::transcript(1), SystemTime::now(), 1);
    assert!(node.wait_delivered(WAIT), "{:?}", node.connection());
    let status = node.connection();
    assert!(status.connected && status.attempts == 1, "{status:?}");
}

#[test]
fn tls_with_a_wrong_ca_fails_clearly_with_backoff() {
    let (mut broker, dir, _ca) = tls_broker("mqtt-tls-wrong-ca");
    let (other_ca, _) = make_ca(&dir, "other-ca");
    let mut config = node::config(&format!("mqtts://localhost:{}", broker.port), "tls-bad");
    config.ca_file = Some(other_ca);
    config.reconnect_min_ms = 200;
    config.reconnect_max_ms = 1000;
    let (node, _c) = Mqtt::start(&config, node::info()).unwrap();
    let window = Duration::from_secs(4);
    let attempts = attempts_in_window(&node, window);
    let status = node.connection();
    let error = status.last_error.clone().unwrap_or_default();
    let (broker_seen, node_total) = broker_side_attempts(&node, &mut broker);
    eprintln!(
        "wrong CA: {attempts} attempts in {window:?}; since start {node_total} by the node, \
         {broker_seen} seen by the broker: {error}"
    );
    assert!(!status.connected);
    assert!(
        error.starts_with("TLS: ") && error.contains("UnknownIssuer"),
        "{error}"
    );
    // 200 ms doubling to 1 s (±25 %): 4 to 7 attempts in 4 s. A busy loop makes thousands.
    assert!(
        (2..=8).contains(&attempts),
        "{attempts} attempts in {window:?}"
    );
    assert!(
        broker_seen as u64 <= node_total + 1,
        "the broker saw {broker_seen}"
    );
}

#[test]
fn wrong_password_fails_clearly_with_backoff_right_one_connects() {
    let dir = common::scratch("mqtt-password");
    let mut broker = Mosquitto::start(
        &dir.join("broker"),
        BrokerOptions {
            user: Some(("edge".into(), "right-password".into())),
            ..BrokerOptions::default()
        },
    );
    std::fs::write(dir.join("wrong"), "wrong-password\n").unwrap();
    let mut config = node::config(&broker.url(), "pw-pi");
    config.username = Some("edge".into());
    config.password_file = Some(dir.join("wrong"));
    config.reconnect_min_ms = 200;
    config.reconnect_max_ms = 1000;
    let (node, _c) = Mqtt::start(&config, node::info()).unwrap();
    let window = Duration::from_secs(4);
    let attempts = attempts_in_window(&node, window);
    let status = node.connection();
    let error = status.last_error.clone().unwrap_or_default();
    let (broker_seen, node_total) = broker_side_attempts(&node, &mut broker);
    eprintln!(
        "wrong password: {attempts} attempts in {window:?}; since start {node_total} by the \
         node, {broker_seen} seen by the broker: {error}"
    );
    assert!(
        error.contains("not authorized") || error.contains("bad user name or password"),
        "{error}"
    );
    assert!(
        !error.contains("wrong-password"),
        "the password leaked into the error"
    );
    assert!(
        (2..=8).contains(&attempts),
        "{attempts} attempts in {window:?}"
    );
    assert!(
        broker_seen as u64 <= node_total + 1,
        "the broker saw {broker_seen}"
    );
    assert!(!broker.log().join("\n").contains("wrong-password"));
    drop(node);
    broker.restart();

    // The right password, from an environment variable this time.
    std::env::set_var("EDGESCRIBE_TEST_MQTT_PASSWORD", "right-password");
    config.password_file = None;
    config.password_env = Some("EDGESCRIBE_TEST_MQTT_PASSWORD".into());
    let (node, _c) = Mqtt::start(&config, node::info()).unwrap();
    let sub = Subscriber::connect_with(
        broker.port,
        "pw-sub",
        &["edgescribe/pw-pi/transcript"],
        Some(("edge", "right-password")),
    );
    node.publish_transcript(&node::transcript(1), SystemTime::now(), 1);
    assert!(node.wait_delivered(WAIT));
    let m = sub.wait_for(WAIT, |_| true).expect("transcript");
    assert_eq!(node::parse(&m.payload).seq, 1);
}
