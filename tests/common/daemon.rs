//! The daemon as a child process (`edgescribe run`), its log collected line by line so tests can
//! wait for what it says instead of sleeping, and a `NOTIFY_SOCKET` listener standing in for systemd.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Lines = Arc<(Mutex<Vec<String>>, Condvar)>;

fn collect(lines: &Lines, line: String) {
    let (v, cv) = &**lines;
    v.lock().unwrap().push(line);
    cv.notify_all();
}

fn wait_for(lines: &Lines, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let (v, cv) = &**lines;
    let mut guard = v.lock().unwrap();
    loop {
        if let Some(l) = guard.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
    }
}

pub struct Daemon {
    child: Child,
    log: Lines,
}

impl Daemon {
    /// Starts `edgescribe run ARGS` with `env` added; stderr is collected.
    pub fn start(args: &[String], env: &[(&str, String)]) -> Daemon {
        Daemon::start_subcommand("run", args, env)
    }

    /// [`Daemon::start`] with another subcommand that runs the daemon (`serve`).
    pub fn start_subcommand(subcommand: &str, args: &[String], env: &[(&str, String)]) -> Daemon {
        let mut cmd = super::edgescribe_command();
        cmd.arg(subcommand)
            .args(args)
            .env("RUST_LOG", "warn,edgescribe=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log: Lines = Arc::default();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                collect(&sink, line);
            }
            collect(&sink, "<exited>".into());
        });
        Daemon { child, log }
    }

    /// Waits for a log line containing `needle`; panics with the log if it does not come.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        match wait_for(
            &self.log,
            |l| l.contains(needle) || l == "<exited>",
            timeout,
        ) {
            Some(l) if l != "<exited>" => l,
            _ => panic!(
                "daemon never logged {needle:?}; log:\n{}",
                self.log().join("\n")
            ),
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits until `n` log lines contain `needle`.
    pub fn wait_log_count(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (v, cv) = &*self.log;
        let mut guard = v.lock().unwrap();
        loop {
            if guard.iter().filter(|l| l.contains(needle)).count() >= n {
                return;
            }
            let now = Instant::now();
            if now >= deadline || guard.iter().any(|l| l == "<exited>") {
                drop(guard);
                panic!(
                    "{needle:?} not logged {n} times; log:\n{}",
                    self.log().join("\n")
                );
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; panics with its log if it does not in time (dropping the
    /// `Daemon` as the panic unwinds kills it).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let (child, log) = (&mut self.child, &self.log);
        let status = super::eventually("the daemon to exit", timeout, || {
            child.try_wait().unwrap().ok_or(LogDump(log))
        });
        // Let the reader thread take the last lines.
        wait_for(&self.log, |l| l == "<exited>", Duration::from_secs(5));
        status
    }
}

/// A daemon's log as `eventually` shows it when the daemon did not do what was awaited.
struct LogDump<'a>(&'a Lines);

impl std::fmt::Debug for LogDump<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "its log:\n{}", self.0 .0.lock().unwrap().join("\n"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `NOTIFY_SOCKET` as systemd provides it: every datagram received, in order.
pub struct NotifySocket {
    pub path: PathBuf,
    messages: Lines,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        let messages: Lines = Arc::default();
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                collect(&sink, String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        NotifySocket { path, messages }
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.0.lock().unwrap().clone()
    }

    pub fn wait(&self, needle: &str, timeout: Duration) -> String {
        wait_for(&self.messages, |m| m.contains(needle), timeout)
            .unwrap_or_else(|| panic!("no {needle:?} notification; got {:?}", self.messages()))
    }
}

/// Writes a 16 kHz mono 16-bit WAV.
pub fn write_wav(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    samples.iter().for_each(|s| w.write_sample(*s).unwrap());
    w.finalize().unwrap();
}

pub fn read_wav(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path)
        .unwrap()
        .into_samples()
        .map(|s| s.unwrap())
        .collect()
}

/// Quiet room noise (about -70 dBFS), deterministic.
pub fn quiet(n: usize, seed: u32) -> Vec<i16> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 16) % 21) as i16 - 10
        })
        .collect()
}

/// An ALSA PCM `es_mic` whose samples come from `fifo` (16 kHz mono S16), and the
/// `ALSA_CONFIG_PATH` value that makes it visible.
pub fn alsa_fifo_device(dir: &Path, fifo: &Path) -> String {
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            r#"
pcm.es_mic {{
    type plug
    slave {{ pcm "es_fifo"; format S16_LE; rate 16000; channels 1 }}
}}
pcm.es_fifo {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{}"
    format "raw"
}}
"#,
            fifo.display()
        ),
    )
    .unwrap();
    format!("/usr/share/alsa/alsa.conf:{}", conf.display())
}

/// Feeds the FIFO like a microphone: 20 ms blocks (one capture period, so no read is ever short),
/// at 4× real time. Writes `first`, then waits for the go-ahead, then writes quiet until `stop`.
/// Returns a receiver that gets `()` once `first` is written.
pub fn microphone(
    fifo: &Path,
    first: Vec<i16>,
    go: mpsc::Receiver<()>,
    stop: Arc<AtomicBool>,
) -> mpsc::Receiver<()> {
    let (written_tx, written) = mpsc::channel();
    // Read+write: opening does not wait for the daemon, and the FIFO never sees end-of-file.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
        .unwrap();
    std::thread::spawn(move || {
        let mut write = |block: &[i16]| {
            let bytes: Vec<u8> = block.iter().flat_map(|s| s.to_le_bytes()).collect();
            f.write_all(&bytes).is_ok()
        };
        for block in first.chunks(320) {
            if stop.load(Ordering::SeqCst) || !write(block) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = written_tx.send(());
        if go.recv().is_err() {
            return;
        }
        let silence = quiet(320, 99);
        while !stop.load(Ordering::SeqCst) && write(&silence) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    written
}

pub fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// One 16 kHz mono WAV sent to the daemon's `--input` FIFO in parts, so that a test can wait for
/// what the daemon makes of one part (and change something) before it writes the next. The header
/// states the whole length. Dropping it closes the FIFO: the end of the input.
pub struct WavFifo {
    file: std::fs::File,
    bytes: Vec<u8>,
    /// Where the samples start in `bytes`.
    data: usize,
    written: usize,
}

impl WavFifo {
    /// Opens `fifo` write-only (the open waits for the daemon's reader) to send `samples`.
    pub fn open(fifo: &Path, samples: &[i16]) -> WavFifo {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        samples.iter().for_each(|s| w.write_sample(*s).unwrap());
        w.finalize().unwrap();
        let bytes = cursor.into_inner();
        let data = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
        let file = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
        WavFifo {
            file,
            bytes,
            data,
            written: 0,
        }
    }

    /// Writes the header if not yet written, and the samples up to `end_sample` (exclusive).
    pub fn write_until(&mut self, end_sample: usize) {
        let end = (self.data + end_sample * 2).min(self.bytes.len());
        if end > self.written {
            self.file.write_all(&self.bytes[self.written..end]).unwrap();
            self.written = end;
        }
    }
}
