//! No broker configured: the node runs the embedded broker (rumqttd) and publishes there;
//! a separate client (rumqttc, as any subscriber on the network would) receives transcripts,
//! the retained status and the Last Will's configuration.

use std::net::TcpListener;
use std::time::{Duration, SystemTime};

use crate::common::eventually;
use crate::common::mqtt_node::{self as node, WAIT};
use crate::common::subscriber::Subscriber;
use edgescribe::mqtt::{Mqtt, MqttConfig, MqttError};

#[test]
fn embedded_broker_serves_subscribers() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = MqttConfig {
        broker: None,
        embedded_listen: format!("127.0.0.1:{port}").parse().unwrap(),
        device_id: Some("embedded-pi".into()),
        keep_alive_s: 5,
        reconnect_min_ms: 50,
        reconnect_max_ms: 400,
        ha_discovery: false,
        ..MqttConfig::default()
    };
    let (node, _cmds) = Mqtt::start(&config, node::info()).unwrap();
    eventually("the node to connect to its embedded broker", WAIT, || {
        let s = node.connection();
        if s.connected {
            Ok(())
        } else {
            Err(s)
        }
    });
    let sub = Subscriber::connect(port, "embedded-sub", &["edgescribe/embedded-pi/#"]);
    // `online` arrives live (retain flag clear) if this subscription beat the node's publish to the
    // broker (CI under QEMU caught that race), else as the retained message.
    let status = sub
        .wait_for(WAIT, |m| m.topic.ends_with("/status"))
        .expect("status from the embedded broker");
    assert_eq!(status.text(), "online");
    // Once the broker has it, rumqttd keeps it: a later subscriber gets it on subscription.
    let late = Subscriber::connect(
        port,
        "embedded-late-sub",
        &["edgescribe/embedded-pi/status"],
    );
    let status = late
        .wait_for(WAIT, |m| m.topic.ends_with("/status"))
        .expect("retained status from the embedded broker");
    assert_eq!((status.text().as_str(), status.retain), ("online", true));
    for i in 1..=20 {
        node.publish_transcript(&node::transcript(i), SystemTime::now(), 1);
    }
    assert!(node.wait_delivered(WAIT), "{:?}", node.connection());
    let seqs: Vec<u64> = std::iter::from_fn(|| sub.next(Duration::from_secs(2)))
        .filter(|m| m.topic.ends_with("/transcript"))
        .map(|m| node::parse(&m.payload).seq)
        .collect();
    node::assert_complete_in_order(&seqs, 20);

    // A second node cannot run its own broker on the same address: a clear start-up error.
    let again = Mqtt::start(&config, node::info());
    match again {
        Err(MqttError::EmbeddedBroker { addr, .. }) => {
            assert_eq!(addr, format!("127.0.0.1:{port}"))
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("second embedded broker on the same port started"),
    }
}
