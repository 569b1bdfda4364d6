//! systemd's `sd_notify` protocol: datagrams of `KEY=value` lines to `$NOTIFY_SOCKET`.
//!
//! Implemented here (a dozen lines over a Unix datagram socket) rather than through libsystemd:
//! nothing to link, nothing to cross-compile. Outside systemd (`NOTIFY_SOCKET` unset) every call is
//! a no-op, so the daemon runs the same from a shell.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends state changes to the service manager. Errors are logged once and otherwise ignored: a
/// notification lost must not stop transcription (systemd's timeouts then act on it).
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    warned: bool,
}

/// `@name` is a Linux abstract socket, anything else a path.
fn address(socket: &str) -> std::io::Result<SocketAddr> {
    match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(socket),
    }
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a no-op notifier when it is unset.
    pub fn from_env() -> Notifier {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|s| match (UnixDatagram::unbound(), address(&s)) {
                (Ok(sock), Ok(addr)) => Some((sock, addr)),
                (Err(e), _) | (_, Err(e)) => {
                    log::warn!("NOTIFY_SOCKET={s}: {e}; systemd will not hear from us");
                    None
                }
            });
        Notifier {
            target,
            warned: false,
        }
    }

    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=value` assignments).
    pub fn send(&mut self, state: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            if !self.warned {
                log::warn!("sd_notify: {e} (further failures not logged)");
                self.warned = true;
            }
        }
    }

    pub fn ready(&mut self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&mut self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    pub fn reloading(&mut self) {
        self.send("RELOADING=1\nSTATUS=reloading the configuration");
    }

    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping: finishing the utterances in flight");
    }

    pub fn watchdog(&mut self) {
        self.send("WATCHDOG=1");
    }
}

/// A STATUS value is one line; a newline would start a new assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// systemd's watchdog settings: how often to ping, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    /// Ping interval: half of `WatchdogSec`, as sd_watchdog_enabled(3) recommends.
    pub ping_every: Duration,
}

impl Watchdog {
    pub fn from_env() -> Option<Watchdog> {
        Watchdog::parse(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        )
    }

    /// `WATCHDOG_PID`, when set, must be ours (a child inheriting the environment must not ping).
    pub fn parse(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Watchdog> {
        let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
        if let Some(pid) = pid {
            if pid.trim().parse::<u32>().ok()? != own_pid {
                return None;
            }
        }
        Some(Watchdog {
            ping_every: Duration::from_micros(usec / 2),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_from_environment_values() {
        let w = |u, p| Watchdog::parse(u, p, 42);
        assert_eq!(
            w(Some("10000000"), None),
            Some(Watchdog {
                ping_every: Duration::from_secs(5)
            })
        );
        assert!(w(Some("10000000"), Some("42")).is_some());
        assert_eq!(w(Some("10000000"), Some("43")), None);
        assert_eq!(w(Some("0"), None), None);
        assert_eq!(w(Some("x"), None), None);
        assert_eq!(w(None, Some("42")), None);
    }

    #[test]
    fn notifications_reach_a_socket_path_and_an_abstract_one() {
        let dir = std::env::temp_dir().join(format!("es-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                address(path.to_str().unwrap()).unwrap(),
            )),
            warned: false,
        };
        n.ready("listening\non alsa:default");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..len]).unwrap(),
            "READY=1\nSTATUS=listening on alsa:default"
        );

        let name = format!("@edgescribe-test-{}", std::process::id());
        let abs = UnixDatagram::bind_addr(&address(&name).unwrap()).unwrap();
        let mut n = Notifier {
            target: Some((UnixDatagram::unbound().unwrap(), address(&name).unwrap())),
            warned: false,
        };
        n.watchdog();
        let len = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        let mut n = Notifier {
            target: None,
            warned: false,
        };
        assert!(!n.is_active());
        n.stopping();
    }
}
