//! The daemon's side of adapter pulls: `pull-adapters --config`, the configured languages fetched
//! at start (only those), a language missing while the source is down reported on `…/languages`
//! and fetched later when asked for over MQTT.

use std::path::Path;
use std::time::Duration;

use crate::common::daemon::{quiet, write_wav, Daemon};
use crate::common::mosquitto::{BrokerOptions, Mosquitto};
use crate::common::subscriber::Subscriber;
use crate::common::{edgescribe_command, scratch};
use crate::server::{Fault, Server};

const MINUTE: Duration = Duration::from_secs(60);

fn config(path: &Path, langs: &str, source: &str, cache: &Path, extra: &str) {
    std::fs::write(
        path,
        format!(
            "languages = [{langs}]\n[adapters]\nsource = \"{source}\"\ncache_dir = \"{}\"\nattempts = 2\nretry_initial_ms = 20\nretry_max_ms = 40\n{extra}",
            cache.display()
        ),
    )
    .unwrap();
}

/// `edgescribe pull-adapters ARGS`, asserting success; its stdout.
fn pull_adapters(args: &[&str]) -> Vec<u8> {
    let out = edgescribe_command()
        .arg("pull-adapters")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn pull_adapters_takes_languages_source_and_cache_from_the_config() {
    let server = Server::serving(&crate::checkpoint());
    let model = crate::bare_model("daemon-cfg-model");
    let dir = scratch("daemon-cfg");
    let file = dir.join("edgescribe.toml");
    config(
        &file,
        "\"fra\", \"ita\"",
        &server.template(),
        &dir.join("cache"),
        "",
    );
    pull_adapters(&[
        "--config",
        file.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    let mut paths = server.paths();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths,
        [
            "/files/adapter.fra.safetensors",
            "/files/adapter.ita.safetensors"
        ]
    );
    // Flags win over the file.
    let stdout = pull_adapters(&[
        "--config",
        file.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--languages",
        "deu",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(json[0]["lang"], "deu");
    assert_eq!(json[0]["state"], "fetched");
}

#[test]
fn the_daemon_pulls_only_its_languages_and_fetches_a_missing_one_when_asked() {
    let server = Server::serving(&crate::checkpoint());
    // `ita` cannot be had at start (the mirror answers 503); `eng` can.
    server.always("adapter.ita.safetensors", Fault::Status(503));
    let model = crate::bare_model("daemon-pull-model");
    let dir = scratch("daemon-pull");
    let broker = Mosquitto::start(&dir.join("broker"), BrokerOptions::default());
    let sub = Subscriber::connect(broker.port, "test-sub-pull", &["edgescribe/pl/#"]);
    let file = dir.join("edgescribe.toml");
    config(
        &file,
        "\"eng\", \"ita\"",
        &server.template(),
        &dir.join("cache"),
        &format!(
            "[mqtt]\nbroker = \"{}\"\ndevice_id = \"pl\"\n",
            broker.url()
        ),
    );
    let wav = dir.join("quiet.wav");
    write_wav(&wav, &quiet(16000 * 90, 11));
    let args: Vec<String> = [
        "--config",
        file.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--input",
        wav.to_str().unwrap(),
        "--realtime",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut daemon = Daemon::start(&args, &[]);
    daemon.wait_log("ready: listening", MINUTE);
    let languages = sub
        .wait_for(MINUTE, |m| m.topic == "edgescribe/pl/languages")
        .unwrap()
        .json();
    assert_eq!(languages[0]["lang"], "eng");
    assert_eq!(languages[0]["state"], "fetched");
    assert_eq!(languages[1]["lang"], "ita");
    assert_eq!(languages[1]["state"], "missing");
    assert_eq!(languages[1]["problem"], "unreachable");

    // The mirror recovers; asking for `ita` over MQTT fetches it and switches.
    server.heal("adapter.ita.safetensors");
    sub.publish("edgescribe/pl/set/language", b"ita");
    // The new state and the new language list come in either order.
    let (mut state, mut languages) = (None, None);
    while state.is_none() || languages.is_none() {
        let m = sub
            .next(MINUTE)
            .unwrap_or_else(|| panic!("no switch to ita; log:\n{}", daemon.log().join("\n")));
        if m.topic == "edgescribe/pl/state" && m.json()["language"] == "ita" {
            state = Some(m.json());
        } else if m.topic == "edgescribe/pl/languages" && m.json()[1]["state"] == "fetched" {
            languages = Some(m.json());
        }
    }
    let (state, languages) = (state.unwrap(), languages.unwrap());
    assert!(state["error"].is_null(), "{state}");
    assert_eq!(languages[1]["lang"], "ita");

    daemon.signal("TERM");
    assert!(daemon.wait(MINUTE).success(), "{}", daemon.log().join("\n"));
    let mut paths = server.paths();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths,
        [
            "/files/adapter.eng.safetensors",
            "/files/adapter.ita.safetensors"
        ],
        "only the configured languages may be requested"
    );
}
