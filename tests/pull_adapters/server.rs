//! A real HTTP/1.1 file server on a loopback port chosen at run time, with a request log, `Range`
//! support and injectable faults: just enough of a hub mirror to test the puller against.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to do to one response instead of serving it straight.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Announce the full length, send this many body bytes, then drop the connection.
    CutAfter(usize),
    /// Serve the body with one byte flipped.
    Corrupt,
    /// Answer with this status and no body.
    Status(u16),
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    files: HashMap<String, Vec<u8>>,
    log: Vec<Logged>,
    once: HashMap<String, VecDeque<Fault>>,
    always: HashMap<String, Fault>,
    ignore_range: bool,
}

pub struct Server {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves every file of `dir` as `/files/<name>`; `/moved/<name>` redirects there (as the hub
    /// redirects to its CDN).
    pub fn serving(dir: &Path) -> Server {
        let mut shared = Shared::default();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                let name = entry.file_name().to_string_lossy().to_string();
                shared
                    .files
                    .insert(name, std::fs::read(entry.path()).unwrap());
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(shared));
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let shared = shared.clone();
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name("test-http-accept".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let shared = shared.clone();
                        std::thread::spawn(move || handle(stream, &shared));
                    }
                })
                .unwrap()
        };
        Server {
            addr,
            shared,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    /// `--source` template for the files, directly or through the redirect.
    pub fn template(&self) -> String {
        format!("http://{}/files/adapter.{{lang}}.safetensors", self.addr)
    }

    pub fn redirected_template(&self) -> String {
        format!("http://{}/moved/adapter.{{lang}}.safetensors", self.addr)
    }

    pub fn once(&self, file: &str, fault: Fault) {
        let mut s = self.shared.lock().unwrap();
        s.once.entry(file.into()).or_default().push_back(fault);
    }

    pub fn always(&self, file: &str, fault: Fault) {
        self.shared
            .lock()
            .unwrap()
            .always
            .insert(file.into(), fault);
    }

    /// Ends an [`Server::always`] fault: the file is served normally again.
    pub fn heal(&self, file: &str) {
        self.shared.lock().unwrap().always.remove(file);
    }

    pub fn ignore_range(&self) {
        self.shared.lock().unwrap().ignore_range = true;
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.shared.lock().unwrap().log.clone()
    }

    /// Paths requested, in order.
    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    /// Stops listening: from now on connections are refused, as with a server that is down.
    pub fn stop(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            self.stopping.store(true, Ordering::SeqCst);
            // Wakes the blocking accept so the thread sees the flag and drops the listener.
            let _ = TcpStream::connect(self.addr);
            acceptor.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn handle(stream: TcpStream, shared: &Mutex<Shared>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }

    let (file, fault, ignore_range) = {
        let mut s = shared.lock().unwrap();
        s.log.push(Logged {
            path: path.clone(),
            range: range.clone(),
            at: Instant::now(),
        });
        let name = path.rsplit('/').next().unwrap_or("").to_string();
        // A redirect is not the file's response: faults wait for the request it leads to.
        let fault = match s
            .once
            .get_mut(&name)
            .filter(|_| !path.starts_with("/moved/"))
            .and_then(VecDeque::pop_front)
        {
            Some(f) => Some(f),
            None => s.always.get(&name).cloned(),
        };
        (s.files.get(&name).cloned(), fault, s.ignore_range)
    };
    let mut out = stream;
    if let Some(name) = path.strip_prefix("/moved/") {
        let _ = write!(
            out,
            "HTTP/1.1 302 Found\r\nLocation: /files/{name}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    if let Some(Fault::Status(code)) = fault {
        let _ = write!(
            out,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    let Some(data) = file.filter(|_| path.starts_with("/files/")) else {
        let _ = write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    };
    let from = range.filter(|_| !ignore_range).and_then(|r| {
        r.strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse::<usize>()
            .ok()
    });
    let (status, mut body, extra) = match from {
        Some(from) if from >= data.len() => {
            let _ = write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                data.len()
            );
            return;
        }
        Some(from) => (
            "206 Partial Content",
            data[from..].to_vec(),
            format!(
                "Content-Range: bytes {from}-{}/{}\r\n",
                data.len() - 1,
                data.len()
            ),
        ),
        None => ("200 OK", data, String::new()),
    };
    if fault == Some(Fault::Corrupt) {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let send = match fault {
        Some(Fault::CutAfter(n)) => &body[..n.min(body.len())],
        _ => &body[..],
    };
    let _ = out.write_all(send);
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Both);
}
