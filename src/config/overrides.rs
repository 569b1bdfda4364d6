//! Command-line flags that override the file (and survive a reload: they are applied again).

use std::path::PathBuf;

use super::Config;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--mqtt-url`: `mqtt[s]://host:port`.
    pub mqtt_url: Option<String>,
    pub device_id: Option<String>,
    /// `--lang`: active at start; added to `languages` if the file does not list it.
    pub lang: Option<String>,
    pub model: Option<PathBuf>,
    /// `--threads`: model.threads.
    pub threads: Option<u16>,
    pub cache: Option<PathBuf>,
    pub record_dir: Option<PathBuf>,
    /// `serve`: no microphone (`audio.device = "none"`) and the Wyoming server on, at
    /// `wyoming.listen` if the file sets it, else at its default address.
    pub serve_only: bool,
    /// `serve --listen`: wyoming.listen.
    pub wyoming_listen: Option<String>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(url) = &self.mqtt_url {
            config.mqtt.broker = Some(url.clone());
        }
        if let Some(id) = &self.device_id {
            config.mqtt.device_id = Some(id.clone());
        }
        if let Some(lang) = &self.lang {
            config.languages.retain(|l| l != lang);
            config.languages.insert(0, lang.clone());
        }
        if let Some(dir) = &self.model {
            config.model.dir = Some(dir.clone());
        }
        if let Some(threads) = self.threads {
            config.model.threads = threads.into();
        }
        if let Some(dir) = &self.cache {
            config.adapters.cache_dir = Some(dir.clone());
        }
        if let Some(dir) = &self.record_dir {
            config.record.dir = Some(dir.clone());
        }
        if self.serve_only {
            config.audio.device = crate::pipeline::wyoming::NO_DEVICE.to_string();
            if config.wyoming.listen.is_none() {
                config.wyoming.listen = Some(crate::wyoming::DEFAULT_LISTEN.to_string());
            }
        }
        if let Some(listen) = &self.wyoming_listen {
            config.wyoming.listen = Some(listen.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file() {
        let mut c = Config::parse(
            "languages = [\"eng\", \"fra\", \"deu\"]\n[mqtt]\nbroker = \"mqtt://a\"\ndevice_id = \"x\"\n",
        )
        .unwrap();
        Overrides {
            mqtt_url: Some("mqtt://b:1999".into()),
            device_id: Some("kitchen".into()),
            lang: Some("deu".into()),
            ..Overrides::default()
        }
        .apply(&mut c);
        assert_eq!(c.languages, ["deu", "eng", "fra"]);
        assert_eq!(c.mqtt.broker.as_deref(), Some("mqtt://b:1999"));
        assert_eq!(c.mqtt.device_id.as_deref(), Some("kitchen"));
        let mut c = Config::default();
        Overrides {
            lang: Some("spa".into()),
            ..Overrides::default()
        }
        .apply(&mut c);
        assert_eq!(c.languages, ["spa"]);
    }

    #[test]
    fn serve_turns_the_microphone_off_and_the_server_on() {
        let serve = Overrides {
            serve_only: true,
            ..Overrides::default()
        };
        let mut c = Config::default();
        serve.apply(&mut c);
        assert_eq!(c.audio.device, "none");
        assert_eq!(c.wyoming.listen.as_deref(), Some("tcp://0.0.0.0:10300"));
        let mut c = Config::parse("[wyoming]\nlisten = \"tcp://127.0.0.1:10301\"\n").unwrap();
        serve.apply(&mut c);
        assert_eq!(c.wyoming.listen.as_deref(), Some("tcp://127.0.0.1:10301"));
        Overrides {
            wyoming_listen: Some("tcp://[::]:1".into()),
            ..serve
        }
        .apply(&mut c);
        assert_eq!(c.wyoming.listen.as_deref(), Some("tcp://[::]:1"));
    }
}
