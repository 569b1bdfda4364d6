//! Start-up, one named step at a time: configuration, model, signals, adapter store, languages,
//! recogniser, MQTT, recorder, capture and VAD, the `asr` thread.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::asr::store::{AdapterStore, Availability, Problem, StoreOptions};
use crate::asr::{Engine, EngineOptions, Recognizer};
use crate::audio::alsa::AlsaSource;
use crate::audio::file::WavSource;
use crate::audio::source::AudioSource;
use crate::config::Config;
use crate::mqtt::{Command, DeviceInfo, DeviceState, Mqtt, MqttHandle};
use crate::retry::{Backoff, Cancel};
use crate::service::{Notifier, Signal, Signals, Watchdog};

use super::super::languages::{self, Loaded};
use super::super::listen::Listener;
use super::super::recognize::{self, AsrCounters, AsrShared};
use super::super::record::Recorder;
use super::super::stats::StatsWindow;
use super::super::wyoming;
use super::{Daemon, Event, RunOptions};

/// How many control events may wait; signal and command threads block (briefly) beyond it.
const EVENT_QUEUE: usize = 64;
/// Waiting for an unreachable adapter source at start: from this, doubling, up to the cap below.
const FIRST_LANGUAGES_RETRY: Duration = Duration::from_secs(10);
const FIRST_LANGUAGES_RETRY_MAX: Duration = Duration::from_secs(300);

impl Daemon {
    /// Starts every stage. `None`: a stop signal came during start-up (nothing is left running).
    pub fn start(options: RunOptions) -> Result<Option<Daemon>> {
        let config = options.load_config()?;
        let mut notify = Notifier::from_env();
        let (engine, model_dir) = load_engine(&config, &mut notify)?;
        // Signals from here on: a stop during an adapter pull cancels it.
        let (events, inbox) = mpsc::sync_channel::<Event>(EVENT_QUEUE);
        let cancel = Cancel::new();
        let signals = install_signals(&events, &cancel)?;
        let store = Arc::new(open_store(&config, &engine, &cancel)?);
        let langs = configured_languages(&config, &engine);
        let decoders =
            crate::asr::decode::load_all(&config.decoder, &langs).map_err(anyhow::Error::msg)?;
        let Some(loaded) = first_languages(&engine, &store, &langs, &cancel, &mut notify)? else {
            return Ok(None);
        };
        let statuses = loaded.statuses.clone();
        let mut recognizer = build_recognizer(&engine, &langs, loaded);
        recognizer.set_decoders(decoders);
        let active = recognizer.language().to_string();
        let model_name = model_name(&model_dir);
        let mqtt = start_mqtt(&config, &langs, &active, &model_name, &statuses, &events)?;
        let recorder = start_recorder(&config)?;
        let source: Box<dyn AudioSource> = match &options.input {
            Some(path) => Box::new(WavSource::new(path, options.realtime)),
            None if config.audio.device == wyoming::NO_DEVICE => Box::new(wyoming::NoSource),
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
            inference: Mutex::new(()),
        });
        let asr = recognize::spawn(listener.utterances().clone(), shared.clone(), {
            let events = events.clone();
            move || {
                let _ = events.send(Event::AsrDone);
            }
        })?;
        let wyoming = wyoming::start(
            &config.wyoming,
            &shared,
            &config.mqtt.device_id(),
            &model_name,
        )?;
        Ok(Some(Daemon {
            options,
            config,
            engine,
            store,
            cancel,
            shared,
            listener,
            asr,
            events,
            inbox: Some(inbox),
            _signals: signals,
            notify,
            watchdog: Watchdog::from_env(),
            started: Instant::now(),
            stats: StatsWindow::default(),
            source: source_name,
            statuses,
            model_name,
            wyoming,
        }))
    }
}

fn load_engine(
    config: &Config,
    notify: &mut Notifier,
) -> Result<(Arc<Engine>, std::path::PathBuf)> {
    notify.status("loading the model");
    let model_dir = config.model.resolve_dir()?;
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
    Ok((engine, model_dir))
}

/// SIGTERM/SIGINT cancel what is in flight at once (pulls, backoff sleeps) and reach the control
/// loop as events, like SIGHUP.
fn install_signals(events: &SyncSender<Event>, cancel: &Cancel) -> Result<Signals> {
    let (events, cancel) = (events.clone(), cancel.clone());
    Signals::spawn(move |s| {
        if s == Signal::Stop {
            cancel.cancel();
        }
        let _ = events.send(Event::Signal(s));
    })
    .context("installing signal handlers")
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
    let mut backoff = Backoff::new(FIRST_LANGUAGES_RETRY, FIRST_LANGUAGES_RETRY_MAX);
    notify.status(&format!(
        "making sure the adapters of {} are here",
        langs.join(", ")
    ));
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
        let wait = backoff.next_delay();
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
    }
}

/// The recogniser with every loaded language, the first configured one active if it loaded.
fn build_recognizer(engine: &Arc<Engine>, langs: &[String], mut loaded: Loaded) -> Recognizer {
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
    recognizer
}

/// Connects to the broker (in the background), announces the node and forwards its commands.
fn start_mqtt(
    config: &Config,
    langs: &[String],
    active: &str,
    model_name: &str,
    statuses: &[crate::asr::store::LanguageStatus],
    events: &SyncSender<Event>,
) -> Result<MqttHandle> {
    let (mqtt, commands) = Mqtt::start(&config.mqtt, device_info(langs, active, model_name))?;
    mqtt.publish_languages(statuses);
    mqtt.publish_state(DeviceState {
        language: active.to_string(),
        listening: true,
    });
    forward_commands(commands, events.clone())?;
    Ok(mqtt)
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
