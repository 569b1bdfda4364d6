//! Commands arriving over MQTT: topic and payload in, a typed command or a rejection out. Pure.
//!
//! Everything here is reachable by anyone who can publish to the broker, so nothing may panic,
//! allocate without bound or echo a payload back unabridged.

use serde::Deserialize;

use super::topics::Topics;

/// What the daemon is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Switch to one of the configured (already validated) languages.
    SetLanguage(String),
    /// `false` mutes recognition without stopping the daemon.
    SetListening(bool),
    /// Phrase mode for the active language with these sentences (normalised: lower case, single
    /// spaces); empty: back to the configured decoding.
    SetPhrases(Vec<String>),
}

/// A parsed incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// For the daemon.
    Command(Command),
    /// Home Assistant (re)started: announce the entities again.
    HomeAssistantOnline,
    /// Well-formed but not for us (another Hermes site, HA going offline).
    Ignored,
}

/// Why a command was rejected; rendered into `…/state`'s `error.message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("payload is empty")]
    Empty,
    #[error("payload is {len} bytes, at most {max} accepted")]
    TooLong { len: usize, max: usize },
    #[error("unknown language {lang}; configured: {}", .configured.join(", "))]
    UnknownLanguage {
        /// Quoted and shortened copy of what was sent.
        lang: String,
        configured: Vec<String>,
    },
    #[error("expected on or off, got {0}")]
    BadListening(String),
    #[error("expected a Hermes JSON object: {0}")]
    BadJson(String),
    #[error("no command on topic {0}")]
    UnknownTopic(String),
    #[error("expected a JSON list of at most {MAX_PHRASES} phrases of at most {MAX_PHRASE_CHARS} characters: {0}")]
    BadPhrases(String),
}

/// Commands are short words; anything longer is garbage or an attack.
pub const MAX_COMMAND_BYTES: usize = 1024;
/// `…/set/phrases`: a JSON list of sentences, bounded in bytes, count and length.
pub const MAX_PHRASES_BYTES: usize = 64 * 1024;
pub const MAX_PHRASES: usize = 1000;
pub const MAX_PHRASE_CHARS: usize = 200;

/// What the parser needs to know about the node.
#[derive(Debug, Clone)]
pub struct ParseContext<'a> {
    pub topics: &'a Topics,
    pub languages: &'a [String],
    pub hermes: bool,
    pub site_id: &'a str,
}

/// Classifies a message received on one of the subscribed topics.
pub fn parse_incoming(
    topic: &str,
    payload: &[u8],
    ctx: &ParseContext<'_>,
) -> Result<Incoming, CommandError> {
    let t = ctx.topics;
    if topic == t.ha_status {
        // HA's own birth/will message: never an error of ours, whatever it says.
        return Ok(match payload {
            b"online" => Incoming::HomeAssistantOnline,
            _ => Incoming::Ignored,
        });
    }
    let max = if topic == t.set_phrases {
        MAX_PHRASES_BYTES
    } else {
        MAX_COMMAND_BYTES
    };
    if payload.len() > max {
        return Err(CommandError::TooLong {
            len: payload.len(),
            max,
        });
    }
    let text = std::str::from_utf8(payload).map_err(|_| CommandError::NotUtf8)?;
    if topic == t.set_phrases {
        return parse_phrases(text).map(|p| Incoming::Command(Command::SetPhrases(p)));
    }
    if topic == t.set_language {
        let lang = non_empty(text)?;
        return match ctx.languages.iter().find(|l| l.as_str() == lang) {
            Some(l) => Ok(Incoming::Command(Command::SetLanguage(l.clone()))),
            None => Err(CommandError::UnknownLanguage {
                lang: quote(lang),
                configured: ctx.languages.to_vec(),
            }),
        };
    }
    if topic == t.set_listening {
        let word = non_empty(text)?;
        return parse_on_off(word)
            .map(|on| Incoming::Command(Command::SetListening(on)))
            .ok_or_else(|| CommandError::BadListening(quote(word)));
    }
    if ctx.hermes && (topic == t.hermes_toggle_on || topic == t.hermes_toggle_off) {
        let on = topic == t.hermes_toggle_on;
        let toggle = parse_hermes_toggle(text)?;
        if toggle.site_id != ctx.site_id {
            return Ok(Incoming::Ignored);
        }
        return Ok(Incoming::Command(Command::SetListening(on)));
    }
    Err(CommandError::UnknownTopic(quote(topic)))
}

fn non_empty(text: &str) -> Result<&str, CommandError> {
    match text.trim() {
        "" => Err(CommandError::Empty),
        t => Ok(t),
    }
}

/// `["turn on the light", …]`: each phrase lower-cased with single spaces; empty ones refused.
fn parse_phrases(text: &str) -> Result<Vec<String>, CommandError> {
    // Not serde's message: it may quote the payload.
    let list: Vec<String> = serde_json::from_str(text).map_err(|e| {
        CommandError::BadPhrases(match e.classify() {
            serde_json::error::Category::Data => "not a list of strings".into(),
            _ => format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        })
    })?;
    if list.len() > MAX_PHRASES {
        return Err(CommandError::BadPhrases(format!("{} phrases", list.len())));
    }
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let words: Vec<String> = p.split_whitespace().map(str::to_lowercase).collect();
            let phrase = words.join(" ");
            let n = phrase.chars().count();
            if n == 0 || n > MAX_PHRASE_CHARS {
                return Err(CommandError::BadPhrases(format!(
                    "phrase {} is empty or {n} characters",
                    i + 1
                )));
            }
            Ok(phrase)
        })
        .collect()
}

/// `on`/`off` as documented, plus the spellings Home Assistant and Node-RED send by default.
fn parse_on_off(word: &str) -> Option<bool> {
    const ON: [&str; 4] = ["on", "true", "1", "yes"];
    const OFF: [&str; 4] = ["off", "false", "0", "no"];
    if ON.iter().any(|w| w.eq_ignore_ascii_case(word)) {
        Some(true)
    } else if OFF.iter().any(|w| w.eq_ignore_ascii_case(word)) {
        Some(false)
    } else {
        None
    }
}

/// Hermes `AsrToggleOn`/`AsrToggleOff`: `{"siteId": "default", "reason": "…"}`, every key optional.
/// An empty payload counts as `{}` (some tools send nothing).
#[derive(Debug, Deserialize)]
struct HermesToggle {
    #[serde(rename = "siteId", default = "default_site")]
    site_id: String,
}

fn default_site() -> String {
    "default".into()
}

fn parse_hermes_toggle(text: &str) -> Result<HermesToggle, CommandError> {
    if text.trim().is_empty() {
        return Ok(HermesToggle {
            site_id: default_site(),
        });
    }
    // Not serde's message: it quotes the offending value, which may be a whole payload.
    serde_json::from_str(text).map_err(|e| {
        CommandError::BadJson(match e.classify() {
            serde_json::error::Category::Data => "siteId must be a string".into(),
            _ => format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        })
    })
}

/// A payload fragment safe to put in an error message: escaped, at most about 64 bytes however
/// many escapes the input needs (found by the fuzz test: 32 characters of `\u{3347a}` are 300
/// bytes).
fn quote(s: &str) -> String {
    const MAX_BYTES: usize = 64;
    let mut out = String::from("\"");
    for c in s.chars() {
        let escaped: String = c.escape_debug().collect();
        if out.len() + escaped.len() > MAX_BYTES {
            out.push_str("\"…");
            return out;
        }
        out.push_str(&escaped);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// JSON payloads holding long strings, as values or keys, valid or cut short: the
        /// rejection never carries more than a short quote of them (the error lands on a
        /// retained topic, in the log and on Home Assistant).
        #[test]
        fn rejections_never_echo_long_json_strings(
            long in "[a-zA-Z0-9 \\\"\u{e9}\u{1f600}]{200,1000}",
            shape in 0..5usize,
            cut in 0..1100usize,
        ) {
            let value = serde_json::Value::String(long.clone()).to_string();
            let payload = match shape {
                0 => format!("{{\"siteId\": {value}}}"),
                1 => format!("{{{value}: 1}}"),
                2 => format!("[{value}]"),
                3 => value.clone(),
                _ => format!("{{\"siteId\": {value}, \"reason\": 3"),
            };
            let payload = &payload.as_bytes()[..cut.min(payload.len())];
            for topic in ["hermes/asr/toggleOn", LANG, LISTEN, "edgescribe/pi/set/other"] {
                if let Err(e) = ctx_parse(topic, payload, true) {
                    let shown = e.to_string();
                    prop_assert!(shown.len() <= 200, "{} bytes: {}", shown.len(), shown);
                }
            }
        }
    }

    fn ctx_parse(topic: &str, payload: &[u8], hermes: bool) -> Result<Incoming, CommandError> {
        let topics = Topics::new("edgescribe", "pi", "homeassistant");
        let langs = vec!["eng".to_string(), "fra".to_string()];
        let ctx = ParseContext {
            topics: &topics,
            languages: &langs,
            hermes,
            site_id: "kitchen",
        };
        parse_incoming(topic, payload, &ctx)
    }

    const LANG: &str = "edgescribe/pi/set/language";
    const LISTEN: &str = "edgescribe/pi/set/listening";

    #[test]
    fn set_language_accepts_configured_languages_only() {
        assert_eq!(
            ctx_parse(LANG, b" fra\n", false),
            Ok(Incoming::Command(Command::SetLanguage("fra".into())))
        );
        let e = ctx_parse(LANG, b"deu", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown language \"deu\"; configured: eng, fra"
        );
        assert_eq!(ctx_parse(LANG, b"  ", false), Err(CommandError::Empty));
        assert_eq!(
            ctx_parse(LANG, &[0xff, 0xfe], false),
            Err(CommandError::NotUtf8)
        );
    }

    #[test]
    fn set_phrases_takes_a_bounded_json_list() {
        const PHRASES: &str = "edgescribe/pi/set/phrases";
        assert_eq!(
            ctx_parse(
                PHRASES,
                br#"["Turn ON  the light", "what time is it"]"#,
                false
            ),
            Ok(Incoming::Command(Command::SetPhrases(vec![
                "turn on the light".into(),
                "what time is it".into()
            ])))
        );
        assert_eq!(
            ctx_parse(PHRASES, b"[]", false),
            Ok(Incoming::Command(Command::SetPhrases(vec![])))
        );
        // Bigger than other commands may be, but bounded.
        let many: Vec<String> = (0..900).map(|i| format!("phrase {i}")).collect();
        let json = serde_json::to_vec(&many).unwrap();
        assert!(json.len() > MAX_COMMAND_BYTES);
        assert!(ctx_parse(PHRASES, &json, false).is_ok());
        let too_many: Vec<&str> = vec!["x"; MAX_PHRASES + 1];
        let e = ctx_parse(PHRASES, &serde_json::to_vec(&too_many).unwrap(), false).unwrap_err();
        assert!(matches!(e, CommandError::BadPhrases(_)), "{e}");
        let long = serde_json::to_vec(&["y".repeat(MAX_PHRASE_CHARS + 1)]).unwrap();
        assert!(ctx_parse(PHRASES, &long, false).is_err());
        let huge = vec![b' '; MAX_PHRASES_BYTES + 1];
        assert!(matches!(
            ctx_parse(PHRASES, &huge, false),
            Err(CommandError::TooLong { .. })
        ));
        for bad in [&b"\"turn on\""[..], b"[1, 2]", b"[\"a\", ", b"[\"  \"]"] {
            let e = ctx_parse(PHRASES, bad, false).unwrap_err();
            assert!(matches!(e, CommandError::BadPhrases(_)), "{e}");
            assert!(e.to_string().len() < 200, "{e}");
        }
    }

    #[test]
    fn set_listening_spellings() {
        for (p, on) in [
            ("on", true),
            ("OFF", false),
            ("ON", true),
            ("true", true),
            ("0", false),
        ] {
            assert_eq!(
                ctx_parse(LISTEN, p.as_bytes(), false),
                Ok(Incoming::Command(Command::SetListening(on))),
                "{p}"
            );
        }
        assert!(matches!(
            ctx_parse(LISTEN, b"maybe", false),
            Err(CommandError::BadListening(_))
        ));
    }

    #[test]
    fn long_payloads_are_rejected_and_never_echoed_in_full() {
        let long = vec![b'a'; 5000];
        assert_eq!(
            ctx_parse(LANG, &long, false),
            Err(CommandError::TooLong {
                len: 5000,
                max: MAX_COMMAND_BYTES
            })
        );
        let e = ctx_parse(LANG, &[b'x'; 500], false)
            .unwrap_err()
            .to_string();
        assert!(e.len() < 120, "{e}");
    }

    #[test]
    fn hermes_toggles_only_when_enabled_and_for_our_site() {
        let on = "hermes/asr/toggleOn";
        let off = "hermes/asr/toggleOff";
        assert!(matches!(
            ctx_parse(on, br#"{"siteId":"kitchen"}"#, false),
            Err(CommandError::UnknownTopic(_))
        ));
        assert_eq!(
            ctx_parse(off, br#"{"siteId":"kitchen","reason":"ttsSay"}"#, true),
            Ok(Incoming::Command(Command::SetListening(false)))
        );
        assert_eq!(
            ctx_parse(on, br#"{"siteId":"hall"}"#, true),
            Ok(Incoming::Ignored)
        );
        // No siteId means Hermes' "default", which is not ours.
        assert_eq!(ctx_parse(on, b"{}", true), Ok(Incoming::Ignored));
        assert!(matches!(
            ctx_parse(on, b"[1,2", true),
            Err(CommandError::BadJson(_))
        ));
        assert!(matches!(
            ctx_parse(on, br#"{"siteId":3}"#, true),
            Err(CommandError::BadJson(_))
        ));
    }

    #[test]
    fn home_assistant_status() {
        assert_eq!(
            ctx_parse("homeassistant/status", b"online", false),
            Ok(Incoming::HomeAssistantOnline)
        );
        assert_eq!(
            ctx_parse("homeassistant/status", b"offline", false),
            Ok(Incoming::Ignored)
        );
        assert_eq!(
            ctx_parse("homeassistant/status", &[0xff; 4000], false),
            Ok(Incoming::Ignored)
        );
    }
}
