//! What no well-behaved client sends: every case answered with an `error` or a closed connection,
//! and the server still serving afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use edgescribe::wyoming::codec::{encode, Decoder, Event, Limits};
use serde_json::json;

use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::{fixtures, scratch};
use crate::server::Server;
use crate::venv::client;

const WAIT: Duration = Duration::from_secs(20);

struct Conn {
    stream: TcpStream,
    decoder: Decoder,
}

impl Conn {
    fn open(server: &Server) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Conn {
            stream,
            decoder: Decoder::new(Limits::default()),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn event(&mut self, kind: &str, data: serde_json::Value, payload: &[u8]) {
        let mut e = Event::new(kind, data);
        e.payload = payload.to_vec();
        self.send(&encode(&e));
    }

    /// The next event from the server; `None`: it closed the connection.
    fn next(&mut self) -> Option<Event> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(e) = self.decoder.next_event().expect("the server's framing") {
                return Some(e);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no reply within {WAIT:?}: {e}"),
            }
        }
    }

    fn expect_error(&mut self, code: &str) -> Event {
        let e = self
            .next()
            .unwrap_or_else(|| panic!("closed without an error {code:?}"));
        assert_eq!(
            (e.kind.as_str(), &e.data["code"]),
            ("error", &json!(code)),
            "{e:?}"
        );
        e
    }

    fn expect_closed(&mut self) {
        assert_eq!(self.next(), None, "still open");
    }
}

/// The server answers `describe` on a new connection: it survived.
fn still_serving(server: &Server) {
    let got = client(&["describe", "127.0.0.1", &server.port()]);
    assert!(got["data"]["asr"].is_array(), "{got}");
}

fn start(name: &str, extra: &str) -> (Mosquitto, Server) {
    let dir = scratch(name);
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let server = Server::start(&dir, &broker, name, "127.0.0.1", extra);
    (broker, server)
}

#[test]
fn malformed_truncated_and_unknown_events_get_errors_and_the_server_stays_up() {
    let (_broker, server) = start(
        "wy-hostile",
        "zeroconf = false\nmax_audio_s = 2\nevent_timeout_s = 2",
    );
    // Not JSON: an error, then the connection closes (the framing is lost).
    let mut c = Conn::open(&server);
    c.send(b"GET / HTTP/1.1\r\n\r\n");
    c.expect_error("bad_event");
    c.expect_closed();
    // A header line longer than the limit, never ending.
    let mut c = Conn::open(&server);
    c.send(&vec![b'{'; 70 * 1024]);
    c.expect_error("bad_event");
    c.expect_closed();
    // Lengths that are not lengths, or too big to buffer.
    for header in [
        "{\"type\":\"audio-chunk\",\"payload_length\":-5}\n",
        "{\"type\":\"audio-chunk\",\"payload_length\":99999999999}\n",
        "{\"type\":\"transcribe\",\"data_length\":4}\n[42]",
    ] {
        let mut c = Conn::open(&server);
        c.send(header.as_bytes());
        c.expect_error("bad_event");
        c.expect_closed();
    }
    // Truncated: a chunk announcing 3200 bytes that sends 10 and stops. The client is slow, not
    // gone: event_timeout_s closes it.
    let mut c = Conn::open(&server);
    c.send(b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000,\"width\":2,\"channels\":1},\"payload_length\":3200}\n0123456789");
    let began = Instant::now();
    c.expect_error("timeout");
    c.expect_closed();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    // Truncated and gone.
    let mut c = Conn::open(&server);
    c.send(b"{\"type\":\"describe\",\"data_length\":50}\n{\"a\":");
    drop(c);
    // An unknown event: an error, and the connection stays usable.
    let mut c = Conn::open(&server);
    c.event("synthesize", json!({"text": "hello"}), b"");
    c.expect_error("bad_request");
    c.event("ping", json!({"text": "still there"}), b"");
    let pong = c.next().unwrap();
    assert_eq!(
        (pong.kind.as_str(), &pong.data["text"]),
        ("pong", &json!("still there"))
    );
    // A refused request: its error at once, the rest of its audio dropped, and at its audio-stop
    // the connection closes (Home Assistant waits for a transcript and ignores errors: a closed
    // connection is what tells it). Audio in a format we do not take:
    c.event("transcribe", json!({"language": "en"}), b"");
    c.event(
        "audio-start",
        json!({"rate": 16000, "width": 7, "channels": 1}),
        b"",
    );
    c.expect_error("bad_request");
    c.event(
        "audio-chunk",
        json!({"rate": 16000, "width": 7, "channels": 1}),
        &[0; 70],
    );
    c.event("audio-stop", json!({}), b"");
    c.expect_closed();
    // Audio over max_audio_s:
    let mut c = Conn::open(&server);
    c.event("transcribe", json!({"language": "en"}), b"");
    c.event(
        "audio-start",
        json!({"rate": 16000, "width": 2, "channels": 1}),
        b"",
    );
    let second = vec![0u8; 32_000];
    for _ in 0..3 {
        c.event(
            "audio-chunk",
            json!({"rate": 16000, "width": 2, "channels": 1}),
            &second,
        );
    }
    c.expect_error("audio_too_long");
    c.event("audio-stop", json!({}), b"");
    c.expect_closed();
    // audio-stop without audio: an error and a closed connection.
    let mut c = Conn::open(&server);
    c.event("transcribe", json!({"language": "en"}), b"");
    c.event("audio-stop", json!({}), b"");
    c.expect_error("bad_request");
    c.expect_closed();
    // A good request, two on one connection.
    let mut c = Conn::open(&server);
    let wav = fixtures().join("audio/trained/eng_1.wav");
    let pcm = edgescribe::audio::wav::read_mono(&wav, 16_000).unwrap();
    let bytes: Vec<u8> = pcm
        .iter()
        .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
        .collect();
    for _ in 0..2 {
        c.event("transcribe", json!({"language": "eng"}), b"");
        c.event(
            "audio-start",
            json!({"rate": 16000, "width": 2, "channels": 1}),
            b"",
        );
        for chunk in bytes.chunks(2048) {
            c.event(
                "audio-chunk",
                json!({"rate": 16000, "width": 2, "channels": 1}),
                chunk,
            );
        }
        c.event("audio-stop", json!({}), b"");
        let t = c.next().unwrap();
        assert_eq!(
            (t.kind.as_str(), &t.data["text"]),
            ("transcript", &json!("turn off the office night light")),
            "{t:?}"
        );
    }
    still_serving(&server);
}

#[test]
fn idle_connections_time_out_and_the_connection_bound_holds() {
    let (_broker, server) = start(
        "wy-bounds",
        "zeroconf = false\nmax_connections = 2\nidle_timeout_s = 2",
    );
    let mut a = Conn::open(&server);
    let mut b = Conn::open(&server);
    // Both are served (a reply proves the server took them before the third arrives).
    for c in [&mut a, &mut b] {
        c.event("ping", json!({}), b"");
        assert_eq!(c.next().unwrap().kind, "pong");
    }
    let mut third = Conn::open(&server);
    third.expect_error("busy");
    third.expect_closed();
    // Silent for idle_timeout_s: closed with an error, which frees the places.
    let began = Instant::now();
    a.expect_error("timeout");
    a.expect_closed();
    b.expect_error("timeout");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    still_serving(&server);
}

#[test]
fn a_full_queue_refuses_with_busy_rather_than_waiting() {
    // The request waiting in the queue must not time out behind the one running: under QEMU a
    // 12 s recording takes about a minute to recognise.
    let (_broker, server) = start(
        "wy-busy",
        "zeroconf = false\nqueue_requests = 1\nrequest_timeout_s = 900",
    );
    let wav = fixtures().join("audio/trained/commands_eng.wav");
    let got = client(&[
        "concurrent",
        "127.0.0.1",
        &server.port(),
        "12",
        wav.to_str().unwrap(),
        "--language",
        "en",
    ]);
    let results = got.as_array().unwrap();
    let busy = results
        .iter()
        .filter(|r| r["type"] == "error" && r["data"]["code"] == "busy")
        .count();
    let transcripts = results.iter().filter(|r| r["type"] == "transcript").count();
    assert_eq!(busy + transcripts, 12, "{got}");
    assert!(
        busy >= 1 && transcripts >= 2,
        "{busy} busy, {transcripts} transcripts"
    );
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_tells_idle_connections() {
    let (_broker, mut server) = start("wy-stop", "zeroconf = false");
    let mut idle = Conn::open(&server);
    idle.event("ping", json!({}), b"");
    assert_eq!(idle.next().unwrap().kind, "pong");
    let wav = fixtures().join("audio/trained/deu_1.wav");
    let pcm = edgescribe::audio::wav::read_mono(&wav, 16_000).unwrap();
    let bytes: Vec<u8> = pcm
        .iter()
        .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut busy = Conn::open(&server);
    busy.event("transcribe", json!({"language": "de"}), b"");
    busy.event(
        "audio-start",
        json!({"rate": 16000, "width": 2, "channels": 1}),
        b"",
    );
    busy.event(
        "audio-chunk",
        json!({"rate": 16000, "width": 2, "channels": 1}),
        &bytes,
    );
    busy.event("audio-stop", json!({}), b"");
    server.daemon.signal("TERM");
    let t = busy.next().unwrap();
    assert_eq!(
        (t.kind.as_str(), &t.data["text"]),
        ("transcript", &json!("starte die kaffeemaschine")),
        "{t:?}"
    );
    idle.expect_error("stopping");
    idle.expect_closed();
    assert!(server.daemon.wait(Duration::from_secs(30)).success());
}
