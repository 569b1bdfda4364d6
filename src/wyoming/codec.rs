//! The Wyoming framing, without I/O: bytes in, events out (and events to bytes).
//!
//! An event is one line of UTF-8 JSON, `{"type": …, "data": {…}?, "data_length": N?,
//! "payload_length": M?}\n`, then exactly N bytes of JSON (merged into `data`) and exactly M bytes
//! of payload, with no newline after either. Only the header is a line: the rest is read by length,
//! never up to a newline (a payload is PCM and may hold any byte). Every part is bounded, so a
//! peer can make the decoder hold at most [`Limits`] plus one read, whatever it sends.

use serde_json::{Map, Value};

/// The protocol version written in our headers: the `wyoming` release this server is tested with.
pub const PROTOCOL_VERSION: &str = "1.10.2";

/// One event: its type, its data (the header's `data` merged with the data bytes), its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn new(kind: &str, data: Value) -> Event {
        Event {
            kind: kind.to_string(),
            data: match data {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            payload: Vec::new(),
        }
    }
}

/// The most a peer may make us buffer for one part of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The header line, newline included.
    pub header_bytes: usize,
    pub data_bytes: usize,
    pub payload_bytes: usize,
}

impl Default for Limits {
    /// Headers are ~100 bytes; a `transcribe`'s data with long `transcript_names` a few kB; an
    /// audio chunk ~2 kB (Home Assistant sends 1024 16-bit samples): ample, and small per connection.
    fn default() -> Self {
        Limits {
            header_bytes: 64 * 1024,
            data_bytes: 1024 * 1024,
            payload_bytes: 1024 * 1024,
        }
    }
}

/// Why the byte stream cannot be read as events. The framing is lost: answer and close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("header line longer than {0} bytes")]
    HeaderTooLong(usize),
    #[error("header is not a JSON object: {0}")]
    BadHeader(String),
    #[error("header has no string \"type\"")]
    NoType,
    #[error("\"{0}\" is not a non-negative integer")]
    BadLength(&'static str),
    #[error("{what} of {len} bytes is over the limit of {limit}")]
    TooLong {
        what: &'static str,
        len: u64,
        limit: usize,
    },
    #[error("data is not a JSON object: {0}")]
    BadData(String),
}

/// What the decoder waits for.
#[derive(Debug)]
enum Stage {
    Header,
    /// The header is read: `data_len` bytes of data then `payload_len` of payload follow.
    Body {
        kind: String,
        data: Map<String, Value>,
        data_len: usize,
        payload_len: usize,
    },
    /// An error was returned: nothing more is decoded.
    Failed,
}

/// Incremental decoder: [`Decoder::feed`] what the socket gave, then take events with
/// [`Decoder::next_event`] until it returns `Ok(None)` (more bytes needed).
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed (dropped from the front lazily, to avoid a copy per event).
    start: usize,
    /// How far the header search has looked, so a header arriving byte by byte is scanned once.
    scanned: usize,
    stage: Stage,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            stage: Stage::Header,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// True when part of an event has arrived but not all of it: a stream ending now is truncated.
    pub fn is_mid_event(&self) -> bool {
        matches!(self.stage, Stage::Body { .. }) || self.start < self.buf.len()
    }

    /// The next whole event, `Ok(None)` if more bytes are needed. After an error, always the error.
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        let result = self.step();
        if result.is_err() {
            self.stage = Stage::Failed;
        }
        result
    }

    fn step(&mut self) -> Result<Option<Event>, ProtocolError> {
        if matches!(self.stage, Stage::Failed) {
            return Err(ProtocolError::BadHeader("stream already failed".into()));
        }
        if matches!(self.stage, Stage::Header) {
            let pending = &self.buf[self.scanned.max(self.start)..];
            let Some(at) = pending.iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.limits.header_bytes {
                    return Err(ProtocolError::HeaderTooLong(self.limits.header_bytes));
                }
                return Ok(None);
            };
            let end = self.scanned.max(self.start) + at;
            if end + 1 - self.start > self.limits.header_bytes {
                return Err(ProtocolError::HeaderTooLong(self.limits.header_bytes));
            }
            let header = parse_header(&self.buf[self.start..end], &self.limits)?;
            self.start = end + 1;
            self.scanned = self.start;
            self.stage = header;
        }
        let Stage::Body {
            data_len,
            payload_len,
            ..
        } = self.stage
        else {
            return Ok(None);
        };
        if self.buf.len() - self.start < data_len + payload_len {
            return Ok(None);
        }
        let Stage::Body { kind, mut data, .. } = std::mem::replace(&mut self.stage, Stage::Header)
        else {
            return Ok(None);
        };
        let body = &self.buf[self.start..self.start + data_len + payload_len];
        if data_len > 0 {
            match serde_json::from_slice::<Value>(&body[..data_len]) {
                Ok(Value::Object(extra)) => data.extend(extra),
                Ok(_) => return Err(ProtocolError::BadData("not an object".into())),
                Err(e) => return Err(ProtocolError::BadData(e.to_string())),
            }
        }
        let payload = body[data_len..].to_vec();
        self.start += data_len + payload_len;
        self.scanned = self.start;
        Ok(Some(Event {
            kind,
            data,
            payload,
        }))
    }
}

fn parse_header(line: &[u8], limits: &Limits) -> Result<Stage, ProtocolError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let header = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ProtocolError::BadHeader("not an object".into())),
        Err(e) => return Err(ProtocolError::BadHeader(e.to_string())),
    };
    let kind = match header.get("type") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(ProtocolError::NoType),
    };
    let data = match header.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(ProtocolError::BadData(
                "inline data is not an object".into(),
            ))
        }
    };
    let data_len = length(&header, "data_length", limits.data_bytes, "data")?;
    let payload_len = length(&header, "payload_length", limits.payload_bytes, "payload")?;
    Ok(Stage::Body {
        kind,
        data,
        data_len,
        payload_len,
    })
}

fn length(
    header: &Map<String, Value>,
    key: &'static str,
    limit: usize,
    what: &'static str,
) -> Result<usize, ProtocolError> {
    let len = match header.get(key) {
        None | Some(Value::Null) => return Ok(0),
        Some(v) => v.as_u64().ok_or(ProtocolError::BadLength(key))?,
    };
    if len > limit as u64 {
        return Err(ProtocolError::TooLong { what, len, limit });
    }
    Ok(len as usize)
}

/// An event as bytes: header line, then the data as its own JSON (as the reference library writes
/// it), then the payload.
pub fn encode(event: &Event) -> Vec<u8> {
    let data = if event.data.is_empty() {
        Vec::new()
    } else {
        // A map of JSON values always serialises.
        serde_json::to_vec(&event.data).unwrap_or_default()
    };
    let mut header = Map::new();
    header.insert("type".into(), Value::from(event.kind.as_str()));
    header.insert("version".into(), Value::from(PROTOCOL_VERSION));
    if !data.is_empty() {
        header.insert("data_length".into(), Value::from(data.len()));
    }
    if !event.payload.is_empty() {
        header.insert("payload_length".into(), Value::from(event.payload.len()));
    }
    let mut out = serde_json::to_vec(&Value::Object(header)).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(&data);
    out.extend_from_slice(&event.payload);
    out
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
