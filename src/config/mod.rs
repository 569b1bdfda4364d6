//! The daemon's configuration: one TOML file, typed, defaulted and validated before anything starts.
//!
//! Every table denies unknown keys, every key has a default (see `systemd/edgescribe.toml`, which
//! `edgescribe print-default-config` prints), units are in the names. Errors name the key as it is
//! written in the file (`vad.hangover_ms`) and, when the file has it, its line. No key holds a secret:
//! the MQTT password comes from a file or an environment variable named here.

mod locate;
mod model_dir;
mod overrides;
mod range;
mod tables;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::mqtt::MqttConfig;
use crate::vad::VadConfig;

pub use overrides::Overrides;
pub use range::{within, MAX_LEVEL_BYTES, MAX_PREFIX_BYTES};
pub use tables::{AdaptersConfig, AudioConfig, ModelConfig, RecognizerConfig, RecordConfig};

/// The documented example configuration, every option shown with its default.
pub const EXAMPLE: &str = include_str!("../../systemd/edgescribe.toml");

/// The most languages a node may list: MMS has 1162, and each listed language is an adapter to keep.
pub const MAX_LANGUAGES: usize = 2000;

/// Where the service looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/edgescribe/edgescribe.toml";

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// MMS language codes this node recognises; the first is active at start. Only these adapters
    /// are pulled. Empty: the model's default language alone.
    pub languages: Vec<String>,
    pub model: ModelConfig,
    pub adapters: AdaptersConfig,
    pub audio: AudioConfig,
    pub vad: VadConfig,
    pub recognizer: RecognizerConfig,
    pub mqtt: MqttConfig,
    pub record: RecordConfig,
    /// The Wyoming speech-to-text server for Home Assistant (off unless `listen` is set).
    pub wyoming: crate::wyoming::WyomingConfig,
    pub decoder: crate::asr::decode::DecoderConfig,
}

/// A configuration that cannot be used: where (file, line, key) and why, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{reason}", location(.file, .line), key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    /// Dotted path of the key, as written in the file (`mqtt.keep_alive_s`).
    pub key: Option<String>,
    pub reason: String,
}

fn location(file: &Option<PathBuf>, line: &Option<usize>) -> String {
    match (file, line) {
        (Some(f), Some(l)) => format!("{}:{l}: ", f.display()),
        (Some(f), None) => format!("{}: ", f.display()),
        (None, Some(l)) => format!("line {l}: "),
        (None, None) => String::new(),
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: None,
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses and validates a whole document.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| locate::position(text, s.start));
            ConfigError {
                file: None,
                line: at.as_ref().map(|p| p.line),
                key: at.and_then(|p| p.key),
                reason: e.message().trim().replace('\n', "; "),
            }
        })?;
        config.validate().map_err(|(key, reason)| ConfigError {
            file: None,
            line: locate::line_of_key(text, &key),
            key: Some(key),
            reason,
        })?;
        Ok(config)
    }

    /// Checks what the types cannot: ranges, combinations, codes. The key is returned dotted.
    pub fn validate(&self) -> Result<(), (String, String)> {
        within(self.languages.len(), 0..=MAX_LANGUAGES).map_err(|r| {
            (
                "languages".to_string(),
                format!("lists {} codes: {r}", self.languages.len()),
            )
        })?;
        let mut seen = std::collections::HashSet::with_capacity(self.languages.len());
        for lang in &self.languages {
            let ok = (2..=12).contains(&lang.len())
                && lang
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !ok {
                return Err((
                    "languages".into(),
                    format!("{lang:?} is not an MMS language code (lower-case ISO 639-3 such as \"eng\")"),
                ));
            }
            if !seen.insert(lang) {
                return Err(("languages".into(), format!("{lang:?} is listed twice")));
            }
        }
        self.model
            .validate()
            .map_err(|(k, r)| (format!("model.{k}"), r))?;
        self.adapters
            .validate()
            .map_err(|(k, r)| (format!("adapters.{k}"), r))?;
        self.audio
            .validate()
            .map_err(|(k, r)| (format!("audio.{k}"), r))?;
        self.vad
            .validate()
            .map_err(|e| (format!("vad.{}", e.field), e.reason))?;
        self.recognizer
            .validate()
            .map_err(|(k, r)| (format!("recognizer.{k}"), r))?;
        self.mqtt
            .validate()
            .map_err(|e| (format!("mqtt.{}", e.key), e.reason))?;
        self.record
            .validate()
            .map_err(|(k, r)| (format!("record.{k}"), r))?;
        self.wyoming
            .validate()
            .map_err(|(k, r)| (format!("wyoming.{k}"), r))?;
        self.decoder
            .validate()
            .map_err(|(k, r)| (format!("decoder.{k}"), r))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
