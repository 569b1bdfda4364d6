//! Errors of the recogniser, named by what the caller should do about them.

use std::path::PathBuf;

/// Everything that can stop a model from loading or an utterance from being transcribed.
///
/// Every variant renders as one line naming the file, tensor or language at fault, so the CLI and the
/// daemon can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    /// A file of the exported model is missing, unreadable or not what the manifest says.
    /// Fix: re-export the model (`models/export.py`) or copy the directory again.
    #[error("model file {path}: {reason}")]
    ModelFile { path: PathBuf, reason: String },

    /// The manifest and the ONNX graph disagree (names, count or shapes of inputs/outputs).
    /// Fix: the directory mixes files of two exports; re-export.
    #[error("manifest {path} does not match the model: {reason}")]
    ManifestMismatch { path: PathBuf, reason: String },

    /// tract failed to load, optimise or run the graph.
    #[error("inference engine: {0}")]
    Engine(String),

    /// The language code is not one the model has a vocabulary for.
    #[error("unknown language {lang:?}{}", suggest(.suggestions))]
    UnknownLanguage {
        lang: String,
        suggestions: Vec<String>,
    },

    /// The model knows the language but its adapter is not on this machine.
    /// Fix: `edgescribe pull-adapters --languages LANG`, or export with `--languages`.
    #[error(
        "no adapter for language {lang:?} (looked at {}); get it with `edgescribe pull-adapters --languages {lang}`",
        paths(.searched)
    )]
    AdapterMissing {
        lang: String,
        searched: Vec<PathBuf>,
    },

    /// The adapter file exists but is corrupt or was made for another model.
    #[error("adapter {path}: {reason}")]
    BadAdapter { path: PathBuf, reason: String },

    /// The adapter source is not a usable URL template or path.
    /// Fix: an `https://` URL template with `{lang}`, a `file://` URL or a directory.
    #[error("adapter source {0}")]
    BadSource(String),

    /// Less audio than one window of the convolutional front end: nothing to recognise.
    #[error("audio too short: {samples} samples at 16 kHz, at least {min_samples} needed")]
    AudioTooShort { samples: usize, min_samples: usize },
}

fn suggest(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}

fn paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

impl AsrError {
    pub(crate) fn model_file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        AsrError::ModelFile {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn bad_adapter(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        AsrError::BadAdapter {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn engine(e: impl std::fmt::Display) -> Self {
        // tract's errors are anyhow chains: keep the whole chain, on one line.
        AsrError::Engine(format!("{e:#}"))
    }
}
