//! The embedded broker (rumqttd) used when no `broker` is configured: the node then works
//! standalone and subscribers connect to the device itself.
//!
//! rumqttd is built without TLS and websockets (`default-features = false`), so it shares no TLS
//! stack with rumqttc (rumqttd 0.20 would otherwise bring tokio-rustls 0.25/rustls 0.22 next to
//! rumqttc's 0.26/0.23). It speaks plain MQTT 3.1.1 on one listener and keeps no state on disk.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::MqttError;

/// Starts the broker on `listen` in a background thread and returns the address a local client
/// should connect to. Fails at once if the address cannot be bound.
pub fn start(listen: SocketAddr, max_packet_bytes: usize) -> Result<SocketAddr, MqttError> {
    // rumqttd reports a bind failure only in its log, from its own thread: probe first so the
    // daemon can say clearly that something else already listens there.
    TcpListener::bind(listen).map_err(|e| MqttError::EmbeddedBroker {
        addr: listen.to_string(),
        reason: e.to_string(),
    })?;
    let server = ServerSettings {
        name: "edgescribe-v4".into(),
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
        v4: Some(HashMap::from([("1".to_string(), server)])),
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
    let connect_to = if listen.ip().is_unspecified() {
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
    // Readiness: the client connects at once and would log a refused first attempt otherwise.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect_timeout(&connect_to, std::time::Duration::from_millis(200))
        .is_err()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    log::info!("embedded MQTT broker listening on {listen}");
    Ok(connect_to)
}
