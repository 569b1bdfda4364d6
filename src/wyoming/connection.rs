//! One connection: events in, replies out, as Home Assistant's Wyoming client drives it
//! (`describe` → `info`; `transcribe` → `audio-start` → `audio-chunk`… → `audio-stop` →
//! `transcript`). Framing errors close the connection after an `error`; a bad request gets an
//! `error` and the connection stays usable. Every wait has a deadline.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit};
use tokio::time::Instant as TokioInstant;

use super::codec::{encode, Decoder, Event, Limits};
use super::languages::LanguageMap;
use super::messages::{error, info, truncate};
use super::request::Request;
use super::server::{Counters, Stopping};
use super::worker::{Job, Jobs};
use super::{Backend, WyomingConfig};
use crate::service::{LogLimit, Verdict};

/// What every connection shares.
pub struct Context {
    pub config: WyomingConfig,
    pub backend: Arc<dyn Backend>,
    pub jobs: Jobs,
    pub counters: Arc<Counters>,
    pub stopping: watch::Receiver<Stopping>,
    /// Clients' mistakes are logged, but a flood of them must not flood the journal.
    pub complaints: Mutex<LogLimit>,
}

/// Why a connection ends.
enum Close {
    /// The peer closed between events, or a refused request ended (its `error` was sent).
    Done,
    /// Said with an `error` event (if the socket still takes it), then closed: framing errors,
    /// timeouts, and a request that failed (see `audio-stop`).
    Error { text: String, code: &'static str },
    /// The socket failed: nothing more can be said.
    Gone,
}

struct Conn {
    stream: TcpStream,
    decoder: Decoder,
    buf: Vec<u8>,
    context: Arc<Context>,
    /// When the event being received began to arrive.
    event_started: Instant,
    request: Option<Request>,
}

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    context: Arc<Context>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        decoder: Decoder::new(Limits::default()),
        buf: vec![0; 16 * 1024],
        context,
        event_started: Instant::now(),
        request: None,
    };
    let close = conn.run().await;
    if let Close::Error { text, code } = close {
        // Only the client's mistakes are worth a warning; a full queue or a stop are counted.
        if matches!(code, "bad_event" | "bad_request" | "timeout") {
            conn.complain(peer, &text);
        }
        let _ = conn.send(error(&text, code)).await;
    }
}

impl Conn {
    async fn run(&mut self) -> Close {
        loop {
            let event = match self.next_event().await {
                Ok(Some(e)) => e,
                Ok(None) => return Close::Done,
                Err(close) => return close,
            };
            let reply = match self.handle(event).await {
                Ok(reply) => reply,
                Err(close) => return close,
            };
            if let Some(reply) = reply {
                if self.send(reply).await.is_err() {
                    return Close::Gone;
                }
            }
        }
    }

    fn counters(&self) -> &Counters {
        &self.context.counters
    }

    fn complain(&self, peer: SocketAddr, text: &str) {
        let verdict = self
            .context
            .complaints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(Instant::now());
        if let Verdict::Log { suppressed } = verdict {
            log::warn!("wyoming: {peer}: {text} ({suppressed} similar not logged)");
        }
    }

    async fn send(&mut self, event: Event) -> Result<(), ()> {
        let bytes = encode(&event);
        match tokio::time::timeout(
            self.context.config.event_timeout(),
            self.stream.write_all(&bytes),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(()),
            Err(_) => {
                self.counters().timeouts.fetch_add(1, Ordering::Relaxed);
                Err(())
            }
        }
    }

    /// The next whole event; `Ok(None)`: the peer closed cleanly between events.
    async fn next_event(&mut self) -> Result<Option<Event>, Close> {
        let config = &self.context.config;
        loop {
            match self.decoder.next_event() {
                Ok(Some(event)) => {
                    self.event_started = Instant::now();
                    return Ok(Some(event));
                }
                Ok(None) => {}
                Err(e) => {
                    self.counters()
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Close::Error {
                        text: format!("malformed event: {e}"),
                        code: "bad_event",
                    });
                }
            }
            let now = Instant::now();
            let mid_event = self.decoder.is_mid_event();
            // The earliest of: the event's own deadline (a slow client), the request's, idling.
            let (mut deadline, mut what) = if mid_event {
                (
                    self.event_started + config.event_timeout(),
                    "event_timeout_s",
                )
            } else {
                (now + config.idle_timeout(), "idle_timeout_s")
            };
            if let Some(r) = &self.request {
                if r.deadline < deadline {
                    (deadline, what) = (r.deadline, "request_timeout_s");
                }
            }
            let stopping = *self.context.stopping.borrow();
            if let Some(stop_at) = stopping {
                // Stopping: a connection between requests goes now; a request being sent may
                // finish until the drain deadline.
                if self.request.is_none() && !mid_event {
                    // What the client sent before the stop is still served: only a connection
                    // with nothing waiting to be read is told to go.
                    match self.stream.try_read(&mut self.buf) {
                        Ok(n) if n > 0 => {
                            self.event_started = Instant::now();
                            self.decoder.feed(&self.buf[..n]);
                            continue;
                        }
                        _ => return Err(stopping_error()),
                    }
                }
                let stop_at = stop_at.into_std();
                if stop_at < deadline {
                    deadline = stop_at;
                    what = "stopping";
                }
            }
            let mut stop_watch = self.context.stopping.clone();
            let read = tokio::select! {
                read = tokio::time::timeout_at(TokioInstant::from_std(deadline), self.stream.read(&mut self.buf)) => read,
                changed = stop_watch.changed(), if stopping.is_none() => match changed {
                    Ok(()) => continue,
                    Err(_) => return Err(stopping_error()),
                },
            };
            match read {
                Err(_) if what == "stopping" => return Err(stopping_error()),
                Err(_) => {
                    self.counters().timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(Close::Error {
                        text: format!("timed out (wyoming.{what})"),
                        code: "timeout",
                    });
                }
                Ok(Ok(0)) if mid_event => {
                    self.counters()
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Close::Gone);
                }
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(n)) => {
                    if !mid_event {
                        self.event_started = Instant::now();
                    }
                    self.decoder.feed(&self.buf[..n]);
                }
                Ok(Err(_)) => return Err(Close::Gone),
            }
        }
    }

    /// One event's reply, if it has one. `Err`: close the connection.
    async fn handle(&mut self, event: Event) -> Result<Option<Event>, Close> {
        let context = self.context.clone();
        let counters = &context.counters;
        let bad = |text: String| {
            counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
            Ok(Some(error(&text, "bad_request")))
        };
        match event.kind.as_str() {
            "describe" => Ok(Some(info(context.backend.as_ref()))),
            "ping" => Ok(Some(Event::new(
                "pong",
                json!({ "text": event.data.get("text").cloned().unwrap_or(Value::Null) }),
            ))),
            "transcribe" => {
                let asked = event.data.get("language").and_then(Value::as_str);
                Ok(self.begin(asked).err())
            }
            "audio-start" => {
                if self.request.is_none() {
                    // A client may skip `transcribe`: the default language then.
                    if let Err(reply) = self.begin(None) {
                        return Ok(Some(reply));
                    }
                }
                let max_s = context.config.max_audio_s;
                Ok(self
                    .request
                    .as_mut()
                    .and_then(|r| r.audio_start(&event.data, max_s, counters)))
            }
            // Stray chunks (no request) are dropped, as Wyoming servers drop what they do not expect.
            "audio-chunk" => Ok(self
                .request
                .as_mut()
                .and_then(|r| r.audio_chunk(&event.data, &event.payload, counters))),
            "audio-stop" => match self.request.take() {
                None => Ok(None),
                Some(r) => {
                    let (lang, asked, started_at) = (r.lang.clone(), r.asked.clone(), r.started_at);
                    match r.audio_stop(counters) {
                        Ok(samples) => self
                            .recognise(lang, asked, samples, started_at)
                            .await
                            .map(Some),
                        // A failed request ends its connection once its audio is in: Home
                        // Assistant reads until a `transcript` and ignores `error`, so only a
                        // closed connection tells it at once (and it opens one per request).
                        Err(None) => Err(Close::Done),
                        Err(Some(reply)) => Err(Close::Error {
                            text: reply.data["text"].as_str().unwrap_or_default().to_string(),
                            code: "bad_request",
                        }),
                    }
                }
            },
            // Events of other services, or newer ones, are answered (the framing is intact, so
            // the connection stays usable) and otherwise ignored.
            other => bad(format!("unsupported event {:?}", truncate(other))),
        }
    }

    /// Starts a request in `asked` (or the default language). `Err`: the `error` to send.
    fn begin(&mut self, asked: Option<&str>) -> Result<(), Event> {
        let (loaded, default) = self.context.backend.languages();
        let map = LanguageMap::new(loaded.iter().map(String::as_str));
        let (lang, asked) = match asked {
            None => (default.clone(), map.primary(&default)),
            Some(asked) => match map.resolve(asked) {
                Some(lang) => (lang.to_string(), asked.to_string()),
                None => {
                    self.counters()
                        .unknown_language
                        .fetch_add(1, Ordering::Relaxed);
                    // Later chunks of this request are dropped quietly.
                    self.request = Some(Request::refused(
                        Instant::now() + self.context.config.request_timeout(),
                    ));
                    return Err(error(
                        &format!(
                            "language {:?} is not configured here; configured: {}",
                            truncate(asked),
                            map.advertised().join(", ")
                        ),
                        "unsupported_language",
                    ));
                }
            },
        };
        self.request = Some(Request::new(
            lang,
            asked,
            Instant::now() + self.context.config.request_timeout(),
        ));
        Ok(())
    }

    /// Queues the audio for the recogniser and waits for its text (or the stop deadline).
    async fn recognise(
        &mut self,
        lang: String,
        asked: String,
        samples: Vec<f32>,
        started_at: SystemTime,
    ) -> Result<Event, Close> {
        let (reply, mut text) = oneshot::channel();
        let job = Job {
            lang,
            samples,
            started_at,
            reply,
        };
        if self.context.jobs.submit(job).is_err() {
            return Err(Close::Error {
                text: format!(
                    "recogniser busy: {} requests waiting (wyoming.queue_requests)",
                    self.context.config.queue_requests
                ),
                code: "busy",
            });
        }
        let mut stopping = self.context.stopping.clone();
        // A recogniser that never answers (hung) must not hold the connection for ever.
        let give_up = tokio::time::Instant::now() + self.context.config.request_timeout();
        let result = loop {
            let stop_at = *stopping.borrow_and_update();
            let stop = async {
                match stop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => {
                        if stopping.changed().await.is_err() {
                            // The server is gone without a deadline: only the reply can end this.
                            std::future::pending::<()>().await;
                        }
                    }
                }
            };
            tokio::select! {
                r = &mut text => break r,
                _ = stop => if stop_at.is_some() { return Err(stopping_error()) },
                _ = tokio::time::sleep_until(give_up) => {
                    self.counters().timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(Close::Error {
                        text: "no transcript within wyoming.request_timeout_s".into(),
                        code: "timeout",
                    });
                }
            }
        };
        match result {
            Ok(Ok(text)) => {
                self.counters().transcripts.fetch_add(1, Ordering::Relaxed);
                Ok(Event::new(
                    "transcript",
                    json!({ "text": text, "language": asked }),
                ))
            }
            Ok(Err(e)) => Err(Close::Error {
                text: format!("recogniser failed: {e}"),
                code: "asr_failed",
            }),
            Err(_) => Err(stopping_error()),
        }
    }
}

fn stopping_error() -> Close {
    Close::Error {
        text: "server stopping".into(),
        code: "stopping",
    }
}
