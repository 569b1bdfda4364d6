//! The `asr` thread: utterances from the VAD's queue → recogniser → MQTT (and the recorder).
//!
//! One recogniser thread, on purpose: an utterance already uses every core through tract's own
//! pool, so a second one would only make both slower. When it falls behind, the bounded queue in
//! front of it drops the oldest utterance (counted); capture never waits for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::asr::Recognizer;
use crate::audio::MODEL_RATE_HZ;
use crate::mqtt::MqttHandle;

use super::listen::Utterance;
use super::queue::DropOldest;
use super::record::Recorder;

/// What the control loop and the `asr` thread share.
pub struct AsrShared {
    /// Cloned (cheaply: `Arc`s) at each utterance, so a language switch never waits for one.
    pub recognizer: Mutex<Recognizer>,
    /// Replaced when a reload changes the MQTT settings.
    pub mqtt: RwLock<Arc<MqttHandle>>,
    pub recorder: Mutex<Option<Recorder>>,
    /// `false`: utterances are discarded unrecognised (`…/set/listening off`).
    pub listening: AtomicBool,
    /// Wall-clock time of the first captured sample: utterance times are offsets from it.
    pub capture_started: SystemTime,
    pub counters: AsrCounters,
    pub heartbeat: Heartbeat,
    /// Held for each recogniser run, the microphone's and the Wyoming server's alike: one run at a
    /// time, since one already uses every core (see `pipeline::wyoming`).
    pub inference: Mutex<()>,
}

/// When the `asr` thread last showed life: it beats while waiting and after each utterance.
#[derive(Debug)]
pub struct Heartbeat {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

/// Longer than any single utterance takes to recognise (20 s of audio at a real-time factor of
/// 5 on a slow board, with margin): only a hung recogniser goes this long without a beat.
const HUNG_AFTER: Duration = Duration::from_secs(300);

impl Heartbeat {
    fn beat(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn is_fresh(&self) -> bool {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last) < HUNG_AFTER
    }
}

#[derive(Debug, Default)]
pub struct AsrCounters {
    /// Utterances published.
    pub utterances: AtomicU64,
    /// Utterances recognised as nothing (noise the VAD let through): not published.
    pub empty: AtomicU64,
    /// Utterances discarded while listening was off.
    pub muted: AtomicU64,
    /// Utterances the recogniser returned an error for.
    pub failures: AtomicU64,
    /// Sums for the real-time factor: audio recognised and time spent on it.
    pub audio_ms: AtomicU64,
    pub processing_ms: AtomicU64,
}

impl AsrShared {
    /// Failed recordings of the current recorder (0 without one).
    pub fn record_errors(&self) -> u64 {
        self.recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |r| r.errors.load(Ordering::Relaxed))
    }

    fn lock_recognizer(&self) -> std::sync::MutexGuard<'_, Recognizer> {
        self.recognizer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mqtt(&self) -> Arc<MqttHandle> {
        self.mqtt.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn with_recognizer<R>(&self, f: impl FnOnce(&mut Recognizer) -> R) -> R {
        f(&mut self.lock_recognizer())
    }
}

/// Starts the `asr` thread. It ends when the queue is closed and empty (the source ended or
/// capture was stopped) and then calls `done`.
pub fn spawn(
    queue: DropOldest<Utterance>,
    shared: Arc<AsrShared>,
    done: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("asr".into())
        .spawn(move || {
            loop {
                shared.heartbeat.beat();
                match queue.pop(Duration::from_millis(500)) {
                    Some(u) => {
                        handle(&shared, u);
                        if queue.is_empty() {
                            // Idle: the run's activations go back to the system now (a 1B run's
                            // ~50 MB), not at the next utterance; skipped while utterances wait,
                            // where reusing them saves the page faults (see `crate::memory`).
                            crate::memory::release_freed();
                        }
                    }
                    None if queue.is_closed_and_empty() => break,
                    None => {}
                }
            }
            done();
        })
}

fn handle(shared: &AsrShared, u: Utterance) {
    let c = &shared.counters;
    if !shared.listening.load(Ordering::Relaxed) {
        c.muted.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let recognizer = shared.lock_recognizer().clone();
    let turn = shared.inference.lock().unwrap_or_else(|p| p.into_inner());
    let began = Instant::now();
    let result = recognizer.transcribe(&u.samples);
    drop(turn);
    let transcript = match result {
        Ok(t) => t,
        Err(e) => {
            c.failures.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "recogniser failed on a {} ms utterance: {e}",
                ms(u.samples.len() as u64)
            );
            return;
        }
    };
    let processing_ms = began.elapsed().as_millis() as u64;
    c.audio_ms
        .fetch_add(transcript.duration_ms, Ordering::Relaxed);
    c.processing_ms.fetch_add(processing_ms, Ordering::Relaxed);
    // A phrase-mode rejection has no text either, but it is news: something was said that is not
    // an allowed command, and automations may want to say so (its `hint` is the closest one).
    if transcript.text.trim().is_empty() && !transcript.decoding.rejected {
        c.empty.fetch_add(1, Ordering::Relaxed);
        log::debug!(
            "utterance of {} ms recognised as nothing",
            transcript.duration_ms
        );
        return;
    }
    let started_at = shared.capture_started + Duration::from_millis(ms(u.start_sample));
    let seq = shared
        .mqtt()
        .publish_transcript(&transcript, started_at, processing_ms);
    c.utterances.fetch_add(1, Ordering::Relaxed);
    log::info!(
        "transcript #{seq} [{}] {:?}{} ({} ms of audio in {processing_ms} ms)",
        transcript.language,
        transcript.text,
        match &transcript.decoding.hint {
            Some(hint) if transcript.decoding.rejected => format!(" rejected, closest {hint:?}"),
            _ if transcript.decoding.rejected => " rejected".to_string(),
            _ => String::new(),
        },
        transcript.duration_ms
    );
    if let Some(recorder) = shared
        .recorder
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        recorder.save(seq, started_at, u.samples, &transcript);
    }
}

fn ms(samples: u64) -> u64 {
    samples * 1000 / MODEL_RATE_HZ as u64
}
