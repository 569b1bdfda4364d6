//! A real Mosquitto broker for the MQTT tests: its own config in a scratch directory, a loopback
//! port chosen at run time, readiness taken from its log (never a sleep).
//!
//! Mosquitto drops to user `mosquitto` when started as root, so the directory and files are made
//! world-readable (and the persistence directory world-writable).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Extra listener settings.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// (CA, server certificate, server key) PEM files: the listener speaks TLS.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// (user, password): anonymous clients are refused.
    pub user: Option<(String, String)>,
    /// More lines of broker configuration (`max_packet_size 4000`, …).
    pub extra: String,
}

pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Mosquitto {
    /// Starts a broker in `dir` (created, made world-readable) and waits until it runs.
    pub fn start(dir: &Path, options: BrokerOptions) -> Mosquitto {
        std::fs::create_dir_all(dir).unwrap();
        chmod(dir, 0o755);
        let db = dir.join("db");
        std::fs::create_dir_all(&db).unwrap();
        chmod(&db, 0o777);
        let mut conf = String::new();
        conf += "log_dest stderr\n";
        conf += "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n";
        conf += "connection_messages true\n";
        // Persistence: subscribers' sessions (and their queued QoS 1 messages) survive a
        // broker restart, as on a real installation.
        conf += &format!("persistence true\npersistence_location {}/\n", db.display());
        conf += "autosave_interval 0\n";
        conf += "per_listener_settings false\n";
        conf += &options.extra;
        if let Some((user, password)) = &options.user {
            let pw = dir.join("passwd");
            let status = Command::new("mosquitto_passwd")
                .args(["-b", "-c"])
                .arg(&pw)
                .args([user, password])
                .status()
                .unwrap();
            assert!(status.success(), "mosquitto_passwd failed");
            chmod(&pw, 0o644);
            conf += &format!("allow_anonymous false\npassword_file {}\n", pw.display());
        } else {
            conf += "allow_anonymous true\n";
        }
        let mut tls = String::new();
        if let Some((ca, cert, key)) = &options.tls {
            for f in [ca, cert, key] {
                chmod(f, 0o644);
            }
            tls = format!(
                "cafile {}\ncertfile {}\nkeyfile {}\n",
                ca.display(),
                cert.display(),
                key.display()
            );
        }
        let conf_path = dir.join("mosquitto.conf");
        let mut broker = Mosquitto {
            port: 0,
            dir: dir.to_path_buf(),
            child: None,
            log: Arc::new((Mutex::new(Vec::new()), Condvar::new())),
        };
        // The port is free when picked but another process could take it before mosquitto
        // binds it: try a few.
        for _ in 0..5 {
            broker.port = free_port();
            let full = format!("{conf}listener {} 127.0.0.1\n{tls}", broker.port);
            std::fs::write(&conf_path, full).unwrap();
            chmod(&conf_path, 0o644);
            if broker.spawn() {
                return broker;
            }
        }
        panic!("mosquitto did not start; log:\n{}", broker.log().join("\n"));
    }

    /// Starts the process and waits for "running" (true) or its exit (false).
    fn spawn(&mut self) -> bool {
        let already = self.log().len();
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto not installed (Debian package `mosquitto`)");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let (lines, cv) = &*log;
                lines.lock().unwrap().push(line);
                cv.notify_all();
            }
            // EOF: the process exited.
            let (lines, cv) = &*log;
            lines.lock().unwrap().push("<exited>".into());
            cv.notify_all();
        });
        self.child = Some(child);
        let ok = self.wait_log_after(already, |l| l.contains(" running"), Duration::from_secs(10));
        let exited = self.log()[already..].iter().any(|l| l == "<exited>");
        if !ok || exited {
            self.kill();
            return false;
        }
        true
    }

    /// Waits for a log line (after the first `skip` lines) matching `pred`.
    fn wait_log_after(&self, skip: usize, pred: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lines, cv) = &*self.log;
        let mut guard = lines.lock().unwrap();
        loop {
            if guard.iter().skip(skip).any(|l| pred(l) || l == "<exited>") {
                return guard.iter().skip(skip).any(|l| pred(l));
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// Log lines so far containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// Stops the broker as `systemctl stop` would (SIGTERM; it saves its database) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same configuration.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            // The old socket may linger for a moment after exit.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mosquitto did not restart; log:\n{}", self.log().join("\n"));
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
