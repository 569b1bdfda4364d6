//! The mDNS announcement, as a zeroconf browser on this host sees it.

use std::net::IpAddr;

use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::scratch;
use crate::server::Server;
use crate::venv::client;

#[test]
fn a_browser_finds_the_server_at_a_routable_address() {
    let dir = scratch("wyoming-zeroconf");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    // A name of its own: another run's announcement on the same network must not answer for us.
    let name = format!("wy-zc-{}", std::process::id());
    let server = Server::start(&dir, &broker, &name, "0.0.0.0", "");
    let got = client(&["browse", &name, "20"]);
    assert_eq!(got["name"], format!("{name}._wyoming._tcp.local."), "{got}");
    assert_eq!(got["port"], server.port);
    let addresses: Vec<IpAddr> = got["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(!addresses.is_empty(), "{got}");
    for a in &addresses {
        assert!(!a.is_unspecified() && !a.is_loopback(), "{a} announced");
    }
    // The announced address serves.
    let got = client(&["describe", &addresses[0].to_string(), &server.port()]);
    assert!(got["data"]["asr"].is_array(), "{got}");
    drop(server);
}
