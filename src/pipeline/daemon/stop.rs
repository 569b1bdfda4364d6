//! Stopping: on a signal (drain what is in flight, bounded by `drain_timeout_s`), or once an
//! `--input` recording is transcribed and delivered.

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::mqtt::MqttHandle;
use crate::service::Signal;

use super::super::recognize::AsrShared;
use super::{Daemon, Event};

/// How long a `--input` run waits for the broker to acknowledge its transcripts.
const INPUT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// MQTT gets at least this long to deliver and say `offline` when stopping.
const MQTT_STOP_MIN: Duration = Duration::from_secs(3);
/// How long a stopping source may take to return before it is left behind.
const SOURCE_STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a connection replaced by a reload may take to hand over.
const MQTT_SWAP_TIMEOUT: Duration = Duration::from_secs(5);
/// When `--input` ends, Wyoming requests in flight get this long to finish.
const WYOMING_INPUT_GRACE: Duration = Duration::from_secs(5);

impl Daemon {
    /// SIGTERM/SIGINT: stop capture, let the VAD close the utterance in progress, recognise and
    /// deliver what is queued (bounded by `drain_timeout_s`), say `offline`, exit 0.
    pub(super) fn stop(&mut self, rx: &Receiver<Event>) -> Result<()> {
        self.notify.stopping();
        log::info!("stopping: finishing the utterances in flight");
        let deadline = Instant::now() + Duration::from_secs(self.config.recognizer.drain_timeout_s);
        // New Wyoming connections stop now; requests in flight share the drain deadline.
        if let Some(server) = self.wyoming.as_mut() {
            server.begin_stop(deadline);
        }
        // Bounded whatever the source is blocked in: one that honours the stop does within a
        // period; one still blocked after the grace (a FIFO nobody writes to) is left behind.
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .min(SOURCE_STOP_GRACE);
        let capture = self.listener.stop_within(grace);
        if let Err(e) = capture {
            log::warn!("capture ended with an error: {e}");
        }
        if !self.wait_asr(rx, deadline) {
            log::warn!(
                "recogniser still busy after {} s (recognizer.drain_timeout_s): queued utterances dropped",
                self.config.recognizer.drain_timeout_s
            );
        }
        self.wait_wyoming(deadline);
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
    pub(super) fn input_done(&mut self, rx: &Receiver<Event>) -> Result<()> {
        if let Some(server) = self.wyoming.as_mut() {
            let deadline = Instant::now() + WYOMING_INPUT_GRACE;
            server.begin_stop(deadline);
            self.wait_wyoming(deadline);
        }
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

    /// Waits for the Wyoming server's connections (bounded by `deadline`) and logs its counters.
    fn wait_wyoming(&self, deadline: Instant) {
        if let Some(server) = &self.wyoming {
            if !server.wait(deadline) {
                log::warn!("wyoming: connections still open at the stop deadline: closed");
            }
            log::info!("wyoming: {:?}", server.counters().snapshot());
        }
    }

    fn stop_mqtt(&self, deadline: Instant) {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(MQTT_STOP_MIN);
        if self.shared.mqtt().shutdown(wait) {
            log::info!("every transcript delivered; offline");
        }
    }
}

/// Replaces the MQTT connection (after a reload changed its settings or the languages).
pub(super) fn swap_mqtt(shared: &AsrShared, new: MqttHandle) {
    let old = std::mem::replace(
        &mut *shared.mqtt.write().unwrap_or_else(|p| p.into_inner()),
        Arc::new(new),
    );
    if !old.shutdown(MQTT_SWAP_TIMEOUT) {
        log::warn!("previous MQTT connection closed with transcripts undelivered");
    }
}
