//! The smaller tables of the configuration. `[vad]` and `[mqtt]` live with their modules.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::asr::store::{cache, RetryPolicy, DEFAULT_SOURCE};
use crate::asr::threads::MAX_THREADS;
use crate::audio::alsa::AlsaConfig;
use crate::audio::capture::{ChannelMode, ReopenDelays};

type Check = Result<(), (String, String)>;

/// [`within`](super::within), naming `key`.
fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Check {
    super::within(value, range).map_err(|reason| (key.to_string(), reason))
}

fn bad(key: &str, reason: impl Into<String>) -> Check {
    Err((key.to_string(), reason.into()))
}

/// `[model]`: the exported MMS model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Directory written by `models/export.py`. Absent: `$EDGESCRIBE_MODEL`, then
    /// `/usr/share/edgescribe/model`, then, for a binary run from the source tree (`cargo run`),
    /// the model bundled there.
    pub dir: Option<PathBuf>,
    /// Threads for inference; 0: fitted to the board ([`crate::asr::threads::default_threads`]:
    /// the fast cores only, one left for the rest of the daemon when those are all it may use).
    pub threads: usize,
}

impl ModelConfig {
    pub(super) fn validate(&self) -> Check {
        if self.threads > MAX_THREADS {
            return bad(
                "threads",
                format!("must be 0 (fitted to the board) to {MAX_THREADS}"),
            );
        }
        Ok(())
    }

    /// Threads to give the engine.
    pub fn threads(&self) -> usize {
        if self.threads == 0 {
            crate::asr::threads::default_threads()
        } else {
            self.threads
        }
    }

    /// The model directory: `dir` when set (`--model` sets it too), else the first of
    /// `$EDGESCRIBE_MODEL`, the system-wide install (`/usr/share/edgescribe/model`) and, for a
    /// binary run from the source tree only, the model bundled there, that holds an export (a
    /// `manifest.json`): see [`super::model_dir`].
    pub fn resolve_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(dir) => Ok(dir.clone()),
            None => super::model_dir::Lookup::this_process().resolve(),
        }
    }
}

/// `[adapters]`: where the languages' adapters come from and where they are kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptersConfig {
    /// URL template with `{lang}`, a base URL or directory holding `adapter.<lang>.safetensors`,
    /// or a `file://` URL. Empty: never fetch; only bundled and cached adapters are used.
    pub source: String,
    /// Absent: `$STATE_DIRECTORY/adapters` under systemd, else `/var/lib/edgescribe/adapters` if
    /// `/var/lib/edgescribe` exists, else `~/.cache/edgescribe/adapters`.
    pub cache_dir: Option<PathBuf>,
    /// Attempts per language before it is reported missing (the daemon keeps running without it).
    pub attempts: u32,
    /// First wait before a retry; doubles per retry up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for AdaptersConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        AdaptersConfig {
            source: DEFAULT_SOURCE.to_string(),
            cache_dir: None,
            attempts: retry.attempts,
            retry_initial_ms: retry.initial_delay.as_millis() as u64,
            retry_max_ms: retry.max_delay.as_millis() as u64,
        }
    }
}

impl AdaptersConfig {
    pub(super) fn validate(&self) -> Check {
        in_range("attempts", self.attempts, 1..=100)?;
        // Above 0: retrying at once hammers the source. Up to an hour / a day: beyond, a missing
        // language would in effect never be retried.
        in_range("retry_initial_ms", self.retry_initial_ms, 1..=3_600_000)?;
        in_range(
            "retry_max_ms",
            self.retry_max_ms,
            self.retry_initial_ms..=86_400_000,
        )
    }

    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.attempts,
            initial_delay: Duration::from_millis(self.retry_initial_ms),
            max_delay: Duration::from_millis(self.retry_max_ms),
        }
    }

    /// The fetch source, `None` when fetching is off.
    pub fn source(&self) -> Option<String> {
        Some(self.source.trim().to_string()).filter(|s| !s.is_empty())
    }

    pub fn cache_root(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(cache::default_root)
    }
}

/// `[audio]`: the microphone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// ALSA PCM name (`edgescribe devices` lists them): `default`, `plughw:CARD=Device,DEV=0`,
    /// `dsnoop:...` to share the microphone with other programs; `none`: no microphone (a node
    /// that only serves Wyoming clients).
    pub device: String,
    /// `"mix"` averages all channels; a number (0-based) takes that channel only.
    pub channel: ChannelMode,
    /// One read's worth of audio: the capture thread wakes every `period_ms`.
    pub period_ms: u32,
    /// Periods in the device's buffer: how late a read may be before audio is lost (an overrun).
    /// Latency budget: capture adds at most `period_ms`; the buffer only absorbs stalls.
    pub buffer_periods: u32,
    /// Busy or unplugged device: first wait before opening it again; doubles up to `reopen_max_ms`.
    pub reopen_initial_ms: u64,
    pub reopen_max_ms: u64,
}

impl Default for AudioConfig {
    fn default() -> Self {
        let alsa = AlsaConfig::default();
        AudioConfig {
            device: alsa.device,
            channel: alsa.channel,
            period_ms: alsa.period_ms,
            buffer_periods: alsa.buffer_periods,
            reopen_initial_ms: alsa.reopen.initial.as_millis() as u64,
            reopen_max_ms: alsa.reopen.max.as_millis() as u64,
        }
    }
}

impl AudioConfig {
    pub(super) fn validate(&self) -> Check {
        if self.device.trim().is_empty() {
            return bad("device", "must name an ALSA PCM, e.g. \"default\"");
        }
        if let ChannelMode::Pick(c) = self.channel {
            if c > 63 {
                return bad("channel", "must be \"mix\" or a channel number 0..63");
            }
        }
        if !(5..=200).contains(&self.period_ms) {
            return bad("period_ms", "must be between 5 and 200");
        }
        if !(2..=64).contains(&self.buffer_periods) {
            return bad("buffer_periods", "must be between 2 and 64");
        }
        in_range("reopen_initial_ms", self.reopen_initial_ms, 1..=60_000)?;
        // A microphone back after an hour at most: a longer wait only delays capture.
        in_range(
            "reopen_max_ms",
            self.reopen_max_ms,
            self.reopen_initial_ms..=3_600_000,
        )
    }

    pub fn alsa(&self) -> AlsaConfig {
        AlsaConfig {
            device: self.device.clone(),
            channel: self.channel,
            period_ms: self.period_ms,
            buffer_periods: self.buffer_periods,
            reopen: ReopenDelays {
                initial: Duration::from_millis(self.reopen_initial_ms),
                max: Duration::from_millis(self.reopen_max_ms),
            },
        }
    }
}

/// `[recognizer]`: the queue in front of the recogniser and shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecognizerConfig {
    /// Utterances waiting for the recogniser. When it falls behind and the queue is full, the
    /// oldest waiting utterance is dropped (counted in `…/stats` as `dropped_utterances`).
    pub queue_utterances: usize,
    /// On SIGTERM, how long the utterances in flight may take to be transcribed and delivered
    /// before the daemon exits anyway (keep it below systemd's `TimeoutStopSec`).
    pub drain_timeout_s: u64,
}

impl Default for RecognizerConfig {
    fn default() -> Self {
        RecognizerConfig {
            queue_utterances: 8,
            drain_timeout_s: 20,
        }
    }
}

impl RecognizerConfig {
    pub(super) fn validate(&self) -> Check {
        if !(1..=1000).contains(&self.queue_utterances) {
            return bad("queue_utterances", "must be between 1 and 1000");
        }
        if !(1..=3600).contains(&self.drain_timeout_s) {
            return bad("drain_timeout_s", "must be between 1 and 3600");
        }
        Ok(())
    }
}

/// `[record]`: keep each utterance as a WAV beside its transcript, for debugging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Directory for `<time>-<seq>.wav` + `.json` pairs. Absent: nothing is recorded.
    pub dir: Option<PathBuf>,
    /// Disk the recordings may use; the oldest pairs are deleted beyond it.
    pub max_mb: u64,
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            dir: None,
            max_mb: 200,
        }
    }
}

impl RecordConfig {
    pub(super) fn validate(&self) -> Check {
        // 1 TB at most: bytes = max_mb × 10^6 must not overflow, and no board has more disk.
        in_range("max_mb", self.max_mb, 1..=1_000_000)
    }
}
