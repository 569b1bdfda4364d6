//! Home Assistant discovery, commands and Hermes against a real Mosquitto.
//!
//! Discovery payloads are checked key by key against the schemas of Home Assistant's MQTT
//! integration (`homeassistant/components/mqtt/`: `config.py` MQTT_RO/RW_SCHEMA, `schemas.py`
//! MQTT_ENTITY_COMMON_SCHEMA / device / origin / availability, and `event.py`, `select.py`,
//! `switch.py`, `sensor.py`), and their value templates are evaluated on
//! the node's real `…/state` and `…/stats` messages.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::common;
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::mqtt_node::{self as node, WAIT};
use crate::common::subscriber::{Message, Subscriber};
use edgescribe::mqtt::command::{parse_incoming, ParseContext};
use edgescribe::mqtt::{Command, DaemonStats, DeviceState, Mqtt, Topics};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Str,
    Bool,
    Int,
    Qos,
    /// A topic HA publishes to: no wildcards.
    PubTopic,
    /// A topic HA subscribes to.
    SubTopic,
    Template,
    Icon,
    StrList,
    Object,
    EntityCategory,
    StateClass,
    EventDeviceClass,
}

/// Keys every MQTT entity accepts (MQTT_BASE_SCHEMA + MQTT_ENTITY_COMMON_SCHEMA + availability).
fn common_keys() -> BTreeMap<&'static str, Kind> {
    use Kind::*;
    BTreeMap::from([
        ("qos", Qos),
        ("encoding", Str),
        ("name", Str),
        ("unique_id", Str),
        ("availability_topic", SubTopic),
        ("availability_template", Template),
        ("availability_mode", Str),
        ("payload_available", Str),
        ("payload_not_available", Str),
        ("device", Object),
        ("origin", Object),
        ("enabled_by_default", Bool),
        ("entity_category", EntityCategory),
        ("icon", Icon),
        ("json_attributes_topic", SubTopic),
        ("json_attributes_template", Template),
        ("entity_picture", Str),
    ])
}

/// Keys of a schema and the kind of value each takes.
type Keys = Vec<(&'static str, Kind)>;

/// (required, optional) keys per component.
fn component_keys(component: &str) -> (Keys, Keys) {
    use Kind::*;
    match component {
        // event.py: MQTT_RO_SCHEMA + event_types (required), device_class.
        "event" => (
            vec![("state_topic", SubTopic), ("event_types", StrList)],
            vec![
                ("value_template", Template),
                ("device_class", EventDeviceClass),
            ],
        ),
        // select.py: MQTT_RW_SCHEMA + options (required), command/value templates.
        "select" => (
            vec![("command_topic", PubTopic), ("options", StrList)],
            vec![
                ("state_topic", SubTopic),
                ("value_template", Template),
                ("command_template", Template),
                ("optimistic", Bool),
                ("retain", Bool),
            ],
        ),
        // switch.py: MQTT_RW_SCHEMA + payload_on/off, state_on/off, value_template.
        "switch" => (
            vec![("command_topic", PubTopic)],
            vec![
                ("state_topic", SubTopic),
                ("value_template", Template),
                ("payload_on", Str),
                ("payload_off", Str),
                ("state_on", Str),
                ("state_off", Str),
                ("optimistic", Bool),
                ("retain", Bool),
                ("device_class", Str),
            ],
        ),
        // sensor.py: MQTT_RO_SCHEMA + unit, device/state class, expiry, precision.
        "sensor" => (
            vec![("state_topic", SubTopic)],
            vec![
                ("value_template", Template),
                ("unit_of_measurement", Str),
                ("device_class", Str),
                ("state_class", StateClass),
                ("expire_after", Int),
                ("force_update", Bool),
                ("suggested_display_precision", Int),
                ("last_reset_value_template", Template),
            ],
        ),
        other => panic!("unexpected component {other}"),
    }
}

fn check_topic(v: &Value, subscribe: bool) -> Result<(), String> {
    let t = v.as_str().ok_or("not a string")?;
    if t.is_empty() || t.contains('\0') || t.len() > 65535 {
        return Err(format!("invalid topic {t:?}"));
    }
    if !subscribe && (t.contains('+') || t.contains('#')) {
        return Err(format!("wildcard in publish topic {t:?}"));
    }
    Ok(())
}

fn check_kind(key: &str, v: &Value, kind: Kind) -> Result<(), String> {
    use Kind::*;
    let ok = match kind {
        Str => v.is_string(),
        Bool => v.is_boolean(),
        Int => v.is_u64(),
        Qos => v.as_u64().is_some_and(|q| q <= 2),
        PubTopic => return check_topic(v, false),
        SubTopic => return check_topic(v, true),
        Template => v
            .as_str()
            .is_some_and(|t| t.contains("{{") && t.contains("}}")),
        // cv.icon: "prefix:name".
        Icon => v.as_str().is_some_and(|i| {
            i.split_once(':').is_some_and(|(p, n)| {
                !p.is_empty()
                    && !n.is_empty()
                    && (p.to_owned() + n)
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        }),
        StrList => v
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string)),
        Object => v.is_object(),
        EntityCategory => matches!(v.as_str(), Some("config" | "diagnostic")),
        StateClass => matches!(
            v.as_str(),
            Some("measurement" | "measurement_angle" | "total" | "total_increasing")
        ),
        EventDeviceClass => matches!(v.as_str(), Some("button" | "doorbell" | "motion")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{key}: {v} is not a valid {kind:?}"))
    }
}

/// Checks one discovery message against HA's schema; returns the component.
fn check_discovery(m: &Message, status_topic: &str) -> String {
    // <discovery_prefix>/<component>/<node_id>/<object_id>/config, ids [a-zA-Z0-9_-]+.
    let parts: Vec<&str> = m.topic.split('/').collect();
    assert_eq!(parts.len(), 5, "{}", m.topic);
    assert_eq!(
        (parts[0], parts[4]),
        ("homeassistant", "config"),
        "{}",
        m.topic
    );
    for id in [parts[2], parts[3]] {
        assert!(
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{}",
            m.topic
        );
    }
    let component = parts[1].to_string();
    let v = m.json();
    let obj = v.as_object().expect("config is a JSON object");
    let common = common_keys();
    let (required, optional) = component_keys(&component);
    for (key, kind) in &required {
        let value = obj
            .get(*key)
            .unwrap_or_else(|| panic!("{}: required {key} missing", m.topic));
        check_kind(key, value, *kind).unwrap_or_else(|e| panic!("{}: {e}", m.topic));
    }
    for (key, value) in obj {
        // HA drops unknown keys silently (vol.REMOVE_EXTRA): a typo would go unnoticed there.
        let kind = common
            .get(key.as_str())
            .copied()
            .or_else(|| {
                required
                    .iter()
                    .chain(&optional)
                    .find(|(k, _)| k == key)
                    .map(|(_, k)| *k)
            })
            .unwrap_or_else(|| panic!("{}: key {key} is not in HA's {component} schema", m.topic));
        check_kind(key, value, kind).unwrap_or_else(|e| panic!("{}: {e}", m.topic));
    }
    // Availability on …/status with our payloads.
    assert_eq!(obj["availability_topic"], status_topic);
    assert_eq!(obj["payload_available"], "online");
    assert_eq!(obj["payload_not_available"], "offline");
    assert!(obj["unique_id"]
        .as_str()
        .unwrap()
        .starts_with("edgescribe_"));
    // MQTT_ENTITY_DEVICE_INFO_SCHEMA: known keys, at least one identifier.
    let device = obj["device"].as_object().unwrap();
    for (k, dv) in device {
        assert!(
            [
                "identifiers",
                "connections",
                "manufacturer",
                "model",
                "model_id",
                "name",
                "hw_version",
                "serial_number",
                "sw_version",
                "via_device",
                "suggested_area",
                "configuration_url"
            ]
            .contains(&k.as_str()),
            "device key {k}"
        );
        if k == "identifiers" {
            assert!(dv
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string)));
        } else {
            assert!(dv.is_string(), "device.{k} must be a string");
        }
    }
    assert!(device.contains_key("identifiers"));
    // MQTT_ORIGIN_INFO_SCHEMA: name required.
    let origin = obj["origin"].as_object().unwrap();
    assert!(origin["name"].is_string());
    assert!(origin
        .keys()
        .all(|k| ["name", "sw_version", "support_url"].contains(&k.as_str())));
    component
}

/// Renders the two template forms the node emits, the way Home Assistant's Jinja would on a
/// JSON payload: `{{ value_json.a.b }}` and `{{ 'x' if value_json.a else 'y' }}`. Anything else
/// fails the test (a new form needs a check here).
fn render(template: &str, payload: &[u8]) -> String {
    let value_json: Value = serde_json::from_slice(payload).unwrap();
    let expr = template
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or_else(|| panic!("not a single expression: {template}"))
        .trim();
    let lookup = |path: &str| -> Value {
        let mut v = &value_json;
        let rest = path
            .strip_prefix("value_json.")
            .unwrap_or_else(|| panic!("unsupported expression {path}"));
        for key in rest.split('.') {
            v = v
                .get(key)
                .unwrap_or_else(|| panic!("{path}: no key {key} in {value_json}"));
        }
        v.clone()
    };
    let show = |v: Value| match v {
        Value::String(s) => s,
        Value::Null => "None".into(),
        other => other.to_string(),
    };
    if let Some((then, rest)) = expr.split_once(" if ") {
        let (cond, other) = rest.split_once(" else ").expect("conditional without else");
        let literal = |s: &str| s.trim().trim_matches('\'').to_string();
        let truthy = !matches!(lookup(cond.trim()), Value::Bool(false) | Value::Null);
        return if truthy {
            literal(then)
        } else {
            literal(other)
        };
    }
    show(lookup(expr))
}

#[test]
fn discovery_matches_home_assistant_schema_and_templates_render() {
    let broker = Mosquitto::start(&common::scratch("mqtt-ha"), BrokerOptions::default());
    let mut config = node::config(&broker.url(), "ha.pi");
    config.ha_discovery = true;
    let (node, _cmds) = Mqtt::start(&config, node::info()).unwrap();
    let sub = Subscriber::connect(
        broker.port,
        "ha-sub",
        &["homeassistant/+/+/+/config", "edgescribe/ha.pi/#"],
    );

    let mut configs: BTreeMap<String, Message> = BTreeMap::new();
    let mut state = None;
    while configs.len() < 6 || state.is_none() {
        let m = sub.next(WAIT).expect("discovery configs and state");
        if m.topic.starts_with("homeassistant/") {
            configs.insert(m.topic.clone(), m);
        } else if m.topic == "edgescribe/ha.pi/state" {
            state = Some(m);
        }
    }
    let mut components: Vec<String> = configs
        .values()
        .map(|m| check_discovery(m, "edgescribe/ha.pi/status"))
        .collect();
    components.sort();
    assert_eq!(
        components,
        ["event", "select", "sensor", "sensor", "sensor", "switch"]
    );
    let all: Vec<Value> = configs.values().map(Message::json).collect();
    assert!(
        all.iter().all(|c| c["device"] == all[0]["device"]),
        "one device block"
    );
    let mut ids: Vec<&str> = all
        .iter()
        .map(|c| c["unique_id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 6);

    let by = |topic: &str| configs[topic].json();
    // Event: the transcript message itself carries an event_type HA accepts.
    let event = by("homeassistant/event/ha_pi/transcript/config");
    assert_eq!(event["state_topic"], "edgescribe/ha.pi/transcript");
    node.publish_transcript(&node::transcript(1), SystemTime::now(), 3);
    let t = sub
        .wait_for(WAIT, |m| m.topic.ends_with("/transcript"))
        .unwrap();
    assert!(!t.retain, "HA ignores retained events");
    let event_type = t.json()["event_type"].clone();
    assert!(event["event_types"]
        .as_array()
        .unwrap()
        .contains(&event_type));

    // Select: renders the active language, one of the options; commands go to set/language.
    let select = by("homeassistant/select/ha_pi/language/config");
    let state = state.unwrap();
    let rendered = render(select["value_template"].as_str().unwrap(), &state.payload);
    assert_eq!(rendered, "eng");
    assert_eq!(select["options"], serde_json::json!(["eng", "fra", "deu"]));
    assert_eq!(select["command_topic"], "edgescribe/ha.pi/set/language");

    // Switch: renders state_on / state_off for listening true / false.
    let switch = by("homeassistant/switch/ha_pi/listening/config");
    let tpl = switch["value_template"].as_str().unwrap();
    assert_eq!(
        render(tpl, &state.payload),
        switch["state_on"].as_str().unwrap()
    );
    let muted = br#"{"language":"eng","listening":false,"languages":["eng"],"error":null}"#;
    assert_eq!(render(tpl, muted), switch["state_off"].as_str().unwrap());

    // Sensors: render numbers from a real stats message (outbox empty once acknowledged).
    assert!(node.wait_delivered(WAIT));
    node.publish_stats(DaemonStats {
        uptime_s: 12,
        utterances: 4,
        real_time_factor: Some(0.25),
        ..Default::default()
    });
    let stats = sub.wait_for(WAIT, |m| m.topic.ends_with("/stats")).unwrap();
    for (object, expected) in [
        ("utterances", "4"),
        ("real_time_factor", "0.25"),
        ("outbox", "0"),
    ] {
        let c = by(&format!("homeassistant/sensor/ha_pi/{object}/config"));
        assert_eq!(c["state_topic"], "edgescribe/ha.pi/stats");
        let got = render(c["value_template"].as_str().unwrap(), &stats.payload);
        assert_eq!(got, expected, "{object}");
    }

    // HA restarts (birth message): everything is announced again.
    sub.publish("homeassistant/status", b"online");
    let again: Vec<Message> = std::iter::from_fn(|| sub.next(Duration::from_secs(2)))
        .filter(|m| m.topic.starts_with("homeassistant/") && m.topic.ends_with("/config"))
        .collect();
    assert_eq!(
        again.len(),
        6,
        "re-announced after homeassistant/status online"
    );

    // Retained: a subscriber arriving now gets every config and the state at once, flagged
    // retained (live deliveries never carry the flag).
    let late = Subscriber::connect(
        broker.port,
        "ha-late",
        &["homeassistant/+/+/+/config", "edgescribe/ha.pi/state"],
    );
    let retained = late.drain(Duration::from_millis(500));
    assert_eq!(retained.len(), 7, "6 configs + state");
    assert!(retained.iter().all(|m| m.retain));
}

#[test]
fn commands_reach_the_daemon_and_bad_ones_are_reported_on_state() {
    let broker = Mosquitto::start(&common::scratch("mqtt-cmd"), BrokerOptions::default());
    let (node, cmds) = Mqtt::start(&node::config(&broker.url(), "cmd-pi"), node::info()).unwrap();
    let sub = Subscriber::connect(broker.port, "cmd-sub", &["edgescribe/cmd-pi/state"]);
    let initial = sub.wait_for(WAIT, |_| true).unwrap().json();
    assert_eq!(initial["language"], "eng");
    assert_eq!(initial["listening"], true);
    assert_eq!(initial["error"], Value::Null);

    // A valid command goes to the daemon, which applies it and reports the new state.
    sub.publish("edgescribe/cmd-pi/set/language", b"fra");
    let cmd = cmds.recv_timeout(WAIT).unwrap();
    assert_eq!(cmd, Command::SetLanguage("fra".into()));
    node.publish_state(DeviceState {
        language: "fra".into(),
        listening: true,
    });
    let s = sub
        .wait_for(WAIT, |m| m.json()["language"] == "fra")
        .unwrap();
    assert_eq!(s.json()["error"], Value::Null);
    let late = Subscriber::connect(broker.port, "cmd-late", &["edgescribe/cmd-pi/state"]);
    let retained = late.wait_for(WAIT, |_| true).unwrap();
    assert!(
        retained.retain && retained.json()["language"] == "fra",
        "state is retained"
    );

    // An unknown language never reaches the daemon; the error names the choices.
    sub.publish("edgescribe/cmd-pi/set/language", b"klingon");
    let s = sub
        .wait_for(WAIT, |m| !m.json()["error"].is_null())
        .unwrap()
        .json();
    assert_eq!(s["language"], "fra", "state unchanged");
    assert_eq!(s["error"]["topic"], "edgescribe/cmd-pi/set/language");
    assert_eq!(
        s["error"]["message"],
        "unknown language \"klingon\"; configured: eng, fra, deu"
    );

    sub.publish("edgescribe/cmd-pi/set/listening", b"off");
    assert_eq!(
        cmds.recv_timeout(WAIT).unwrap(),
        Command::SetListening(false)
    );
    sub.publish("edgescribe/cmd-pi/set/listening", &[0xc3, 0x28]);
    let s = sub
        .wait_for(WAIT, |m| {
            m.json()["error"]["message"] == "payload is not UTF-8"
        })
        .unwrap();
    assert_eq!(
        s.json()["error"]["topic"],
        "edgescribe/cmd-pi/set/listening"
    );

    // The daemon can report a failure of its own.
    node.report_command_error(
        &Command::SetLanguage("deu".into()),
        "adapter for deu missing",
    );
    sub.wait_for(WAIT, |m| {
        m.json()["error"]["message"] == "adapter for deu missing"
    })
    .unwrap();
    assert!(
        cmds.try_recv().is_err(),
        "rejected commands never reach the daemon"
    );
    assert_eq!(node.counters().commands_rejected, 2);
}

/// A daemon that does not take its commands, and a flood of random payloads: the node drops
/// and counts what does not fit, stays connected and keeps delivering transcripts.
#[test]
fn command_flood_and_garbage_never_block_or_disconnect() {
    let broker = Mosquitto::start(&common::scratch("mqtt-flood"), BrokerOptions::default());
    let mut config = node::config(&broker.url(), "flood-pi");
    config.hermes = true;
    config.site_id = "flood".into();
    let (node, cmds) = Mqtt::start(&config, node::info()).unwrap();
    let sub = Subscriber::connect(
        broker.port,
        "flood-sub",
        &[
            "edgescribe/flood-pi/transcript",
            "edgescribe/flood-pi/status",
        ],
    );
    // The node subscribes before it publishes `online`: once that is seen, commands get through.
    sub.wait_for(WAIT, |m| m.text() == "online")
        .expect("node online");
    let topics = [
        "edgescribe/flood-pi/set/language",
        "edgescribe/flood-pi/set/listening",
        "hermes/asr/toggleOn",
        "hermes/asr/toggleOff",
    ];
    // Valid commands, never received by the "daemon".
    for _ in 0..100 {
        sub.publish(topics[1], b"on");
    }
    // Garbage: random bytes of random length (xorshift, fixed seed).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // What the node must reject, according to the (separately fuzzed) pure parser.
    let node_topics = Topics::new("edgescribe", "flood-pi", "homeassistant");
    let languages: Vec<String> = node::info().languages;
    let ctx = ParseContext {
        topics: &node_topics,
        languages: &languages,
        hermes: true,
        site_id: "flood",
    };
    let mut sent = 0;
    let mut expected_rejections = 0;
    for i in 0..400 {
        let len = (next() % 3000) as usize;
        let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let topic = topics[i % topics.len()];
        if parse_incoming(topic, &payload, &ctx).is_err() {
            expected_rejections += 1;
        }
        sub.publish(topic, &payload);
        sent += 1;
    }
    common::eventually(
        &format!("the node to reject {expected_rejections} commands"),
        WAIT,
        || {
            let c = node.counters();
            if c.commands_rejected >= expected_rejections {
                Ok(())
            } else {
                Err(c)
            }
        },
    );
    node.publish_transcript(&node::transcript(1), SystemTime::now(), 1);
    assert!(node.wait_delivered(WAIT));
    sub.wait_for(WAIT, |m| m.topic.ends_with("/transcript"))
        .expect("transcript after the flood");
    let c = node.counters();
    let status = node.connection();
    eprintln!("flood: 100 valid + {sent} random commands; {c:?}; {status:?}");
    assert_eq!(status.connections, 1, "never disconnected");
    assert!(c.commands_dropped >= 100 - edgescribe::mqtt::COMMAND_QUEUE as u64);
    let queued = cmds.try_iter().count();
    assert!(queued <= edgescribe::mqtt::COMMAND_QUEUE, "{queued}");
    assert!(
        c.commands_rejected > 300,
        "garbage rejected: {}",
        c.commands_rejected
    );
    // The retained `…/state` is the latest one, not one left behind by the flood (each
    // rejection republishes the state with its error; a publish the client could not queue
    // used to be forgotten): the last rejection, then the daemon's own state.
    sub.publish(topics[0], b"zz-last");
    // A new client each time (the test subscriber keeps a persistent session): what it gets
    // first is the retained copy.
    let attempts = std::cell::Cell::new(0);
    let retained_state = |name: &str| {
        attempts.set(attempts.get() + 1);
        let id = format!("{name}-{}", attempts.get());
        let late = Subscriber::connect(broker.port, &id, &["edgescribe/flood-pi/state"]);
        late.next(Duration::from_secs(2)).map(|m| m.json())
    };
    common::eventually("the last rejection retained", WAIT, || {
        let state = retained_state("flood-late-1");
        match &state {
            Some(s)
                if s["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("zz-last")) =>
            {
                Ok(())
            }
            _ => Err(state),
        }
    });
    node.publish_state(DeviceState {
        language: "fra".into(),
        listening: false,
    });
    common::eventually("the final state retained", WAIT, || {
        let state = retained_state("flood-late-2");
        match &state {
            Some(s)
                if s["language"] == "fra" && s["listening"] == false && s["error"].is_null() =>
            {
                Ok(())
            }
            _ => Err(state),
        }
    });
}

#[test]
fn hermes_text_captured_and_toggles() {
    let broker = Mosquitto::start(&common::scratch("mqtt-hermes"), BrokerOptions::default());
    let mut config = node::config(&broker.url(), "hermes-pi");
    config.hermes = true;
    config.site_id = "kitchen".into();
    let (node, cmds) = Mqtt::start(&config, node::info()).unwrap();
    let sub = Subscriber::connect(broker.port, "hermes-sub", &["hermes/asr/textCaptured"]);
    // Queued before the node's first connection, sent once it connects.
    node.publish_transcript(&node::transcript(1), SystemTime::now(), 250);
    let m = sub.wait_for(WAIT, |_| true).expect("textCaptured").json();
    assert_eq!(
        m,
        serde_json::json!({"text": "utterance number 1", "likelihood": 0.75, "seconds": 0.25,
            "siteId": "kitchen", "sessionId": null, "lang": "eng"})
    );
    sub.publish(
        "hermes/asr/toggleOff",
        br#"{"siteId":"hall","reason":"ttsSay"}"#,
    );
    sub.publish(
        "hermes/asr/toggleOff",
        br#"{"siteId":"kitchen","reason":"ttsSay"}"#,
    );
    assert_eq!(
        cmds.recv_timeout(WAIT).unwrap(),
        Command::SetListening(false)
    );
    sub.publish("hermes/asr/toggleOn", br#"{"siteId":"kitchen"}"#);
    assert_eq!(
        cmds.recv_timeout(WAIT).unwrap(),
        Command::SetListening(true)
    );
    assert!(
        cmds.recv_timeout(Duration::from_millis(300)).is_err(),
        "other site ignored"
    );
}
