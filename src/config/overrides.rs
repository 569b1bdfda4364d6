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
}
