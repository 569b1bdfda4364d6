//! The mDNS announcement Home Assistant's Wyoming integration discovers: `_wyoming._tcp.local.`,
//! instance name the device id, our port, and the addresses of the interfaces it is announced on.
//! A server bound to every address (`0.0.0.0`) is announced with each interface's own address, never
//! `0.0.0.0`; one bound to a single address is announced with that address. Pure Rust (`mdns-sd`):
//! nothing to link, the same on aarch64.

use std::net::SocketAddr;
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};

pub const SERVICE_TYPE: &str = "_wyoming._tcp.local.";

/// How long withdrawing the announcement may take when stopping (a goodbye packet per interface).
const GOODBYE_WAIT: Duration = Duration::from_millis(500);

pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Announcement {
    pub fn start(device_id: &str, addr: SocketAddr) -> Result<Announcement, mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        let host = format!("{}.local.", host_label(device_id));
        let ip = addr.ip();
        let info = if ip.is_unspecified() {
            // 0.0.0.0 takes IPv4 only: announcing IPv6 addresses would send clients where nobody
            // listens. `[::]` takes both (Linux's default dual stack).
            if ip.is_ipv4() {
                daemon.disable_interface(IfKind::IPv6)?;
            }
            // Loopback addresses reach only this host: a browser here would be told 127.0.0.1
            // instead of the address the rest of the network can use.
            daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
            ServiceInfo::new(SERVICE_TYPE, device_id, &host, "", addr.port(), None)?
                .enable_addr_auto()
        } else {
            ServiceInfo::new(SERVICE_TYPE, device_id, &host, ip, addr.port(), None)?
        };
        let fullname = info.get_fullname().to_string();
        daemon.register(info)?;
        log::info!("wyoming: announced as {fullname} on port {}", addr.port());
        Ok(Announcement { daemon, fullname })
    }

    /// Says goodbye (so browsers drop us at once), then stops the responder's thread.
    pub fn stop(self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(GOODBYE_WAIT);
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(GOODBYE_WAIT);
        }
    }
}

/// A DNS label from a device id: letters, digits and `-`, at most 63 bytes.
fn host_label(device_id: &str) -> String {
    let label: String = device_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    if label.trim_matches('-').is_empty() {
        "edgescribe".into()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_labels_are_dns_safe() {
        assert_eq!(super::host_label("kitchen_pi"), "kitchen-pi");
        assert_eq!(super::host_label("__"), "edgescribe");
        assert_eq!(super::host_label(&"x".repeat(100)).len(), 63);
    }
}
