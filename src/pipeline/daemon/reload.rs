//! SIGHUP: read the file again and apply it all, or nothing. Languages, `[vad]`, `[mqtt]`,
//! `[adapters]`, `[record]` and `[decoder]` (its files read again) take effect; `[model]` and `[audio]` need a restart (said in the log).
//!
//! Every component the new file changes is built first ([`Staged`]), the MQTT connection last (the
//! one with effects others see); only when all are built are they swapped in. A failure anywhere
//! (an unreadable password file, a record directory that cannot be made) drops what was built and
//! leaves the daemon exactly as it was.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::asr::store::AdapterStore;
use crate::config::Config;
use crate::mqtt::{Mqtt, MqttHandle};
use crate::vad::VadConfig;

use super::super::record::Recorder;
use super::startup::{device_info, forward_commands, open_store, start_recorder};
use super::stop::swap_mqtt;
use super::Daemon;

/// What a reload replaces, built and not yet in use. `None`: unchanged.
struct Staged {
    config: Config,
    langs: Vec<String>,
    vad: Option<VadConfig>,
    /// `Some(None)`: recording turned off.
    recorder: Option<Option<Recorder>>,
    store: Option<Arc<AdapterStore>>,
    mqtt: Option<MqttHandle>,
    /// Always rebuilt: the files may have changed while the configuration did not.
    decoders: std::collections::BTreeMap<String, Arc<crate::asr::Decoder>>,
}

impl Daemon {
    pub(super) fn reload(&mut self) {
        self.notify.reloading();
        match self.stage_reload() {
            Ok(staged) => {
                log::info!("reloading the configuration");
                self.apply(staged);
            }
            Err(e) => {
                log::error!("reload refused, the running configuration stays: {e:#}");
            }
        }
        let status = self.status_line();
        self.notify.ready(&status);
    }

    /// Reads the file and builds every component it changes.
    fn stage_reload(&self) -> Result<Staged> {
        let new = self.options.load_config()?;
        if new.model != self.config.model {
            log::warn!("reload: [model] changes need a restart (systemctl restart edgescribe)");
        }
        if new.audio != self.config.audio && self.options.input.is_none() {
            log::warn!("reload: [audio] changes need a restart (systemctl restart edgescribe)");
        }
        if new.wyoming != self.config.wyoming {
            log::warn!("reload: [wyoming] changes need a restart (systemctl restart edgescribe)");
        }
        let vad = (new.vad != self.config.vad).then(|| new.vad.clone());
        let recorder = if new.record != self.config.record {
            Some(start_recorder(&new)?)
        } else {
            None
        };
        let store = if new.adapters != self.config.adapters {
            let store = open_store(&new, &self.engine, &self.cancel).context("adapters")?;
            Some(Arc::new(store))
        } else {
            None
        };
        let old_langs = self.configured_languages(&self.config);
        let langs = self.configured_languages(&new);
        let decoders =
            crate::asr::decode::load_all(&new.decoder, &langs).map_err(anyhow::Error::msg)?;
        let mqtt = if new.mqtt != self.config.mqtt || langs != old_langs {
            let active = self.shared.with_recognizer(|r| r.language().to_string());
            let active = if langs.contains(&active) {
                active
            } else {
                langs[0].clone()
            };
            let info = device_info(&langs, &active, &self.model_name);
            let (handle, commands) = Mqtt::start(&new.mqtt, info).context("mqtt")?;
            forward_commands(commands, self.events.clone())
                .context("cannot start the MQTT command thread")?;
            Some(handle)
        } else {
            None
        };
        Ok(Staged {
            config: new,
            langs,
            vad,
            recorder,
            store,
            mqtt,
            decoders,
        })
    }

    /// Swaps the staged components in; cannot fail.
    fn apply(&mut self, staged: Staged) {
        let Staged {
            config,
            langs,
            vad,
            recorder,
            store,
            mqtt,
            decoders,
        } = staged;
        self.shared.with_recognizer(|r| r.set_decoders(decoders));
        if let Some(vad) = vad {
            self.listener.set_vad(vad);
        }
        if let Some(recorder) = recorder {
            // The previous recorder, dropped here, writes what it still had queued.
            *self
                .shared
                .recorder
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = recorder;
        }
        if let Some(store) = store {
            self.store = store;
        }
        if let Some(handle) = mqtt {
            swap_mqtt(&self.shared, handle);
        }
        self.config = config;
        // Every configured language again: new ones are pulled, missing ones retried.
        self.pull(langs, None);
    }
}
