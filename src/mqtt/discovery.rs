//! Home Assistant MQTT discovery: one retained config message per entity, all under one device
//! and available while `…/status` says `online`. Pure.
//!
//! Schemas followed: HA's `homeassistant/components/mqtt/{event,select,switch,sensor,schemas}.py`
//! (documented at <https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery>); the
//! integration test `mqtt_discovery` checks every key against them.

use serde_json::{json, Value};

use super::topics::{ha_id, Topics};
use super::DeviceInfo;

/// One discovery config message (publish retained, QoS 1).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryMessage {
    pub topic: String,
    pub payload: Value,
}

/// The entities of a node:
/// - `event` *Transcript*: fires on every transcript; the message's keys (full text, language,
///   confidence, words…) become event attributes. An event, not a sensor, because a sensor's
///   state is limited to 255 characters.
/// - `select` *Language*: the configured languages; commands go to `…/set/language`.
/// - `switch` *Listening*: mute/unmute via `…/set/listening`.
/// - `sensor`s *Utterances*, *Real-time factor*, *Outbox* from `…/stats`.
pub fn discovery_messages(
    discovery_prefix: &str,
    device_id: &str,
    topics: &Topics,
    info: &DeviceInfo,
) -> Vec<DiscoveryMessage> {
    let node = ha_id(device_id);
    let device = json!({
        "identifiers": [format!("edgescribe_{node}")],
        // Readable in Home Assistant's device list ("edgescribe kitchen", not "kitchen"); entity
        // ids follow it: event.edgescribe_kitchen_transcript.
        "name": format!("edgescribe {device_id}"),
        "manufacturer": "edgescribe",
        "model": format!("Speech-to-text node ({})", info.model),
        "sw_version": info.version,
    });
    let origin = json!({ "name": "edgescribe", "sw_version": info.version });
    let entity = |component: &str, object: &str, name: &str, specific: Value| {
        let mut payload = json!({
            "name": name,
            "unique_id": format!("edgescribe_{node}_{object}"),
            "availability_topic": topics.status,
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 1,
            "device": device,
            "origin": origin,
        });
        if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), specific) {
            p.extend(extra);
        }
        DiscoveryMessage {
            topic: format!("{discovery_prefix}/{component}/{node}/{object}/config"),
            payload,
        }
    };
    vec![
        entity(
            "event",
            "transcript",
            "Transcript",
            json!({
                "state_topic": topics.transcript,
                "event_types": ["transcript"],
                "icon": "mdi:microphone-message",
            }),
        ),
        entity(
            "select",
            "language",
            "Language",
            json!({
                "command_topic": topics.set_language,
                "state_topic": topics.state,
                "value_template": "{{ value_json.language }}",
                "options": info.languages,
                "icon": "mdi:translate",
                "entity_category": "config",
            }),
        ),
        entity(
            "switch",
            "listening",
            "Listening",
            json!({
                "command_topic": topics.set_listening,
                "state_topic": topics.state,
                "value_template": "{{ 'on' if value_json.listening else 'off' }}",
                "payload_on": "on",
                "payload_off": "off",
                "state_on": "on",
                "state_off": "off",
                "icon": "mdi:microphone",
            }),
        ),
        entity(
            "sensor",
            "utterances",
            "Utterances",
            json!({
                "state_topic": topics.stats,
                "value_template": "{{ value_json.utterances }}",
                "state_class": "total_increasing",
                "icon": "mdi:counter",
            }),
        ),
        entity(
            "sensor",
            "real_time_factor",
            "Real-time factor",
            json!({
                "state_topic": topics.stats,
                "value_template": "{{ value_json.real_time_factor }}",
                "state_class": "measurement",
                "suggested_display_precision": 2,
                "entity_category": "diagnostic",
                "icon": "mdi:speedometer",
            }),
        ),
        entity(
            "sensor",
            "outbox",
            "Outbox",
            json!({
                "state_topic": topics.stats,
                "value_template": "{{ value_json.mqtt.outbox_depth }}",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                "icon": "mdi:tray-full",
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_device_six_entities_unique_ids() {
        let topics = Topics::new("edgescribe", "kitchen.pi", "homeassistant");
        let info = DeviceInfo {
            languages: vec!["eng".into(), "fra".into()],
            language: "eng".into(),
            model: "mms-1b-all".into(),
            version: "0.1.0".into(),
        };
        let msgs = discovery_messages("homeassistant", "kitchen.pi", &topics, &info);
        assert_eq!(msgs.len(), 6);
        assert_eq!(
            msgs[0].topic,
            "homeassistant/event/kitchen_pi/transcript/config"
        );
        let mut ids: Vec<&str> = msgs
            .iter()
            .map(|m| m.payload["unique_id"].as_str().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6);
        assert!(msgs
            .iter()
            .all(|m| m.payload["device"] == msgs[0].payload["device"]));
        assert_eq!(msgs[1].payload["options"], json!(["eng", "fra"]));
    }
}
