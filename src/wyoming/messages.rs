//! The events the server composes: `info`, `error`.

use serde_json::json;

use super::codec::Event;
use super::languages::LanguageMap;
use super::Backend;

/// The name of our one ASR program in `info`.
const PROGRAM: &str = "edgescribe";

pub fn error(text: &str, code: &str) -> Event {
    Event::new("error", json!({ "text": text, "code": code }))
}

/// A peer's string as we quote it back: at most 64 characters.
pub fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// `info`: one ASR program with one model, listing the configured languages as Home Assistant
/// names them.
pub fn info(backend: &dyn Backend) -> Event {
    let (loaded, _) = backend.languages();
    let languages = LanguageMap::new(loaded.iter().map(String::as_str)).advertised();
    let attribution = json!({
        "name": "Meta AI (MMS), edgescribe",
        "url": "https://huggingface.co/facebook/mms-1b-all",
    });
    let version = env!("CARGO_PKG_VERSION");
    Event::new(
        "info",
        json!({
            "asr": [{
                "name": PROGRAM,
                "attribution": attribution,
                "installed": true,
                "description": "edgescribe: offline MMS (wav2vec2 CTC) speech-to-text",
                "version": version,
                "models": [{
                    "name": backend.model_name(),
                    "attribution": attribution,
                    "installed": true,
                    "description": "MMS with per-language adapters",
                    "version": version,
                    "languages": languages,
                }],
                "supports_transcript_streaming": false,
            }],
        }),
    )
}
