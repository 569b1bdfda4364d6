//! State shared between the daemon's [`MqttHandle`](super::MqttHandle) and the event-loop thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::retry::Cancel;

use super::command::Command;
use super::outbox::Outbox;
use super::payload::{CommandRejection, MqttCounters, StateMessage, StatsMessage};
use super::spool::Spool;
use super::topics::Topics;
use super::{DeviceInfo, MqttConfig};

/// A Hermes `textCaptured` older than this is dropped unsent: Rhasspy would act on it out of
/// context (the transcript itself still goes out on `…/transcript`).
pub(super) const HERMES_MAX_AGE: Duration = Duration::from_secs(10);

/// How the connection is doing, for logs, health checks and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionStatus {
    pub connected: bool,
    /// Connection attempts since start (successful or not).
    pub attempts: u64,
    /// Successful connections since start.
    pub connections: u64,
    /// Why the last attempt or connection failed, as one line.
    pub last_error: Option<String>,
}

/// State shared between the handle and the event-loop thread.
pub(super) struct Shared {
    pub outbox: Mutex<Outbox>,
    /// Signalled whenever a transcript is acknowledged.
    pub delivered: Condvar,
    pub spool: Option<Spool>,
    pub next_id: AtomicU64,
    pub seq: AtomicU64,
    pub boot_id: String,
    pub model: String,
    /// Wakes the event loop: new work in the outbox or in `pending`.
    pub wake: tokio::sync::Notify,
    /// Shutdown asked for; interrupts a connection attempt or a backoff wait.
    pub shutdown: Cancel,
    /// How long shutdown may wait for the outbox to drain.
    pub shutdown_timeout_ms: AtomicU64,
    pub pending: Mutex<Pending>,
    pub counters: Counters,
    pub connection: Mutex<ConnectionStatus>,
    pub topics: Topics,
    pub commands: SyncSender<Command>,
}

/// Non-transcript messages waiting for the event loop, coalesced where only the latest matters.
pub(super) struct Pending {
    pub state: StateMessage,
    pub state_dirty: bool,
    /// `…/languages` payload (retained), re-sent after every reconnect like the state.
    pub languages: Option<Vec<u8>>,
    pub languages_dirty: bool,
    /// The latest `…/stats` (retained), sent when dirty: at each report and at every connection,
    /// so Home Assistant's sensors have values from the start, not after a whole interval.
    pub stats: Option<StatsMessage>,
    pub stats_dirty: bool,
    /// Hermes `textCaptured` payloads and when they were queued.
    pub hermes: std::collections::VecDeque<(Instant, Vec<u8>)>,
    /// (Re)publish the Home Assistant discovery configs.
    pub announce: bool,
}

#[derive(Default)]
pub(super) struct Counters {
    pub reconnects: AtomicU64,
    pub spool_errors: AtomicU64,
    pub commands_dropped: AtomicU64,
    pub commands_rejected: AtomicU64,
    /// Non-transcript messages (state, discovery, …) left out for exceeding the broker's limit.
    pub messages_too_large: AtomicU64,
}

impl Shared {
    pub fn new(
        outbox: Outbox,
        spool: Option<Spool>,
        next_id: u64,
        config: &MqttConfig,
        device_id: &str,
        info: &DeviceInfo,
        commands: SyncSender<Command>,
    ) -> Shared {
        Shared {
            outbox: Mutex::new(outbox),
            delivered: Condvar::new(),
            spool,
            next_id: AtomicU64::new(next_id),
            seq: AtomicU64::new(0),
            boot_id: new_boot_id(),
            model: info.model.clone(),
            wake: tokio::sync::Notify::new(),
            shutdown: Cancel::new(),
            shutdown_timeout_ms: AtomicU64::new(0),
            pending: Mutex::new(Pending {
                state: StateMessage {
                    language: info.language.clone(),
                    listening: true,
                    languages: info.languages.clone(),
                    error: None,
                },
                state_dirty: true,
                languages: None,
                languages_dirty: false,
                stats: None,
                stats_dirty: false,
                hermes: Default::default(),
                announce: config.ha_discovery,
            }),
            counters: Counters::default(),
            connection: Mutex::new(ConnectionStatus::default()),
            topics: Topics::new(&config.prefix, device_id, &config.ha_discovery_prefix),
            commands,
        }
    }

    // A panic elsewhere must not take MQTT down with it: poisoned locks are used as they are
    // (every critical section leaves the data consistent).
    pub fn lock_outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lock_connection(&self) -> MutexGuard<'_, ConnectionStatus> {
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn unspool(&self, id: u64) {
        if let Some(spool) = &self.spool {
            if let Err(e) = spool.remove(id) {
                self.counters.spool_errors.fetch_add(1, Ordering::Relaxed);
                log::warn!("spool: cannot remove transcript file {id}: {e}");
            }
        }
    }

    /// Sets `error` on `…/state` (the state itself unchanged) and has it published.
    pub fn reject(&self, topic: &str, message: String) {
        let mut p = self.lock_pending();
        p.state.error = Some(CommandRejection {
            topic: topic.to_string(),
            message,
        });
        p.state_dirty = true;
        drop(p);
        self.wake.notify_one();
    }

    pub fn counters(&self) -> MqttCounters {
        let (depth, dropped, refused) = {
            let o = self.lock_outbox();
            (o.len(), o.dropped(), o.refused())
        };
        MqttCounters {
            reconnects: self.counters.reconnects.load(Ordering::Relaxed),
            outbox_depth: depth,
            outbox_dropped: dropped,
            transcripts_refused: refused,
            messages_too_large: self.counters.messages_too_large.load(Ordering::Relaxed),
            spool_errors: self.counters.spool_errors.load(Ordering::Relaxed),
            commands_dropped: self.counters.commands_dropped.load(Ordering::Relaxed),
            commands_rejected: self.counters.commands_rejected.load(Ordering::Relaxed),
        }
    }
}

/// 128 random bits as 32 hex digits: the kernel's random UUID generator, or time and pid if
/// `/proc` is unavailable (uniqueness per run is all that matters).
fn new_boot_id() -> String {
    if let Ok(uuid) = std::fs::read_to_string("/proc/sys/kernel/random/uuid") {
        let hex: String = uuid.trim().chars().filter(|c| *c != '-').collect();
        if hex.len() == 32 {
            return hex;
        }
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:016x}{:016x}", nanos as u64, std::process::id() as u64)
}
