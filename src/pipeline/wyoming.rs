//! The Wyoming server's side of the daemon: its [`Backend`] over the recogniser the microphone
//! uses, and the source used when there is no microphone (`[audio] device = "none"`).
//!
//! Policy: one recogniser run at a time for both. Wyoming requests wait in their own bounded queue
//! (`wyoming.queue_requests`, refused with `busy` when full) served by one thread, `wyoming-asr`;
//! each run, the microphone's or a request's, holds `AsrShared::inference`, so the two take turns
//! rather than halve each other's speed (one run already uses every core through tract's pool).
//! A request in another language than the microphone's runs that language's adapter without
//! switching the microphone's (`Recognizer::transcribe_in` on a clone: a few `Arc`s).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::audio::ring::RingWriter;
use crate::audio::source::{AudioError, AudioSource, SourceStats};
use crate::retry::Cancel;
use crate::wyoming::{Backend, Server, WyomingConfig};

use super::recognize::AsrShared;

/// `[audio] device` for a node that is only a Wyoming server.
pub const NO_DEVICE: &str = "none";

pub struct DaemonBackend {
    shared: Arc<AsrShared>,
    publish_mqtt: bool,
    model_name: String,
}

impl Backend for DaemonBackend {
    fn languages(&self) -> (Vec<String>, String) {
        self.shared.with_recognizer(|r| {
            let active = r.language().to_string();
            // The active language first: it takes a shared short code if two would (`zho`, `cmn`).
            let mut langs = vec![active.clone()];
            langs.extend(r.languages().filter(|l| *l != active).map(str::to_string));
            (langs, active)
        })
    }

    fn transcribe(
        &self,
        lang: &str,
        samples: Vec<f32>,
        started_at: SystemTime,
    ) -> Result<String, String> {
        let recognizer = self.shared.with_recognizer(|r| r.clone());
        let turn = self
            .shared
            .inference
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let began = Instant::now();
        let result = recognizer.transcribe_in(lang, &samples);
        drop(turn);
        let transcript = result.map_err(|e| e.to_string())?;
        let processing_ms = began.elapsed().as_millis() as u64;
        log::info!(
            "wyoming transcript [{lang}] {:?} ({} ms of audio in {processing_ms} ms)",
            transcript.text,
            transcript.duration_ms
        );
        if self.publish_mqtt && !transcript.text.trim().is_empty() {
            self.shared.mqtt().publish_transcript_from(
                &transcript,
                started_at,
                processing_ms,
                Some("wyoming"),
            );
        }
        Ok(transcript.text)
    }

    fn model_name(&self) -> String {
        self.model_name.clone()
    }
}

/// Starts the server if `[wyoming] listen` is set.
pub fn start(
    config: &WyomingConfig,
    shared: &Arc<AsrShared>,
    device_id: &str,
    model_name: &str,
) -> anyhow::Result<Option<Server>> {
    let Some(addr) = config.listen_addr() else {
        return Ok(None);
    };
    let addr = addr.map_err(|e| anyhow::anyhow!("wyoming.listen: {e}"))?;
    let backend = Arc::new(DaemonBackend {
        shared: shared.clone(),
        publish_mqtt: config.publish_mqtt,
        model_name: model_name.to_string(),
    });
    Server::start(config, addr, backend, device_id).map(Some)
}

/// No microphone: produces nothing until stopped, so the daemon serves Wyoming clients only.
pub struct NoSource;

impl AudioSource for NoSource {
    fn describe(&self) -> String {
        "no microphone".into()
    }

    fn run(
        &mut self,
        _out: &mut RingWriter,
        stop: &Cancel,
        _stats: &SourceStats,
    ) -> Result<(), AudioError> {
        while !stop.sleep(Duration::from_secs(3600)) {}
        Ok(())
    }
}
