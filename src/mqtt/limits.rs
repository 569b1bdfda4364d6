//! Sizes of MQTT 5 PUBLISH packets, so that nothing the node sends exceeds the broker's limit.
//!
//! A broker announces its largest accepted packet in CONNACK (`Maximum Packet Size`); rumqttc
//! turns a publish above it into a connection error, and a broker that received one would
//! disconnect us. Either way the same message would be re-sent at every reconnect and hold up
//! everything after it, so every publish is measured against the limit before it is handed over.

/// Bytes of a PUBLISH packet without properties: fixed header, topic, packet id (QoS > 0) and
/// payload. MQTT 5 §3.3: remaining length = 2 + topic + [2] + 1 (empty property length) + payload.
pub fn publish_packet_bytes(topic: &str, payload_bytes: usize, qos_above_zero: bool) -> usize {
    let remaining = 2 + topic.len() + if qos_above_zero { 2 } else { 0 } + 1 + payload_bytes;
    1 + remaining_length_bytes(remaining) + remaining
}

/// The largest payload that keeps a PUBLISH on `topic` within `max_packet_bytes`; `None` when
/// not even an empty one fits (a topic longer than the limit).
pub fn max_payload_bytes(
    topic: &str,
    max_packet_bytes: usize,
    qos_above_zero: bool,
) -> Option<usize> {
    if publish_packet_bytes(topic, 0, qos_above_zero) > max_packet_bytes {
        return None;
    }
    // The remaining-length field grows with the payload: start from the largest field (4
    // bytes) and take back what a shorter field leaves over.
    let overhead = publish_packet_bytes(topic, 0, qos_above_zero) - 1;
    let mut payload = max_packet_bytes.saturating_sub(overhead + 4);
    while publish_packet_bytes(topic, payload + 1, qos_above_zero) <= max_packet_bytes {
        payload += 1;
    }
    Some(payload)
}

/// MQTT's variable-length encoding of the remaining length (7 bits per byte).
fn remaining_length_bytes(remaining: usize) -> usize {
    match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::{v5::Publish, QoS};

    /// Against rumqttc's own encoder: the size it writes is the size we predict.
    #[test]
    fn matches_the_encoder() {
        for topic in ["t", "edgescribe/kitchen/transcript"] {
            for len in [
                0, 1, 100, 120, 127, 128, 16_000, 16_383, 16_384, 70_000, 2_097_151,
            ] {
                for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                    let mut p = Publish::new(topic, qos, vec![b'x'; len], None);
                    p.pkid = u16::from(qos != QoS::AtMostOnce);
                    let mut buf = bytes::BytesMut::new();
                    let written = p.write(&mut buf).expect("encodes");
                    assert_eq!(written, buf.len());
                    assert_eq!(
                        publish_packet_bytes(topic, len, qos != QoS::AtMostOnce),
                        buf.len(),
                        "topic {topic:?}, payload {len}, {qos:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn largest_payload_fits_exactly() {
        for limit in [60, 200, 4000, 16_400, 1 << 20, 256 << 20] {
            let topic = "edgescribe/kitchen/transcript";
            let max = max_payload_bytes(topic, limit, true).expect("topic fits");
            assert!(publish_packet_bytes(topic, max, true) <= limit, "{limit}");
            assert!(
                publish_packet_bytes(topic, max + 1, true) > limit,
                "{limit}"
            );
        }
        assert_eq!(max_payload_bytes("a/very/long/topic", 10, true), None);
    }
}
