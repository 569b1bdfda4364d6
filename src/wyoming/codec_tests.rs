//! The codec fed as a socket would feed it: whole, byte by byte, cut anywhere, or hostile.

use super::*;
use serde_json::json;

/// What the reference Python library writes for `audio-chunk`: header, data bytes, payload.
fn python_chunk(payload: &[u8]) -> Vec<u8> {
    let data = br#"{"rate": 16000, "width": 2, "channels": 1, "timestamp": null}"#;
    let mut out = format!(
        "{{\"type\": \"audio-chunk\", \"version\": \"1.10.2\", \"data_length\": {}, \"payload_length\": {}}}\n",
        data.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(payload);
    out
}

fn decode_all(decoder: &mut Decoder) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(e) = decoder.next_event().expect("valid stream") {
        events.push(e);
    }
    events
}

#[test]
fn a_payload_full_of_newlines_is_read_by_length() {
    let payload: Vec<u8> = (0..2048)
        .map(|i| if i % 3 == 0 { b'\n' } else { i as u8 })
        .collect();
    let mut bytes = python_chunk(&payload);
    bytes.extend(python_chunk(b"\n\n"));
    let mut d = Decoder::new(Limits::default());
    d.feed(&bytes);
    let events = decode_all(&mut d);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, "audio-chunk");
    assert_eq!(events[0].payload, payload);
    assert_eq!(events[0].data["rate"], json!(16000));
    assert_eq!(events[1].payload, b"\n\n");
    assert!(!d.is_mid_event());
}

#[test]
fn byte_by_byte_gives_the_same_events() {
    let mut bytes = encode(&Event::new("describe", json!({})));
    bytes.extend(python_chunk(&[1, 2, 3, 4]));
    bytes.extend(encode(&Event::new("transcribe", json!({"language": "en"}))));
    let mut whole = Decoder::new(Limits::default());
    whole.feed(&bytes);
    let expected = decode_all(&mut whole);
    assert_eq!(expected.len(), 3);
    let mut d = Decoder::new(Limits::default());
    let mut got = Vec::new();
    for b in &bytes {
        d.feed(std::slice::from_ref(b));
        got.extend(decode_all(&mut d));
    }
    assert_eq!(got, expected);
}

#[test]
fn inline_data_and_data_bytes_are_merged() {
    let data = br#"{"language": "de"}"#;
    let mut bytes = format!(
        "{{\"type\":\"transcribe\",\"data\":{{\"name\":\"mms\",\"language\":\"en\"}},\"data_length\":{}}}\n",
        data.len()
    )
    .into_bytes();
    bytes.extend_from_slice(data);
    let mut d = Decoder::new(Limits::default());
    d.feed(&bytes);
    let e = d.next_event().unwrap().unwrap();
    assert_eq!(e.data["name"], json!("mms"));
    assert_eq!(e.data["language"], json!("de"), "the data bytes win");
}

#[test]
fn encode_round_trips_and_ends_without_a_newline() {
    let mut e = Event::new(
        "transcript",
        json!({"text": "héllo\nworld", "language": "fr"}),
    );
    e.payload = vec![0, 10, 255];
    let bytes = encode(&e);
    assert_eq!(bytes.last(), Some(&255), "nothing after the payload");
    assert_eq!(
        bytes.iter().filter(|&&b| b == b'\n').count(),
        2,
        "header + payload's own"
    );
    let mut d = Decoder::new(Limits::default());
    d.feed(&bytes);
    assert_eq!(d.next_event().unwrap(), Some(e));
    let empty = encode(&Event::new("pong", json!({})));
    assert!(!String::from_utf8_lossy(&empty).contains("data_length"));
}

#[test]
fn a_truncated_event_waits_and_is_reported_as_mid_event() {
    let bytes = python_chunk(&[7; 100]);
    for cut in [1, 20, bytes.len() - 101, bytes.len() - 1] {
        let mut d = Decoder::new(Limits::default());
        d.feed(&bytes[..cut]);
        assert_eq!(d.next_event(), Ok(None), "cut at {cut}");
        assert!(d.is_mid_event(), "cut at {cut}");
    }
}

#[test]
fn hostile_headers_are_errors_not_panics() {
    type Expected = fn(&ProtocolError) -> bool;
    let cases: &[(&[u8], Expected)] = &[
        (b"not json\n", |e| matches!(e, ProtocolError::BadHeader(_))),
        (b"[1,2]\n", |e| matches!(e, ProtocolError::BadHeader(_))),
        (b"{\"data\":{}}\n", |e| *e == ProtocolError::NoType),
        (b"{\"type\":5}\n", |e| *e == ProtocolError::NoType),
        (b"{\"type\":\"x\",\"data_length\":-1}\n", |e| {
            *e == ProtocolError::BadLength("data_length")
        }),
        (b"{\"type\":\"x\",\"payload_length\":\"9\"}\n", |e| {
            *e == ProtocolError::BadLength("payload_length")
        }),
        (b"{\"type\":\"x\",\"payload_length\":1e300}\n", |e| {
            *e == ProtocolError::BadLength("payload_length")
        }),
        (
            b"{\"type\":\"x\",\"payload_length\":18446744073709551615}\n",
            |e| {
                matches!(
                    e,
                    ProtocolError::TooLong {
                        what: "payload",
                        ..
                    }
                )
            },
        ),
        (b"{\"type\":\"x\",\"data\":[1]}\n", |e| {
            matches!(e, ProtocolError::BadData(_))
        }),
        (b"{\"type\":\"x\",\"data_length\":3}\n[1]", |e| {
            matches!(e, ProtocolError::BadData(_))
        }),
        (b"{\"type\":\"x\",\"data_length\":2}\n{x", |e| {
            matches!(e, ProtocolError::BadData(_))
        }),
        (b"\xff\xfe\n", |e| matches!(e, ProtocolError::BadHeader(_))),
    ];
    for (bytes, expected) in cases {
        let mut d = Decoder::new(Limits::default());
        d.feed(bytes);
        let e = d.next_event().expect_err(&String::from_utf8_lossy(bytes));
        assert!(expected(&e), "{:?}: {e:?}", String::from_utf8_lossy(bytes));
        assert!(d.next_event().is_err(), "stays failed");
    }
}

#[test]
fn a_header_without_newline_is_refused_at_the_limit() {
    let limits = Limits {
        header_bytes: 100,
        ..Limits::default()
    };
    let mut d = Decoder::new(limits);
    d.feed(&[b'{'; 100]);
    assert_eq!(d.next_event(), Ok(None), "at the limit: still waiting");
    d.feed(b" ");
    assert_eq!(d.next_event(), Err(ProtocolError::HeaderTooLong(100)));
    // A complete line over the limit too, even when it arrives at once.
    let mut d = Decoder::new(limits);
    let mut line = vec![b' '; 120];
    line.extend_from_slice(b"{\"type\":\"ping\"}\n");
    d.feed(&line);
    assert_eq!(d.next_event(), Err(ProtocolError::HeaderTooLong(100)));
}

#[test]
fn lengths_over_the_limits_are_refused_before_anything_is_buffered() {
    let limits = Limits {
        header_bytes: 1000,
        data_bytes: 10,
        payload_bytes: 20,
    };
    let mut d = Decoder::new(limits);
    d.feed(b"{\"type\":\"x\",\"payload_length\":21}\n");
    assert_eq!(
        d.next_event(),
        Err(ProtocolError::TooLong {
            what: "payload",
            len: 21,
            limit: 20
        })
    );
    let mut d = Decoder::new(limits);
    d.feed(b"{\"type\":\"x\",\"data_length\":11}\n");
    assert!(matches!(
        d.next_event(),
        Err(ProtocolError::TooLong { what: "data", .. })
    ));
}

#[test]
fn a_long_stream_keeps_the_buffer_small() {
    let mut d = Decoder::new(Limits::default());
    let chunk = python_chunk(&[3; 2048]);
    for _ in 0..1000 {
        d.feed(&chunk);
        assert_eq!(decode_all(&mut d).len(), 1);
    }
    assert!(d.buf.capacity() < 256 * 1024, "{}", d.buf.capacity());
}

proptest::proptest! {
    /// Whatever bytes arrive, cut however, the decoder returns events or an error: never a panic,
    /// and never more buffered than the limits allow plus what was fed since the last event.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
                                   cut in 1usize..64) {
        let limits = Limits { header_bytes: 200, data_bytes: 100, payload_bytes: 100 };
        let mut d = Decoder::new(limits);
        for piece in bytes.chunks(cut) {
            d.feed(piece);
            let mut result = d.next_event();
            while let Ok(Some(_)) = result {
                result = d.next_event();
            }
            if result.is_err() {
                // The server closes the connection here: nothing more is fed.
                break;
            }
            // Bounded: an event's parts within the limits, plus the last piece fed.
            proptest::prop_assert!(d.buf.len() - d.start <= 200 + 100 + 100 + cut);
        }
    }
}
