//! What `[mqtt]` names outside the file: the password (a file or an environment variable) and the TLS
//! files, read exactly as a connection reads them, so `check-config` can read them the same way.

use std::sync::Arc;

use rustls::ClientConfig;

use super::{tls, ConfigError, MqttConfig, MqttError, Secret};

pub(super) struct Credentials {
    /// User name and password (empty when only a user name is configured).
    pub login: Option<(String, Secret)>,
    /// The TLS client configuration, for an `mqtts://` broker.
    pub tls: Option<Arc<ClientConfig>>,
}

/// Reads the password and the TLS files `config` names (`use_tls`: the broker is `mqtts://`).
pub(super) fn read(config: &MqttConfig, use_tls: bool) -> Result<Credentials, MqttError> {
    let login = match &config.username {
        Some(user) => {
            let password = config.password()?.unwrap_or_else(|| Secret::new(""));
            Some((user.clone(), password))
        }
        None => None,
    };
    let tls = if use_tls {
        let ca = config.ca_file.as_deref().ok_or_else(|| {
            MqttError::Config(ConfigError {
                key: "ca_file",
                reason: "required with mqtts://".into(),
            })
        })?;
        let client_cert = config.cert_file.as_deref().zip(config.key_file.as_deref());
        Some(tls::client_config(ca, client_cert)?)
    } else {
        None
    };
    Ok(Credentials { login, tls })
}

/// Checks `config` as starting MQTT would, without connecting: the keys, then the password file or
/// variable and the TLS files. For `check-config`.
pub fn check(config: &MqttConfig) -> Result<(), MqttError> {
    config.validate()?;
    let use_tls = config.broker_addr()?.is_some_and(|b| b.tls);
    read(config, use_tls).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lines: &str) -> MqttConfig {
        let c: crate::config::Config = toml::from_str(&format!("[mqtt]\n{lines}")).unwrap();
        c.mqtt
    }

    /// What `check-config` used to pass and `run` then refused.
    #[test]
    fn check_reads_what_the_file_names() {
        let dir = std::env::temp_dir().join(format!("es-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("absent");
        let err = |lines: &str| check(&config(lines)).unwrap_err().to_string();

        let e = err(&format!(
            "broker = \"mqtt://b\"\nusername = \"u\"\npassword_file = {missing:?}\n"
        ));
        assert!(
            e.contains("mqtt.password_file") && e.contains("absent"),
            "{e}"
        );

        let e =
            err("broker = \"mqtt://b\"\nusername = \"u\"\npassword_env = \"ES_TEST_UNSET_VAR\"\n");
        assert!(
            e.contains("mqtt.password_env") && e.contains("is not set"),
            "{e}"
        );

        let e = err(&format!("broker = \"mqtts://b\"\nca_file = {missing:?}\n"));
        assert!(e.contains("TLS file") && e.contains("absent"), "{e}");

        let garbage = dir.join("ca.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let e = err(&format!("broker = \"mqtts://b\"\nca_file = {garbage:?}\n"));
        assert!(e.contains("no PEM certificate"), "{e}");

        let password = dir.join("password");
        std::fs::write(&password, "SECRET\n").unwrap();
        check(&config(&format!(
            "broker = \"mqtt://b\"\nusername = \"u\"\npassword_file = {password:?}\n"
        )))
        .unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
