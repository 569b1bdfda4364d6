//! What the control loop does between start and stop, besides reloads: MQTT commands, adapter
//! pulls and the periodic stats.

use std::sync::atomic::Ordering;

use crate::asr::store::LanguageStatus;
use crate::mqtt::{Command, DaemonStats, DeviceState};

use super::super::languages::{self, Loaded};
use super::{Daemon, Event};

impl Daemon {
    pub(super) fn command(&mut self, cmd: Command) {
        match &cmd {
            Command::SetListening(on) => {
                self.shared.listening.store(*on, Ordering::Relaxed);
                log::info!("listening {}", if *on { "on" } else { "off" });
                self.publish_state();
            }
            Command::SetLanguage(lang) => {
                // Loaded already: a pointer swap. Configured but missing: pull it first (on a
                // thread; the control loop keeps feeding the watchdog meanwhile).
                let switched = self
                    .shared
                    .with_recognizer(|r| r.set_language(lang).is_ok());
                if switched {
                    log::info!("language now {lang}");
                    self.publish_state();
                } else {
                    log::info!("language {lang} asked for but not here yet: pulling its adapter");
                    self.pull(vec![lang.clone()], Some(lang.clone()));
                }
            }
            Command::SetPhrases(phrases) => self.set_phrases(phrases),
        }
    }

    /// Phrase mode for the active language with `phrases` (empty: the configured decoding again),
    /// on top of the configured decoder; until the next reload.
    fn set_phrases(&mut self, phrases: &[String]) {
        let lang = self.shared.with_recognizer(|r| r.language().to_string());
        let built = crate::asr::Decoder::load(&self.config.decoder, &lang).and_then(|d| {
            if phrases.is_empty() {
                return Ok(d);
            }
            let g = crate::asr::decode::phrases::Grammar::from_phrases(phrases)?;
            Ok(d.with_phrases(Some(std::sync::Arc::new(g))))
        });
        match built {
            Ok(decoder) => {
                log::info!("{lang}: {} phrases set over MQTT", phrases.len());
                let decoder = std::sync::Arc::new(decoder);
                self.shared
                    .with_recognizer(|r| r.set_decoder(&lang, decoder));
            }
            Err(e) => self
                .shared
                .mqtt()
                .report_command_error(&Command::SetPhrases(phrases.to_vec()), e),
        }
    }

    /// Starts an `adapter-pull` thread; its result comes back as [`Event::Pulled`].
    pub(super) fn pull(&self, langs: Vec<String>, activate: Option<String>) {
        let (engine, store, events) =
            (self.engine.clone(), self.store.clone(), self.events.clone());
        let spawned = std::thread::Builder::new()
            .name("adapter-pull".into())
            .spawn(move || {
                let result = languages::load(&engine, &store, &langs).map_err(|e| e.to_string());
                let _ = events.send(Event::Pulled { activate, result });
            });
        if let Err(e) = spawned {
            log::error!("cannot start an adapter pull: {e}");
        }
    }

    pub(super) fn pulled(&mut self, activate: Option<String>, result: Result<Loaded, String>) {
        let loaded = match result {
            Ok(l) => l,
            Err(e) => {
                log::error!("adapter pull: {e}");
                if let Some(lang) = activate {
                    self.shared
                        .mqtt()
                        .report_command_error(&Command::SetLanguage(lang), e);
                }
                return;
            }
        };
        for status in &loaded.statuses {
            match self.statuses.iter_mut().find(|s| s.lang == status.lang) {
                Some(s) => *s = status.clone(),
                None => self.statuses.push(status.clone()),
            }
        }
        let configured = self.configured_languages(&self.config);
        self.statuses.retain(|s| configured.contains(&s.lang));
        self.shared.with_recognizer(|r| {
            for pack in loaded.packs {
                r.add_language(pack);
            }
        });
        self.shared.mqtt().publish_languages(&self.statuses);
        if let Some(lang) = activate {
            match self.shared.with_recognizer(|r| r.set_language(&lang)) {
                Ok(()) => {
                    log::info!("language now {lang}");
                    self.publish_state();
                }
                Err(_) => {
                    let why = loaded.statuses.iter().find(|s| s.lang == lang).map_or_else(
                        || format!("{lang}: not available"),
                        LanguageStatus::to_string,
                    );
                    self.shared
                        .mqtt()
                        .report_command_error(&Command::SetLanguage(lang), why);
                }
            }
        } else {
            // After a reload: the active language may have left the list.
            let active = self.shared.with_recognizer(|r| r.language().to_string());
            if !configured.contains(&active) {
                let next = configured
                    .iter()
                    .find(|l| self.shared.with_recognizer(|r| r.set_language(l).is_ok()));
                match next {
                    Some(l) => log::info!("{active} is no longer configured: language now {l}"),
                    None => log::warn!("{active} is no longer configured but no other language is available: keeping it"),
                }
            }
            self.publish_state();
        }
        let status = self.status_line();
        self.notify.status(&status);
    }

    fn publish_state(&self) {
        let language = self.shared.with_recognizer(|r| r.language().to_string());
        self.shared.mqtt().publish_state(DeviceState {
            language,
            listening: self.shared.listening.load(Ordering::Relaxed),
        });
    }

    pub(super) fn publish_stats(&mut self) {
        let c = &self.shared.counters;
        let rtf = self.stats.real_time_factor(
            c.audio_ms.load(Ordering::Relaxed),
            c.processing_ms.load(Ordering::Relaxed),
        );
        let queue = self.listener.utterances();
        let stats = DaemonStats {
            uptime_s: self.started.elapsed().as_secs(),
            utterances: c.utterances.load(Ordering::Relaxed),
            real_time_factor: rtf,
            audio_queue_depth: self.listener.ring_depth() as usize,
            asr_queue_depth: queue.len(),
            dropped_frames: self.listener.dropped_samples(),
            dropped_utterances: queue.dropped(),
            xruns: self
                .listener
                .source_stats()
                .map_or(0, |s| s.xruns.load(Ordering::Relaxed)),
            empty_utterances: c.empty.load(Ordering::Relaxed),
            muted_utterances: c.muted.load(Ordering::Relaxed),
            recognition_failures: c.failures.load(Ordering::Relaxed),
            record_errors: self.shared.record_errors(),
            wyoming: self.wyoming.as_ref().map(|w| w.counters().snapshot()),
        };
        self.shared.mqtt().publish_stats(stats);
        let status = format!(
            "{}; {} transcripts",
            self.status_line(),
            c.utterances.load(Ordering::Relaxed)
        );
        self.notify.status(&status);
    }
}
