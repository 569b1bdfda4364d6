//! `edgescribe run`: the daemon. Start-up in order (config, model, languages, MQTT, capture), then
//! the control loop on the main thread, then an orderly stop.
//!
//! Threads: `audio-capture` → ring → `vad` → bounded utterance queue → `asr` → MQTT outbox →
//! `mqtt-eventloop`; `record` beside `asr`; `signals` and `mqtt-commands` feed the control loop,
//! which owns every decision (reload, language switch, stats, watchdog, stop).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::asr::store::{AdapterStore, Availability, Cancel, Problem, StoreOptions};
use crate::asr::{Engine, EngineOptions, Recognizer};
use crate::audio::alsa::AlsaSource;
use crate::audio::file::WavSource;
use crate::audio::source::AudioSource;
use crate::config::{Config, Overrides, DEFAULT_PATH};
use crate::mqtt::{Command, DeviceInfo, DeviceState, Mqtt, MqttHandle};
use crate::service::{Notifier, Signal, Signals, Watchdog};

use super::languages::{self, Loaded};
use super::listen::Listener;
use super::recognize::{self, AsrCounters, AsrShared};
use super::record::Recorder;
use super::stats::StatsWindow;

/// How long a `--input` run waits for the broker to acknowledge its transcripts.
const INPUT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// MQTT gets at least this long to deliver and say `offline` when stopping.
const MQTT_STOP_MIN: Duration = Duration::from_secs(3);

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

pub(super) enum Event {
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

pub(super) struct Daemon {
    pub options: RunOptions,
    pub config: Config,
    pub engine: Arc<Engine>,
    pub store: Arc<AdapterStore>,
    pub cancel: Cancel,
    pub shared: Arc<AsrShared>,
    pub listener: Listener,
    pub asr: JoinHandle<()>,
    pub events: SyncSender<Event>,
    pub notify: Notifier,
    pub watchdog: Option<Watchdog>,
    pub started: Instant,
    pub stats: StatsWindow,
    pub source: String,
    /// The languages' latest statuses, as published on `…/languages`.
    pub statuses: Vec<crate::asr::store::LanguageStatus>,
    pub model_name: String,
}

/// Runs the daemon until SIGTERM/SIGINT (or the end of `--input`).
pub fn run(options: RunOptions) -> Result<()> {
    let config = options.load_config()?;
    let mut notify = Notifier::from_env();
    notify.status("loading the model");
    let model_dir = match &config.model.dir {
        Some(dir) => dir.clone(),
        None => crate::cli::default_model_dir()?,
    };
    let loading = Instant::now();
    let engine = Arc::new(Engine::load(
        &model_dir,
        &EngineOptions {
            threads: config.model.threads(),
        },
    )?);
    log::info!(
        "model {} loaded in {} ms",
        model_dir.display(),
        loading.elapsed().as_millis()
    );

    // Signals from here on: a stop during an adapter pull cancels it.
    let (events, rx) = mpsc::sync_channel::<Event>(64);
    let cancel = Cancel::new();
    let _signals = Signals::spawn({
        let events = events.clone();
        let cancel = cancel.clone();
        move |s| {
            if s == Signal::Stop {
                cancel.cancel();
            }
            let _ = events.send(Event::Signal(s));
        }
    })
    .context("installing signal handlers")?;

    let store = Arc::new(open_store(&config, &engine, &cancel)?);
    let langs = configured_languages(&config, &engine);
    notify.status(&format!(
        "making sure the adapters of {} are here",
        langs.join(", ")
    ));
    let Some(mut loaded) = first_languages(&engine, &store, &langs, &cancel, &mut notify)? else {
        log::info!("stopped during start-up");
        return Ok(());
    };
    let first = loaded.packs.remove(0);
    if first.language() != langs[0] {
        log::warn!(
            "{} is not available; starting with {} (retried on SIGHUP or when asked over MQTT)",
            langs[0],
            first.language()
        );
    }
    let mut recognizer = Recognizer::new(engine.clone(), first);
    for pack in loaded.packs.drain(..) {
        recognizer.add_language(pack);
    }
    let active = recognizer.language().to_string();
    let model_name = model_name(&model_dir);

    let (mqtt, commands) = Mqtt::start(&config.mqtt, device_info(&langs, &active, &model_name))?;
    mqtt.publish_languages(&loaded.statuses);
    mqtt.publish_state(DeviceState {
        language: active.clone(),
        listening: true,
    });
    forward_commands(commands, events.clone())?;

    let recorder = start_recorder(&config)?;
    let source: Box<dyn AudioSource> = match &options.input {
        Some(path) => Box::new(WavSource::new(path, options.realtime)),
        None => Box::new(AlsaSource::new(config.audio.alsa())),
    };
    let source_name = source.describe();
    let capture_started = SystemTime::now();
    // A recording read unpaced goes as fast as the recogniser: wait for it rather than drop.
    let unpaced_file = options.input.is_some() && !options.realtime;
    let listener = Listener::start(
        source,
        &config.vad,
        config.recognizer.queue_utterances,
        unpaced_file,
    )?;
    let shared = Arc::new(AsrShared {
        recognizer: Mutex::new(recognizer),
        mqtt: RwLock::new(Arc::new(mqtt)),
        recorder: Mutex::new(recorder),
        listening: AtomicBool::new(true),
        capture_started,
        counters: AsrCounters::default(),
        heartbeat: Default::default(),
    });
    let asr = recognize::spawn(listener.utterances().clone(), shared.clone(), {
        let events = events.clone();
        move || {
            let _ = events.send(Event::AsrDone);
        }
    })?;
    let mut daemon = Daemon {
        options,
        config,
        engine,
        store,
        cancel,
        shared,
        listener,
        asr,
        events,
        notify,
        watchdog: Watchdog::from_env(),
        started: Instant::now(),
        stats: StatsWindow::default(),
        source: source_name,
        statuses: loaded.statuses,
        model_name,
    };
    let status = daemon.status_line();
    log::info!("ready: {status}");
    daemon.notify.ready(&status);
    daemon.control_loop(rx)
}

/// The languages to start with. When none is available only because the source cannot be reached
/// (a device booting without network), waits and retries with capped backoff instead of exiting:
/// systemd would otherwise restart the daemon, and reload the model, in a loop. Any other reason
/// (no source, wrong mirror, bad cache) is a configuration error: exit with it. `None`: stopped.
fn first_languages(
    engine: &Arc<Engine>,
    store: &AdapterStore,
    langs: &[String],
    cancel: &Cancel,
    notify: &mut Notifier,
) -> Result<Option<Loaded>> {
    let mut wait = Duration::from_secs(10);
    loop {
        let loaded = languages::load(engine, store, langs)?;
        if cancel.is_cancelled() {
            return Ok(None);
        }
        if !loaded.packs.is_empty() {
            return Ok(Some(loaded));
        }
        let why: Vec<String> = loaded.statuses.iter().map(|s| s.to_string()).collect();
        let unreachable = loaded.statuses.iter().all(|s| {
            matches!(
                s.availability,
                Availability::Missing {
                    problem: Problem::Unreachable,
                    ..
                }
            )
        });
        if !unreachable {
            bail!("no configured language is available: {}", why.join("; "));
        }
        log::warn!(
            "no configured language is available yet (source unreachable); retrying in {} s: {}",
            wait.as_secs(),
            why.join("; ")
        );
        // Not ready, but alive: keep systemd's start timeout from expiring while we wait.
        notify.send(&format!(
            "EXTEND_TIMEOUT_USEC={}\nSTATUS=waiting for the adapter source (no language available yet)",
            (wait + Duration::from_secs(60)).as_micros()
        ));
        if cancel.sleep(wait) {
            return Ok(None);
        }
        wait = (wait * 2).min(Duration::from_secs(300));
    }
}

impl Daemon {
    fn control_loop(&mut self, rx: Receiver<Event>) -> Result<()> {
        let stats_every = Duration::from_secs(self.config.mqtt.stats_interval_s);
        let mut next_stats = Instant::now() + stats_every;
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

    /// SIGTERM/SIGINT: stop capture, let the VAD close the utterance in progress, recognise and
    /// deliver what is queued (bounded by `drain_timeout_s`), say `offline`, exit 0.
    fn stop(&mut self, rx: &Receiver<Event>) -> Result<()> {
        self.notify.stopping();
        log::info!("stopping: finishing the utterances in flight");
        let deadline = Instant::now() + Duration::from_secs(self.config.recognizer.drain_timeout_s);
        if let Err(e) = self.listener.stop() {
            log::warn!("capture ended with an error: {e}");
        }
        if !self.wait_asr(rx, deadline) {
            log::warn!(
                "recogniser still busy after {} s (recognizer.drain_timeout_s): queued utterances dropped",
                self.config.recognizer.drain_timeout_s
            );
        }
        self.close_recorder();
        self.stop_mqtt(deadline);
        Ok(())
    }

    /// Writes the recordings still queued (`--record-dir`) and stops the recorder's thread. Without
    /// this the recorder went with the last `Arc` of the shared state, possibly the recogniser
    /// thread's, which the process does not wait for: the last recordings could be lost at exit.
    fn close_recorder(&self) {
        let recorder = self
            .shared
            .recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(recorder);
    }

    /// `--input` ran out: everything is recognised; exit once the broker has it all.
    fn input_done(&mut self, rx: &Receiver<Event>) -> Result<()> {
        let capture = self.listener.wait();
        // The recogniser has finished (it sent AsrDone after its last utterance).
        self.close_recorder();
        let mqtt = self.shared.mqtt();
        let deadline = Instant::now() + INPUT_DELIVERY_TIMEOUT;
        let delivered = loop {
            if mqtt.wait_delivered(Duration::from_millis(200)) {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            if let Ok(Event::Signal(Signal::Stop)) = rx.try_recv() {
                break false;
            }
        };
        self.notify.stopping();
        let left = mqtt.undelivered();
        let status = mqtt.connection();
        self.stop_mqtt(Instant::now());
        capture.context("reading the input")?;
        if !delivered {
            bail!(
                "{left} transcript(s) not acknowledged by the broker{}",
                status
                    .last_error
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
        log::info!(
            "input done: {} transcript(s) delivered",
            self.shared
                .counters
                .utterances
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        Ok(())
    }

    /// Waits for the `asr` thread to finish the queue; a second stop signal cuts it short.
    fn wait_asr(&self, rx: &Receiver<Event>, deadline: Instant) -> bool {
        while !self.asr.is_finished() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match rx.recv_timeout(left) {
                Ok(Event::AsrDone) => return true,
                Ok(Event::Signal(Signal::Stop)) => {
                    log::warn!("second stop signal: not waiting for the recogniser");
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    fn stop_mqtt(&self, deadline: Instant) {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(MQTT_STOP_MIN);
        if self.shared.mqtt().shutdown(wait) {
            log::info!("every transcript delivered; offline");
        }
    }

    pub(super) fn status_line(&self) -> String {
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

    pub(super) fn missing(&self) -> Vec<String> {
        self.statuses
            .iter()
            .filter(|s| !s.is_ready())
            .map(|s| s.lang.clone())
            .collect()
    }
}

pub(super) fn open_store(
    config: &Config,
    engine: &Engine,
    cancel: &Cancel,
) -> Result<AdapterStore> {
    let root = config.adapters.cache_root().context(
        "no adapter cache directory (no $STATE_DIRECTORY, $XDG_CACHE_HOME or $HOME): set adapters.cache_dir",
    )?;
    let options = StoreOptions {
        cache_root: root,
        source: config.adapters.source(),
        retry: config.adapters.retry(),
        cancel: cancel.clone(),
    };
    Ok(AdapterStore::for_engine(engine, options)?)
}

pub(super) fn configured_languages(config: &Config, engine: &Engine) -> Vec<String> {
    if config.languages.is_empty() {
        vec![engine.manifest().default_language.clone()]
    } else {
        config.languages.clone()
    }
}

pub(super) fn device_info(langs: &[String], active: &str, model: &str) -> DeviceInfo {
    DeviceInfo {
        languages: langs.to_vec(),
        language: active.to_string(),
        model: model.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

pub(super) fn start_recorder(config: &Config) -> Result<Option<Recorder>> {
    config
        .record
        .dir
        .as_ref()
        .map(|dir| {
            Recorder::start(dir, config.record.max_mb * 1_000_000)
                .with_context(|| format!("record.dir {}", dir.display()))
        })
        .transpose()
}

/// `…/models/bundled` → `models/bundled`: enough to tell exports apart in a transcript.
fn model_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let parts: Vec<String> = dir
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// Moves MQTT commands into the control loop's channel (until the MQTT handle is dropped).
pub(super) fn forward_commands(
    commands: Receiver<Command>,
    events: SyncSender<Event>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("mqtt-commands".into())
        .spawn(move || {
            for cmd in commands {
                if events.send(Event::Command(cmd)).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
}

/// Replaces the MQTT connection (after a reload changed its settings or the languages).
pub(super) fn swap_mqtt(shared: &AsrShared, new: MqttHandle) {
    let old = std::mem::replace(
        &mut *shared.mqtt.write().unwrap_or_else(|p| p.into_inner()),
        Arc::new(new),
    );
    if !old.shutdown(Duration::from_secs(5)) {
        log::warn!("previous MQTT connection closed with transcripts undelivered");
    }
}
