//! Finding keys and lines in the configuration text, so errors point at what to edit. Pure.
//!
//! Only the plain layout the example uses is understood (`[table]` headers, `key = value` lines);
//! anything else just yields no line, never a wrong one.

/// A position in the document, 1-based, with the dotted key written on that line if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub key: Option<String>,
}

/// `[name]` or `[[name]]` → `name`.
fn header(line: &str) -> Option<&str> {
    let t = line.trim();
    let inner = t.strip_prefix('[')?;
    let end = inner.find(']')?;
    Some(inner[..end].trim_matches(|c| c == '[' || c == ']').trim())
}

/// `key = value` → `key` (bare or quoted).
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty()).then_some(k)
}

fn dotted(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

/// Line (and key on it) of byte `offset` in `text`.
pub fn position(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let index = before.matches('\n').count();
    let mut table = "";
    for line in text.lines().take(index) {
        if let Some(h) = header(line) {
            table = h;
        }
    }
    let line = text.lines().nth(index).unwrap_or("");
    let key = match header(line) {
        Some(h) => Some(h.to_string()),
        None => key_of(line).map(|k| dotted(table, k)),
    };
    Position {
        line: index + 1,
        key,
    }
}

/// 1-based line where the dotted `key` (`vad.hangover_ms`, `languages`) is set, if it is.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut table = "";
    for (i, line) in text.lines().enumerate() {
        if let Some(h) = header(line) {
            table = h;
            continue;
        }
        if key_of(line).is_some_and(|k| dotted(table, k) == key) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "languages = [\"eng\"]\n\n[vad]\n# hangover_ms = 1\nhangover_ms = 10\n[mqtt]\n  \"prefix\" = \"x\"\n";

    #[test]
    fn finds_keys_in_tables() {
        assert_eq!(line_of_key(DOC, "languages"), Some(1));
        assert_eq!(line_of_key(DOC, "vad.hangover_ms"), Some(5));
        assert_eq!(line_of_key(DOC, "mqtt.prefix"), Some(7));
        assert_eq!(line_of_key(DOC, "mqtt.broker"), None);
        assert_eq!(line_of_key(DOC, "hangover_ms"), None);
    }

    #[test]
    fn positions_name_the_key() {
        let at = DOC.find("10").unwrap();
        assert_eq!(
            position(DOC, at),
            Position {
                line: 5,
                key: Some("vad.hangover_ms".into())
            }
        );
        assert_eq!(position(DOC, 0).key.as_deref(), Some("languages"));
        assert_eq!(
            position(DOC, DOC.find("[mqtt]").unwrap()).key.as_deref(),
            Some("mqtt")
        );
        // Past the end: clamped, no panic.
        assert_eq!(position(DOC, 10_000).line, 8);
    }
}
