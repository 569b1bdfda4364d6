//! `edgescribe pull-adapters` and `transcribe --cache` as a user runs them.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{audio, scratch, tiny_model};
use crate::server::Server;

/// Runs edgescribe with a clean environment for the cache defaults: no systemd state directory and a
/// home of the test's own, unless the test sets them.
fn edgescribe(args: &[&str], env: &[(&str, &Path)]) -> Output {
    // Tests run in parallel: each run gets its own (empty) home.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let home = scratch(&format!("cli-home-{}", RUNS.fetch_add(1, Ordering::SeqCst)));
    let mut cmd = crate::common::edgescribe_command();
    cmd.args(args)
        .env("RUST_LOG", "info")
        .env_remove("STATE_DIRECTORY")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", &home);
    // The test server is on loopback: a proxy from the environment must not be in the way.
    for proxy in [
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
    ] {
        cmd.env_remove(proxy);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// The one `edgescribe: error:` line of a failed run.
fn error_line(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("edgescribe: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn pulls_only_the_languages_asked_and_transcribe_finds_them() {
    let server = Server::serving(&crate::checkpoint());
    let model = s(&tiny_model("int8"));
    let cache = scratch("cli-pull-cache");
    let template = server.template();
    let out = edgescribe(
        &[
            "pull-adapters",
            "--model",
            &model,
            "--languages",
            "fra,ita",
            "--source",
            &template,
            "--cache",
            &s(&cache),
        ],
        &[],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("fra: bundled"), "{stdout}");
    assert!(lines[1].starts_with("ita: fetched 16184 bytes"), "{stdout}");
    assert_eq!(server.paths(), ["/files/adapter.ita.safetensors"]);
    // Not a terminal: plain log lines, no progress bar.
    assert!(
        stderr.contains("adapter ita: fetching http://127.0.0.1"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );

    let wav = s(&audio("fra_volets.wav"));
    let out = edgescribe(
        &[
            "transcribe",
            "--model",
            &model,
            "--lang",
            "ita",
            "--cache",
            &s(&cache),
            &wav,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 1);

    // Without the cache, the error says where it looked and how to get the adapter.
    let line = error_line(&edgescribe(
        &["transcribe", "--model", &model, "--lang", "ita", &wav],
        &[],
    ));
    assert!(
        line.contains("no adapter for language \"ita\"")
            && line.contains("adapters/adapter.ita.safetensors")
            && line.contains("edgescribe pull-adapters --languages ita"),
        "{line}"
    );
}

#[test]
fn default_cache_is_the_systemd_state_directory() {
    let server = Server::serving(&crate::checkpoint());
    let state = scratch("cli-state-dir");
    let model = s(&tiny_model("int8"));
    let template = server.template();
    let out = edgescribe(
        &[
            "pull-adapters",
            "--model",
            &model,
            "--languages",
            "nld",
            "--source",
            &template,
        ],
        &[("STATE_DIRECTORY", &state)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key_dirs: Vec<_> = std::fs::read_dir(state.join("adapters"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(key_dirs.len(), 1);
    assert!(key_dirs[0].join("adapter.nld.safetensors").is_file());

    let out = edgescribe(
        &[
            "transcribe",
            "--model",
            &model,
            "--lang",
            "nld",
            &s(&audio("eng_lights.wav")),
        ],
        &[("STATE_DIRECTORY", &state)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn offline_with_an_empty_cache_reports_and_exits_cleanly() {
    let mut server = Server::serving(&crate::checkpoint());
    let template = server.template();
    server.stop();
    let out = edgescribe(
        &[
            "pull-adapters",
            "--model",
            &s(&tiny_model("int8")),
            "--languages",
            "eng,ita",
            "--source",
            &template,
            "--cache",
            &s(&scratch("cli-offline-cache")),
            "--attempts",
            "2",
            "--backoff-ms",
            "10",
            "--json",
        ],
        &[],
    );
    let line = error_line(&out);
    assert!(
        line.contains("1 of 2 languages not available: ita"),
        "{line}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["lang"], "eng");
    assert_eq!(json[0]["state"], "bundled");
    assert_eq!(json[1]["state"], "missing");
    assert_eq!(json[1]["problem"], "unreachable");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("adapter ita: attempt 1 failed") && stderr.contains("retrying in"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_get_one_clear_line() {
    let server = Server::serving(&crate::checkpoint());
    let model = s(&tiny_model("int8"));
    let template = server.template();
    let cache = s(&scratch("cli-bad-args-cache"));
    let pull = |source: &str, extra: &[&str]| {
        let mut args = vec![
            "pull-adapters",
            "--model",
            &model,
            "--source",
            source,
            "--cache",
            &cache,
        ];
        args.extend_from_slice(extra);
        error_line(&edgescribe(&args, &[]))
    };
    let line = pull(&template, &["--languages", "ita,fre"]);
    assert!(
        line.contains("unknown language \"fre\"") && line.contains("did you mean fra"),
        "{line}"
    );
    assert!(server.requests().is_empty(), "nothing fetched");
    let line = pull(&template, &[]);
    assert!(line.contains("--languages"), "{line}");
    let line = pull("gopher://x", &["--languages", "ita"]);
    assert!(line.contains("unsupported scheme"), "{line}");
}
