//! Reload is all or nothing: the daemon started for real (tiny model, a recording paced as a
//! microphone, a broker address nothing listens on), then its file rewritten and reloaded.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgescribe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port with nothing listening: the MQTT thread keeps retrying in the background, which
/// is all a reload needs of it.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A configuration file: `languages`, the VAD's hangover, where recordings and adapters go, and
/// extra `[mqtt]` lines.
fn config_text(
    dir: &Path,
    port: u16,
    langs: &str,
    hangover_ms: u32,
    tag: &str,
    mqtt: &str,
) -> String {
    format!(
        "languages = [{langs}]\n\
         [model]\ndir = {model:?}\nthreads = 1\n\
         [adapters]\ncache_dir = {cache:?}\n\
         [vad]\nhangover_ms = {hangover_ms}\n\
         [record]\ndir = {record:?}\n\
         [mqtt]\nbroker = \"mqtt://127.0.0.1:{port}\"\ndevice_id = \"reload-test\"\n{mqtt}",
        model = repo("tests/fixtures/mms-tiny/int8"),
        cache = dir.join(format!("cache-{tag}")),
        record = dir.join(format!("record-{tag}")),
    )
}

/// What a reload may change, as the daemon holds it.
#[derive(Debug, PartialEq)]
struct Observed {
    config: Config,
    vad_hangover_ms: u32,
    record_dir: Option<PathBuf>,
    languages: Vec<String>,
    loaded: Vec<String>,
}

fn observe(d: &Daemon) -> Observed {
    let record_dir = d
        .shared
        .recorder
        .lock()
        .unwrap()
        .as_ref()
        .map(|r| r.dir().to_path_buf());
    Observed {
        config: d.config.clone(),
        vad_hangover_ms: d.listener.vad().hangover_ms,
        record_dir,
        languages: d.statuses.iter().map(|s| s.lang.clone()).collect(),
        loaded: d
            .shared
            .with_recognizer(|r| r.languages().map(str::to_string).collect()),
    }
}

fn stop(mut d: Daemon) {
    let rx = d.inbox.take().unwrap();
    d.stop(&rx).unwrap();
}

#[test]
fn a_reload_that_fails_on_mqtt_changes_nothing_and_one_that_succeeds_changes_all() {
    let dir = scratch("reload");
    let port = closed_port();
    let file = dir.join("edgescribe.toml");
    let write = |text: String| std::fs::write(&file, text).unwrap();
    write(config_text(&dir, port, "\"eng\", \"fra\"", 400, "a", ""));
    let options = RunOptions {
        config_path: Some(file.clone()),
        input: Some(repo("tests/fixtures/audio/trained/commands_eng.wav")),
        realtime: true,
        ..RunOptions::default()
    };
    let mut daemon = Daemon::start(options).unwrap().expect("started");
    let before = observe(&daemon);
    assert_eq!(before.vad_hangover_ms, 400);
    assert_eq!(before.record_dir, Some(dir.join("record-a")));
    let (store, mqtt) = (daemon.store.clone(), daemon.shared.mqtt());

    // Every section changed, and MQTT cannot start: its password file does not exist.
    let missing = dir.join("no-such-password");
    write(config_text(
        &dir,
        port,
        "\"eng\", \"deu\"",
        900,
        "b",
        &format!("username = \"u\"\npassword_file = {missing:?}\n"),
    ));
    daemon.reload();
    assert_eq!(observe(&daemon), before);
    assert!(Arc::ptr_eq(&daemon.store, &store), "adapter store replaced");
    assert!(Arc::ptr_eq(&daemon.shared.mqtt(), &mqtt), "MQTT replaced");

    // The same changes with MQTT that can start: all of them take effect.
    write(config_text(&dir, port, "\"eng\", \"deu\"", 900, "b", ""));
    daemon.reload();
    let after = observe(&daemon);
    assert_eq!(after.config, daemon.options.load_config().unwrap());
    assert_eq!(after.config.languages, ["eng", "deu"]);
    assert_eq!(after.vad_hangover_ms, 900);
    assert_eq!(after.record_dir, Some(dir.join("record-b")));
    assert!(!Arc::ptr_eq(&daemon.store, &store), "adapter store kept");
    assert!(!Arc::ptr_eq(&daemon.shared.mqtt(), &mqtt), "MQTT kept");
    stop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}
