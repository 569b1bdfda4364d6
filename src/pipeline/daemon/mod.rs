//! `edgescribe run`: the daemon, one [`Daemon`] value. Start-up in named steps (`startup`), then
//! the control loop on the main thread ([`Daemon::serve`]), then an orderly stop (`stop`).
//!
//! Threads: `audio-capture` → ring → `vad` → bounded utterance queue → `asr` → MQTT outbox →
//! `mqtt-eventloop`; `record` beside `asr`; `signals` and `mqtt-commands` feed the control loop,
//! which owns every decision: MQTT commands and adapter pulls (`control`), SIGHUP reloads that swap
//! all or nothing (`reload`), stats, the watchdog, and stopping.

mod control;
mod reload;
mod startup;
mod stop;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::asr::store::{AdapterStore, LanguageStatus};
use crate::asr::Engine;
use crate::config::{Config, Overrides, DEFAULT_PATH};
use crate::mqtt::Command;
use crate::retry::Cancel;
use crate::service::{Notifier, Signal, Signals, Watchdog};

use super::languages::Loaded;
use super::listen::Listener;
use super::recognize::AsrShared;
use super::stats::StatsWindow;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `None`: `/etc/edgescribe/edgescribe.toml` if it exists, else the defaults.
    pub config_path: Option<PathBuf>,
    pub overrides: Overrides,
    /// A recording instead of the microphone; the daemon exits once it is transcribed and delivered.
    pub input: Option<PathBuf>,
    pub realtime: bool,
}

impl RunOptions {
    fn config_file(&self) -> Option<PathBuf> {
        self.config_path
            .clone()
            .or_else(|| Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.is_file()))
    }

    /// The file (if any) with the flags applied, validated.
    pub fn load_config(&self) -> Result<Config> {
        let mut config = match self.config_file() {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        };
        self.overrides.apply(&mut config);
        config.validate().map_err(|(key, reason)| {
            anyhow::anyhow!("{key}: {reason} (after command-line flags)")
        })?;
        Ok(config)
    }
}

/// What wakes the control loop.
enum Event {
    Signal(Signal),
    Command(Command),
    /// The `asr` thread ended: the input is exhausted (a file) or capture stopped.
    AsrDone,
    /// A pull started by the control loop finished.
    Pulled {
        /// The language to activate once loaded (a `set/language` command), if any.
        activate: Option<String>,
        result: Result<Loaded, String>,
    },
}

/// The running daemon: every stage it started, and what the control loop decides with.
pub struct Daemon {
    options: RunOptions,
    /// The configuration in force (what the last successful start or reload applied).
    config: Config,
    engine: Arc<Engine>,
    store: Arc<AdapterStore>,
    /// Cancelled by the first stop signal: ends adapter pulls and their backoff sleeps.
    cancel: Cancel,
    shared: Arc<AsrShared>,
    listener: Listener,
    asr: JoinHandle<()>,
    events: SyncSender<Event>,
    /// Where the control loop reads `events` from; taken by [`Daemon::serve`].
    inbox: Option<Receiver<Event>>,
    /// Kept for the daemon's lifetime: dropping it would stop signal delivery.
    _signals: Signals,
    notify: Notifier,
    watchdog: Option<Watchdog>,
    started: Instant,
    stats: StatsWindow,
    /// The audio source, for the status line (`alsa:default`, `wav:…`).
    source: String,
    /// The languages' latest statuses, as published on `…/languages`.
    statuses: Vec<LanguageStatus>,
    model_name: String,
    /// The Wyoming server (`[wyoming] listen`), sharing the recogniser.
    wyoming: Option<crate::wyoming::Server>,
}

/// Runs the daemon until SIGTERM/SIGINT (or the end of `--input`).
pub fn run(options: RunOptions) -> Result<()> {
    match Daemon::start(options)? {
        Some(daemon) => daemon.serve(),
        None => {
            log::info!("stopped during start-up");
            Ok(())
        }
    }
}

impl Daemon {
    /// The control loop, until a stop signal or the end of the input.
    pub fn serve(mut self) -> Result<()> {
        let status = self.status_line();
        log::info!("ready: {status}");
        self.notify.ready(&status);
        let Some(rx) = self.inbox.take() else {
            anyhow::bail!("the daemon's control loop already ran");
        };
        // The first report at once: Home Assistant's sensors would be `unknown` for a whole
        // interval otherwise.
        let mut next_stats = Instant::now();
        let ping_every = self.watchdog.map(|w| w.ping_every);
        let mut next_ping = Instant::now();
        loop {
            let now = Instant::now();
            if let Some(every) = ping_every {
                if now >= next_ping {
                    // Only a healthy pipeline pings: a dead or hung thread lets systemd restart us.
                    if self.is_healthy() {
                        self.notify.watchdog();
                    } else {
                        log::error!("pipeline unhealthy: watchdog not fed");
                    }
                    next_ping = now + every;
                }
            }
            if now >= next_stats {
                self.publish_stats();
                next_stats = now + Duration::from_secs(self.config.mqtt.stats_interval_s);
            }
            let wake = match ping_every {
                Some(_) => next_stats.min(next_ping),
                None => next_stats,
            };
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Event::Signal(Signal::Stop)) => return self.stop(&rx),
                Ok(Event::Signal(Signal::Reload)) => self.reload(),
                Ok(Event::Command(cmd)) => self.command(cmd),
                Ok(Event::Pulled { activate, result }) => self.pulled(activate, result),
                Ok(Event::AsrDone) => return self.input_done(&rx),
                Err(RecvTimeoutError::Timeout) => {}
                // Cannot happen (we hold a sender); stop cleanly if it does.
                Err(RecvTimeoutError::Disconnected) => return self.stop(&rx),
            }
        }
    }

    fn is_healthy(&self) -> bool {
        self.listener.is_healthy() && !self.asr.is_finished() && self.shared.heartbeat.is_fresh()
    }

    fn status_line(&self) -> String {
        let language = self.shared.with_recognizer(|r| r.language().to_string());
        let listening = self
            .shared
            .listening
            .load(std::sync::atomic::Ordering::Relaxed);
        format!(
            "{} on {}, language {language}{}",
            if listening { "listening" } else { "muted" },
            self.source,
            match self.missing().as_slice() {
                [] => String::new(),
                m => format!(", missing: {}", m.join(", ")),
            }
        )
    }

    fn missing(&self) -> Vec<String> {
        self.statuses
            .iter()
            .filter(|s| !s.is_ready())
            .map(|s| s.lang.clone())
            .collect()
    }

    /// The languages `config` asks for: its list, or the model's default alone.
    fn configured_languages(&self, config: &Config) -> Vec<String> {
        startup::configured_languages(config, &self.engine)
    }
}
