//! What the daemon holds: [`Mqtt::start`] and the [`MqttHandle`] it returns.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::asr::Transcript;

use super::command::Command;
use super::outbox::{Outbox, Payload};
use super::payload::{
    DaemonStats, DeviceState, MqttCounters, Stamp, StatsMessage, TranscriptMessage,
};
use super::shared::{ConnectionStatus, Shared};
use super::spool::Spool;
use super::{eventloop, DeviceInfo, MqttConfig, MqttError};

/// Commands the daemon has not taken yet; beyond this, new ones are dropped (and reported on
/// `…/state`) rather than blocking the event loop.
pub const COMMAND_QUEUE: usize = 32;
/// Hermes `textCaptured` messages waiting for a connection; beyond this the oldest are dropped.
const HERMES_QUEUE: usize = 16;

/// Entry point of the MQTT layer.
pub struct Mqtt;

impl Mqtt {
    /// Validates `config`, starts the embedded broker if no broker is configured, loads the
    /// spool, and starts the `mqtt-eventloop` thread, which connects (and reconnects) on its own.
    ///
    /// Returns at once, also when the broker is unreachable: transcripts wait in the outbox.
    /// Commands for the daemon arrive on the returned receiver.
    pub fn start(
        config: &MqttConfig,
        info: DeviceInfo,
    ) -> Result<(MqttHandle, Receiver<Command>), MqttError> {
        config.validate()?;
        if info.languages.is_empty() || !info.languages.contains(&info.language) {
            return Err(MqttError::DeviceInfo(format!(
                "active language {:?} is not among the languages {:?}",
                info.language, info.languages
            )));
        }
        let spool = match &config.spool_dir {
            Some(dir) => Some(Spool::open(dir).map_err(|source| MqttError::Spool {
                path: dir.clone(),
                source,
            })?),
            None => None,
        };
        let mut outbox = Outbox::new(config.outbox_capacity);
        let mut next_id = 1;
        if let Some(spool) = &spool {
            let left = spool.load().map_err(|source| MqttError::Spool {
                path: config.spool_dir.clone().unwrap_or_default(),
                source,
            })?;
            if !left.is_empty() {
                log::info!(
                    "{} undelivered transcript(s) from an earlier run will be sent first",
                    left.len()
                );
            }
            for (id, bytes) in left {
                next_id = id + 1;
                if let Some(dropped) = outbox.push(id, Payload::from(bytes)) {
                    let _ = spool.remove(dropped);
                }
            }
        }
        let device_id = config.device_id();
        let (commands_tx, commands_rx) = std::sync::mpsc::sync_channel(COMMAND_QUEUE);
        let shared = Arc::new(Shared::new(
            outbox,
            spool,
            next_id,
            config,
            &device_id,
            &info,
            commands_tx,
        ));
        let thread = eventloop::spawn(config, info, device_id, shared.clone())?;
        // A PUBLISH is a fixed header (at most 5 bytes), the topic (2 + its length) and the packet
        // id (2) before the payload.
        let max_transcript_bytes = config
            .max_packet_bytes
            .saturating_sub(9 + shared.topics.transcript.len());
        let handle = MqttHandle {
            shared,
            thread: Mutex::new(Some(thread)),
            hermes_site: config.hermes.then(|| config.site_id.clone()),
            max_transcript_bytes,
        };
        Ok((handle, commands_rx))
    }
}

/// The daemon's side of the MQTT layer. Every method returns at once (no network I/O on the
/// caller's thread); `Sync`, so it can be shared in an `Arc`.
pub struct MqttHandle {
    shared: Arc<Shared>,
    thread: Mutex<Option<eventloop::Thread>>,
    hermes_site: Option<String>,
    /// The largest transcript payload that fits in one packet of `mqtt.max_packet_bytes`.
    max_transcript_bytes: usize,
}

impl MqttHandle {
    /// Queues a transcript for `…/transcript` (and Hermes, if enabled) and returns its `seq`.
    /// `started_at`: wall-clock time of the utterance's first sample.
    ///
    /// Never blocks: the message goes to the bounded outbox (dropping the oldest if full) and,
    /// with a spool, to a file.
    pub fn publish_transcript(
        &self,
        transcript: &Transcript,
        started_at: SystemTime,
        processing_ms: u64,
    ) -> u64 {
        self.publish_transcript_from(transcript, started_at, processing_ms, None)
    }

    /// [`MqttHandle::publish_transcript`] with the message's `source` (`Some("wyoming")`).
    pub fn publish_transcript_from(
        &self,
        transcript: &Transcript,
        started_at: SystemTime,
        processing_ms: u64,
        source: Option<&str>,
    ) -> u64 {
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let stamp = Stamp {
            seq,
            boot_id: self.shared.boot_id.clone(),
        };
        let msg = TranscriptMessage::from_transcript(
            transcript,
            started_at,
            processing_ms,
            &self.shared.model,
            stamp,
        );
        let msg = TranscriptMessage {
            source: source.map(str::to_string),
            ..msg
        };
        self.publish_message(&msg);
        seq
    }

    /// Queues a ready-made message (its `seq`/`boot_id` are sent as they are).
    pub fn publish_message(&self, msg: &TranscriptMessage) {
        // A message over the packet limit would be refused at every attempt, holding up every
        // transcript after it: it goes out cut to fit, flagged, instead.
        let mut msg = msg.clone();
        let payload: Payload = match msg.to_json_within(self.max_transcript_bytes) {
            Some(bytes) => Payload::from(bytes),
            None => {
                log::error!(
                    "transcript {} cannot fit in mqtt.max_packet_bytes even without its text: dropped",
                    msg.seq
                );
                return;
            }
        };
        if msg.truncated {
            log::warn!(
                "transcript {} cut to fit mqtt.max_packet_bytes (sent with \"truncated\": true)",
                msg.seq
            );
        }
        if let Some(site) = &self.hermes_site {
            let mut p = self.shared.lock_pending();
            if p.hermes.len() >= HERMES_QUEUE {
                p.hermes.pop_front();
            }
            if let Ok(bytes) = serde_json::to_vec(&msg.hermes(site)) {
                p.hermes.push_back((Instant::now(), bytes));
            }
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(spool) = &self.shared.spool {
            if let Err(e) = spool.write(id, &payload) {
                self.shared
                    .counters
                    .spool_errors
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!("spool: transcript {} kept in memory only: {e}", msg.seq);
            }
        }
        let evicted = self.shared.lock_outbox().push(id, payload);
        if let Some(evicted) = evicted {
            log::warn!("MQTT outbox full: dropped the oldest undelivered transcript");
            self.shared.unspool(evicted);
        }
        self.shared.wake.notify_one();
    }

    /// Publishes `…/stats`, retained (the latest call wins if the broker is unreachable meanwhile;
    /// it is said again at every reconnect).
    pub fn publish_stats(&self, stats: DaemonStats) {
        let msg = StatsMessage {
            daemon: stats,
            mqtt: self.counters(),
        };
        let mut p = self.shared.lock_pending();
        p.stats = Some(msg);
        p.stats_dirty = true;
        drop(p);
        self.shared.wake.notify_one();
    }

    /// Publishes the daemon's state on `…/state` (retained), clearing any earlier error: after
    /// start-up and after applying a command.
    pub fn publish_state(&self, state: DeviceState) {
        let mut p = self.shared.lock_pending();
        p.state.language = state.language;
        p.state.listening = state.listening;
        p.state.error = None;
        p.state_dirty = true;
        drop(p);
        self.shared.wake.notify_one();
    }

    /// Publishes (retained) on `…/languages` where each configured language stands: the adapter
    /// store's statuses, so a subscriber sees which languages are missing and why.
    pub fn publish_languages<T: serde::Serialize + ?Sized>(&self, statuses: &T) {
        match serde_json::to_vec(statuses) {
            Ok(bytes) => {
                let mut p = self.shared.lock_pending();
                p.languages = Some(bytes);
                p.languages_dirty = true;
            }
            Err(e) => log::error!("language statuses not serialisable: {e}"),
        }
        self.shared.wake.notify_one();
    }

    /// The daemon could not apply `command` (e.g. the language's adapter is missing): the
    /// current state is re-published on `…/state` with `error` saying why.
    pub fn report_command_error(&self, command: &Command, message: impl Into<String>) {
        let topic = match command {
            Command::SetLanguage(_) => &self.shared.topics.set_language,
            Command::SetListening(_) => &self.shared.topics.set_listening,
            Command::SetPhrases(_) => &self.shared.topics.set_phrases,
        };
        self.shared.reject(topic, message.into());
    }

    /// Transcripts not yet acknowledged by the broker (queued or in flight).
    pub fn undelivered(&self) -> usize {
        self.shared.lock_outbox().len()
    }

    /// Waits until every transcript queued so far is acknowledged by the broker, or `timeout`.
    /// Returns whether everything was delivered (for `--input FILE.wav` runs).
    pub fn wait_delivered(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut outbox = self.shared.lock_outbox();
        while !outbox.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            outbox = match self.shared.delivered.wait_timeout(outbox, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    pub fn connection(&self) -> ConnectionStatus {
        self.shared.lock_connection().clone()
    }

    /// Random id of this run, sent with every transcript.
    pub fn boot_id(&self) -> &str {
        &self.shared.boot_id
    }

    pub fn counters(&self) -> MqttCounters {
        self.shared.counters()
    }

    /// Stops cleanly: waits (up to `timeout`) for the outbox to be acknowledged, publishes
    /// `offline`, disconnects and joins the thread. Undelivered transcripts stay in the spool if
    /// there is one. Returns whether everything was delivered. Idempotent.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return self.undelivered() == 0;
        };
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .shutdown_timeout_ms
            .store(timeout_ms, Ordering::SeqCst);
        self.shared.shutdown.cancel();
        self.shared.wake.notify_one();
        thread.join(timeout + Duration::from_secs(2));
        let left = self.undelivered();
        if left > 0 {
            let kept = if self.shared.spool.is_some() {
                "kept in the spool for the next start"
            } else {
                "lost (no spool_dir configured)"
            };
            log::warn!("MQTT shutdown: {left} transcript(s) undelivered, {kept}");
        }
        left == 0
    }
}

impl Drop for MqttHandle {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
    }
}
