//! What a pull found for each language: returned to the caller, logged, and published by the daemon.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// One language after [`super::AdapterStore::ensure`]. Serialises flat, e.g.
/// `{"lang":"ita","state":"missing","problem":"unreachable","detail":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LanguageStatus {
    pub lang: String,
    #[serde(flatten)]
    pub availability: Availability,
    /// A local copy (bundled or cached) that failed verification on the way, even if a good copy has
    /// replaced it since: worth a warning, a file was damaged or tampered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_local: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Availability {
    /// Shipped in the model directory and verified.
    Bundled { path: PathBuf },
    /// Already in the cache and verified.
    Cached { path: PathBuf },
    /// Fetched now, verified and moved into the cache.
    Fetched {
        path: PathBuf,
        bytes: u64,
        attempts: u32,
    },
    /// Not usable on this machine now.
    Missing { problem: Problem, detail: String },
}

/// Why a language is missing, by what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Offline, or the source is down or timing out: pull again later (SIGHUP, or the next start).
    Unreachable,
    /// No source is configured and no local copy exists: configure one, or copy the file in.
    NoSource,
    /// The source has no such file or refuses access: fix the source URL.
    NotAtSource,
    /// The source served a file that failed verification on every attempt, or whose tensors do not
    /// fit the model: the mirror holds the wrong file (or the model directory is from another export).
    Rejected,
    /// The cache could not be written: check its permissions and free space.
    CacheIo,
    /// The pull was cancelled (shutdown).
    Cancelled,
}

impl LanguageStatus {
    /// The verified adapter file to load, if there is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.availability {
            Availability::Bundled { path }
            | Availability::Cached { path }
            | Availability::Fetched { path, .. } => Some(path),
            Availability::Missing { .. } => None,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.path().is_some()
    }
}

impl std::fmt::Display for LanguageStatus {
    /// One line for logs and the command line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.availability {
            Availability::Bundled { path } => {
                write!(
                    f,
                    "{}: bundled with the model ({})",
                    self.lang,
                    path.display()
                )
            }
            Availability::Cached { path } => {
                write!(f, "{}: cached ({})", self.lang, path.display())
            }
            Availability::Fetched {
                path,
                bytes,
                attempts,
            } => write!(
                f,
                "{}: fetched {bytes} bytes in {attempts} attempt{} ({})",
                self.lang,
                if *attempts == 1 { "" } else { "s" },
                path.display()
            ),
            Availability::Missing { problem, detail } => {
                let what = match problem {
                    Problem::Unreachable => "source unreachable",
                    Problem::NoSource => "no source configured",
                    Problem::NotAtSource => "not at the source",
                    Problem::Rejected => "rejected",
                    Problem::CacheIo => "cache not writable",
                    Problem::Cancelled => "cancelled",
                };
                write!(f, "{}: MISSING, {what}: {detail}", self.lang)
            }
        }
    }
}

/// Progress and events of a pull. The daemon logs them ([`LogObserver`]); the command line draws
/// progress bars on a terminal. Every method has a no-op default.
pub trait PullObserver {
    /// A local copy failed verification and will not be used.
    fn rejected_local(&mut self, _lang: &str, _path: &Path, _why: &str) {}
    /// A download (attempt) starts; `from` > 0 when resuming a partial file.
    fn download_started(&mut self, _lang: &str, _from_url: &str, _from: u64, _total: u64) {}
    /// Bytes of the file on disk so far.
    fn download_progress(&mut self, _lang: &str, _done: u64) {}
    /// An attempt failed; the next one starts after `delay`.
    fn retrying(&mut self, _lang: &str, _attempt: u32, _delay: std::time::Duration, _error: &str) {}
    /// The language's final state.
    fn finished(&mut self, _status: &LanguageStatus) {}
}

/// Plain log lines (`log` crate → stderr → journald): what the daemon and a non-terminal use.
#[derive(Debug, Default)]
pub struct LogObserver;

impl PullObserver for LogObserver {
    fn rejected_local(&mut self, lang: &str, path: &Path, why: &str) {
        log::warn!("adapter {lang}: {} rejected: {why}", path.display());
    }

    fn download_started(&mut self, lang: &str, from_url: &str, from: u64, total: u64) {
        if from > 0 {
            log::info!("adapter {lang}: resuming {from_url} at byte {from} of {total}");
        } else {
            log::info!("adapter {lang}: fetching {from_url} ({total} bytes)");
        }
    }

    fn retrying(&mut self, lang: &str, attempt: u32, delay: std::time::Duration, error: &str) {
        log::warn!(
            "adapter {lang}: attempt {attempt} failed ({error}); retrying in {} ms",
            delay.as_millis()
        );
    }

    fn finished(&mut self, status: &LanguageStatus) {
        if status.is_ready() {
            log::info!("adapter {status}");
        } else {
            log::warn!("adapter {status}");
        }
    }
}
