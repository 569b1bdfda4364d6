//! The listener: one thread, `wyoming`, running a single-threaded tokio runtime; each connection is
//! a task (the work per connection is tiny next to a recogniser run). Connections beyond
//! `max_connections` are answered with an `error` and closed (counted). Stopping is bounded: the
//! listener closes, idle connections get `error` `stopping`, requests in flight finish or get it by
//! the deadline the daemon gives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::codec::{encode, Event};
use super::connection::{self, Context};
use super::zeroconf::Announcement;
use super::{worker, Backend, WyomingConfig};
use crate::service::{LogLimit, Verdict};

/// What the server counts, for `…/stats` (as [`WyomingStats`]). Every bound's overflow has its
/// counter.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused: `max_connections` were open.
    pub refused: AtomicU64,
    /// Transcripts sent.
    pub transcripts: AtomicU64,
    /// Requests refused because `queue_requests` were waiting for the recogniser.
    pub busy: AtomicU64,
    /// Requests over `max_audio_s`.
    pub too_long: AtomicU64,
    /// Requests for a language not configured here.
    pub unknown_language: AtomicU64,
    /// Malformed or truncated events, bad audio formats, events out of order.
    pub protocol_errors: AtomicU64,
    /// Connections closed for `idle_timeout_s`, `event_timeout_s` or `request_timeout_s`.
    pub timeouts: AtomicU64,
    /// Requests whose client left before the recogniser reached them (skipped).
    pub abandoned: AtomicU64,
    /// Recogniser failures.
    pub failures: AtomicU64,
}

/// [`Counters`] at one moment (each field as documented there): `wyoming` in `…/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WyomingStats {
    pub connections: u64,
    pub refused: u64,
    pub transcripts: u64,
    pub busy: u64,
    pub too_long: u64,
    pub unknown_language: u64,
    pub protocol_errors: u64,
    pub timeouts: u64,
    pub abandoned: u64,
    pub failures: u64,
}

impl Counters {
    pub fn snapshot(&self) -> WyomingStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WyomingStats {
            connections: get(&self.connections),
            refused: get(&self.refused),
            transcripts: get(&self.transcripts),
            busy: get(&self.busy),
            too_long: get(&self.too_long),
            unknown_language: get(&self.unknown_language),
            protocol_errors: get(&self.protocol_errors),
            timeouts: get(&self.timeouts),
            abandoned: get(&self.abandoned),
            failures: get(&self.failures),
        }
    }
}

/// `None` while serving; the drain deadline once stopping.
pub type Stopping = Option<tokio::time::Instant>;

pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<Stopping>,
    /// Disconnected when the `wyoming` thread ends.
    finished: mpsc::Receiver<()>,
    counters: Arc<Counters>,
    announcement: Option<Announcement>,
}

impl Server {
    /// Binds (an error here is a start-up error: a port in use, an address not on this host),
    /// starts the recogniser queue and the listener, and announces the server if configured.
    pub fn start(
        config: &WyomingConfig,
        addr: SocketAddr,
        backend: Arc<dyn Backend>,
        device_id: &str,
    ) -> anyhow::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("wyoming.listen {addr}: {e}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let jobs = worker::spawn(backend.clone(), config.queue_requests, counters.clone())?;
        let (stop, stopping) = watch::channel(None);
        let context = Arc::new(Context {
            config: config.clone(),
            backend,
            jobs,
            counters: counters.clone(),
            stopping,
            complaints: Mutex::new(LogLimit::new(10, Duration::from_secs(60))),
        });
        let (done, finished) = mpsc::channel::<()>();
        let max_connections = config.max_connections;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        std::thread::Builder::new()
            .name("wyoming".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => accept(listener, context, max_connections).await,
                        Err(e) => log::error!("wyoming: cannot serve {addr}: {e}"),
                    }
                });
                drop(done);
            })?;
        log::info!("wyoming: listening on {addr}");
        let announcement = if config.zeroconf {
            match Announcement::start(device_id, addr) {
                Ok(a) => Some(a),
                // Discovery is a convenience: the server works without it (add it by host:port).
                Err(e) => {
                    log::warn!("wyoming: zeroconf announcement failed: {e}");
                    None
                }
            }
        } else {
            None
        };
        Ok(Server {
            addr,
            stop,
            finished,
            counters,
            announcement,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Stops taking connections and withdraws the announcement; requests in flight have until
    /// `deadline`. Returns at once: [`Server::wait`] waits.
    pub fn begin_stop(&mut self, deadline: Instant) {
        if let Some(a) = self.announcement.take() {
            a.stop();
        }
        let at = tokio::time::Instant::from_std(deadline);
        self.stop.send_replace(Some(at));
    }

    /// Waits for the connections to finish, at most until `deadline` (plus a second for the
    /// last `error` events to be written). `false`: some were still open.
    pub fn wait(&self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        !matches!(
            self.finished.recv_timeout(left),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    }
}

async fn accept(listener: tokio::net::TcpListener, context: Arc<Context>, max_connections: usize) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut tasks = JoinSet::new();
    let mut stopping = context.stopping.clone();
    let mut accept_errors = LogLimit::new(10, Duration::from_secs(60));
    let deadline = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        context.counters.connections.fetch_add(1, Ordering::Relaxed);
                        tasks.spawn(connection::serve(stream, peer, context.clone(), permit));
                    }
                    Err(_) => {
                        context.counters.refused.fetch_add(1, Ordering::Relaxed);
                        refuse(&stream, max_connections);
                    }
                },
                Err(e) => {
                    // Out of file descriptors, typically: wait a little rather than spin.
                    if let Verdict::Log { suppressed } = accept_errors.check(Instant::now()) {
                        log::warn!("wyoming: accept failed: {e} ({suppressed} more not logged)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            changed = stopping.changed() => {
                let deadline = *stopping.borrow();
                match (changed, deadline) {
                    (Ok(()), Some(deadline)) => break deadline,
                    (Ok(()), None) => {}
                    // The server value is gone: stop now.
                    (Err(_), _) => break tokio::time::Instant::now(),
                }
            }
        }
    };
    drop(listener);
    let drained = tokio::time::timeout_at(deadline + Duration::from_millis(500), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        log::warn!(
            "wyoming: {} connection(s) still open at the stop deadline: closed",
            tasks.len()
        );
        tasks.abort_all();
    }
}

/// One `error` written without waiting (a fresh socket's buffer takes it), then the socket closes:
/// a flood of connections costs no task each.
fn refuse(stream: &tokio::net::TcpStream, max: usize) {
    let event = Event::new(
        "error",
        serde_json::json!({
            "text": format!("too many connections (wyoming.max_connections = {max})"),
            "code": "busy",
        }),
    );
    let _ = stream.try_write(&encode(&event));
}
