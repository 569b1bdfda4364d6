//! The embedded broker (rumqttd) used when no `broker` is configured: the node then works
//! standalone and subscribers connect to the device itself.
//!
//! rumqttd is built without TLS and websockets (`default-features = false`), so it shares no TLS
//! stack with rumqttc (rumqttd 0.20 would otherwise bring tokio-rustls 0.25/rustls 0.22 next to
//! rumqttc's 0.26/0.23). It keeps no state on disk and has two listeners: MQTT 3.1.1 on `listen`,
//! for subscribers (Home Assistant speaks 3.1.1 by default), and MQTT 5 on a loopback port of its
//! own for the node's client, which speaks only 5.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::MqttError;

/// Starts the broker on `listen` in a background thread and returns the address of its MQTT 5
/// listener, for the node's own client. Fails at once if `listen` cannot be bound.
pub fn start(listen: SocketAddr, max_packet_bytes: usize) -> Result<SocketAddr, MqttError> {
    // rumqttd reports a bind failure only in its log, from its own thread: probe first so the
    // daemon can say clearly that something else already listens there.
    TcpListener::bind(listen).map_err(|e| MqttError::EmbeddedBroker {
        addr: listen.to_string(),
        reason: e.to_string(),
    })?;
    // rumqttd binds its listeners itself and cannot report the port of a `:0` one: take a free
    // loopback port from the kernel and hand it over. (Another process could take it in
    // between; the client's connection attempts would then fail visibly and be retried.)
    let local_v5 = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| MqttError::EmbeddedBroker {
            addr: "127.0.0.1:0".into(),
            reason: e.to_string(),
        })?;
    let settings = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: max_packet_bytes,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        router: RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            // Bounded memory on a small device: 10 segments of 1 MiB per topic filter.
            max_segment_size: 1 << 20,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([(
            "1".to_string(),
            settings("edgescribe-v4", listen),
        )])),
        v5: Some(HashMap::from([(
            "1".to_string(),
            settings("edgescribe-v5", local_v5),
        )])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = Broker::new(config).start() {
                log::error!("embedded MQTT broker on {listen} stopped: {e}");
            }
        })
        .map_err(MqttError::Runtime)?;
    let subscribers = if listen.ip().is_unspecified() {
        SocketAddr::new(
            if listen.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            listen.port(),
        )
    } else {
        listen
    };
    // Readiness: the client connects at once and would log a refused first attempt otherwise;
    // subscribers started right after the daemon's readiness expect the 3.1.1 listener too.
    // (rumqttd has no readiness signal; connecting is the check.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for addr in [local_v5, subscribers] {
        while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
            .is_err()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    log::info!("embedded MQTT broker listening on {listen}");
    Ok(local_v5)
}
