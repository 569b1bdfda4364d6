//! Topic names: built once from the configuration, pure.

/// Every topic the node publishes to or subscribes to.
///
/// `base` is `<prefix>/<device_id>`; see `docs/mqtt.md` for what travels on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub base: String,
    /// One JSON message per utterance, QoS 1, not retained.
    pub transcript: String,
    /// Retained `online`/`offline`; `offline` is also the Last Will.
    pub status: String,
    /// Periodic JSON counters.
    pub stats: String,
    /// Retained JSON: active language, listening, last command error.
    pub state: String,
    /// Retained JSON: each configured language's adapter, ready or missing and why.
    pub languages: String,
    pub set_language: String,
    pub set_listening: String,
    /// JSON list of phrases: phrase mode for the active language (`[]`: off).
    pub set_phrases: String,
    /// Home Assistant's birth/will topic (`<discovery_prefix>/status`).
    pub ha_status: String,
    pub hermes_text_captured: &'static str,
    pub hermes_toggle_on: &'static str,
    pub hermes_toggle_off: &'static str,
}

impl Topics {
    /// `prefix` and `device_id` must have been checked by [`check_prefix`] and [`check_level`].
    pub fn new(prefix: &str, device_id: &str, ha_discovery_prefix: &str) -> Topics {
        let base = format!("{prefix}/{device_id}");
        Topics {
            transcript: format!("{base}/transcript"),
            status: format!("{base}/status"),
            stats: format!("{base}/stats"),
            state: format!("{base}/state"),
            languages: format!("{base}/languages"),
            set_language: format!("{base}/set/language"),
            set_listening: format!("{base}/set/listening"),
            set_phrases: format!("{base}/set/phrases"),
            ha_status: format!("{ha_discovery_prefix}/status"),
            hermes_text_captured: "hermes/asr/textCaptured",
            hermes_toggle_on: "hermes/asr/toggleOn",
            hermes_toggle_off: "hermes/asr/toggleOff",
            base,
        }
    }
}

/// Checks a topic prefix such as `edgescribe` or `home/voice`: one or more non-empty levels, no
/// wildcards, no NUL (MQTT 3.1.1 §4.7). Returns what is wrong.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("must not be empty".into());
    }
    for level in prefix.split('/') {
        check_level(level)?;
    }
    Ok(())
}

/// Checks one topic level (a device id, a discovery node id): non-empty, no `/`, no wildcard, no NUL,
/// and no leading `$` (reserved for broker topics such as `$SYS`).
pub fn check_level(level: &str) -> Result<(), String> {
    if level.is_empty() {
        return Err("has an empty topic level".into());
    }
    if let Some(c) = level.chars().find(|c| matches!(c, '/' | '+' | '#' | '\0')) {
        return Err(format!(
            "{level:?} contains {c:?}, not allowed in an MQTT topic level"
        ));
    }
    if level.starts_with('$') {
        return Err(format!(
            "{level:?} starts with '$', reserved for broker topics"
        ));
    }
    Ok(())
}

/// Home Assistant accepts only `[a-zA-Z0-9_-]` in discovery node and object ids: anything else becomes `_`.
pub fn ha_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_hang_off_prefix_and_device() {
        let t = Topics::new("home/voice", "kitchen-pi", "homeassistant");
        assert_eq!(t.transcript, "home/voice/kitchen-pi/transcript");
        assert_eq!(t.status, "home/voice/kitchen-pi/status");
        assert_eq!(t.set_language, "home/voice/kitchen-pi/set/language");
        assert_eq!(t.ha_status, "homeassistant/status");
    }

    #[test]
    fn prefix_and_levels_reject_wildcards_and_empty_levels() {
        assert!(check_prefix("edgescribe").is_ok());
        assert!(check_prefix("home/voice").is_ok());
        for bad in ["", "/x", "x/", "a//b", "a/+/b", "a#", "$SYS"] {
            assert!(check_prefix(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_level("kitchen.pi").is_ok());
        for bad in ["", "a/b", "+", "#", "x\0", "$x"] {
            assert!(check_level(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ha_ids_are_sanitised() {
        assert_eq!(ha_id("kitchen.pi ü"), "kitchen_pi__");
        assert_eq!(ha_id("a-b_C9"), "a-b_C9");
    }
}
