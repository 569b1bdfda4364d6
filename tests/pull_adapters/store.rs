//! The store as the daemon drives it: `ensure` at start / on SIGHUP, then loading what is ready.

use std::path::Path;
use std::time::{Duration, Instant};

use edgescribe::asr::store::{
    cache, AdapterStore, Availability, LanguageStatus, Problem, PullObserver, RetryPolicy,
    StoreOptions,
};
use edgescribe::asr::{AsrError, Engine, EngineOptions};
use edgescribe::audio::{wav, MODEL_RATE_HZ};
use edgescribe::retry::Cancel;

use crate::common::{audio, copy_dir, scratch, tiny_model};
use crate::server::{Fault, Server};
use crate::*;

const ITA: &str = "adapter.ita.safetensors";
const NLD: &str = "adapter.nld.safetensors";

fn fetched_attempts(s: &LanguageStatus) -> u32 {
    match &s.availability {
        Availability::Fetched { attempts, .. } => *attempts,
        other => panic!("{}: expected fetched, got {other:?}", s.lang),
    }
}

fn missing(s: &LanguageStatus) -> (Problem, &str) {
    match &s.availability {
        Availability::Missing { problem, detail } => (*problem, detail.as_str()),
        other => panic!("{}: expected missing, got {other:?}", s.lang),
    }
}

/// Every ready language loads into the real engine and transcribes.
fn all_load(model: &Path, statuses: &[LanguageStatus]) {
    let engine = Engine::load(model, &EngineOptions { threads: 1 }).unwrap();
    let samples = wav::read_mono(&audio("fra_volets.wav"), MODEL_RATE_HZ).unwrap();
    for s in statuses.iter().filter(|s| s.is_ready()) {
        let pack = engine.language_from(&s.lang, s.path().unwrap()).unwrap();
        engine.transcribe(&pack, &samples).unwrap();
    }
}

fn cache_files(store: &AdapterStore) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.cache_dir())
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn fetches_only_the_configured_languages() {
    let server = Server::serving(&checkpoint());
    let model = bare_model("only-configured-model");
    let cache = scratch("only-configured-cache");
    let store = open_store(&model, &cache, Some(server.template()));

    let (statuses, _) = ensure(&store, &["fra", "deu", "fra"]);
    assert_eq!(statuses.len(), 2, "duplicates dropped: {statuses:?}");
    for s in &statuses {
        assert_eq!(fetched_attempts(s), 1);
        let bytes = std::fs::read(s.path().unwrap()).unwrap();
        assert_eq!(bytes, checkpoint_file(&s.lang), "{} byte-identical", s.lang);
    }
    // The checkpoint has six adapters; only the two configured ones were asked for.
    assert_eq!(
        server.paths(),
        [
            "/files/adapter.fra.safetensors",
            "/files/adapter.deu.safetensors"
        ]
    );
    assert_eq!(
        cache_files(&store),
        ["adapter.deu.safetensors", "adapter.fra.safetensors"]
    );
    all_load(&model, &statuses);

    // Next start: everything cached and verified, nothing requested.
    let (again, _) = ensure(&store, &["fra", "deu"]);
    assert!(again
        .iter()
        .all(|s| matches!(s.availability, Availability::Cached { .. })));
    assert_eq!(server.requests().len(), 2);

    // Bundled languages are used from the model directory; only the others are fetched.
    let cache = scratch("only-configured-cache-bundled");
    let store = open_store(&tiny_model("int8"), &cache, Some(server.template()));
    let (statuses, _) = ensure(&store, &["eng", "ita"]);
    assert!(matches!(
        statuses[0].availability,
        Availability::Bundled { .. }
    ));
    assert_eq!(fetched_attempts(&statuses[1]), 1);
    assert_eq!(server.paths()[2..], ["/files/adapter.ita.safetensors"]);
}

#[test]
fn corrupted_download_is_rejected_and_refetched() {
    let server = Server::serving(&checkpoint());
    let model = bare_model("corrupt-model");
    let cache = scratch("corrupt-cache");
    let store = open_store(&model, &cache, Some(server.template()));

    server.once(ITA, Fault::Corrupt);
    let (statuses, rec) = ensure(&store, &["ita"]);
    assert_eq!(fetched_attempts(&statuses[0]), 2);
    assert_eq!(
        std::fs::read(statuses[0].path().unwrap()).unwrap(),
        checkpoint_file("ita")
    );
    let retries = rec.with("retry ita 1");
    assert!(retries[0].contains("sha256"), "{retries:?}");
    // The corrupt bytes were thrown away: the second request starts from the beginning.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.range.is_none()), "{requests:?}");

    // A source that always serves a bad file: reported, and nothing of it is left in the cache.
    server.always(NLD, Fault::Corrupt);
    let (statuses, _) = ensure(&store, &["nld"]);
    let (problem, detail) = missing(&statuses[0]);
    assert_eq!(problem, Problem::Rejected);
    assert!(
        detail.contains("sha256") && detail.contains("4 attempts"),
        "{detail}"
    );
    assert_eq!(cache_files(&store), ["adapter.ita.safetensors"]);
}

#[test]
fn interrupted_download_resumes_with_range() {
    let server = Server::serving(&checkpoint());
    let model = bare_model("resume-model");
    let cache = scratch("resume-cache");
    // Through the redirect, as from the hub to its CDN: Range must survive it.
    let once = RetryPolicy {
        attempts: 1,
        ..quick_retry()
    };
    let store = open_store_with(&model, &cache, Some(server.redirected_template()), once);

    // Run 1: the connection drops after 6000 bytes and the process gives up (attempts = 1).
    server.once(ITA, Fault::CutAfter(6000));
    let (statuses, _) = ensure(&store, &["ita"]);
    assert_eq!(missing(&statuses[0]).0, Problem::Unreachable);
    let part = store.cache_dir().join("adapter.ita.safetensors.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 6000);
    assert!(!store.cache_dir().join(ITA).exists(), "no unverified file");

    // Run 2: continues where run 1 stopped.
    let (statuses, rec) = ensure(&store, &["ita"]);
    assert_eq!(fetched_attempts(&statuses[0]), 1);
    assert_eq!(rec.with("start"), ["start ita 6000/16184"]);
    let resumed: Vec<_> = server.requests().into_iter().skip(2).collect();
    assert_eq!(resumed.len(), 2, "redirect, then the file: {resumed:?}");
    for r in &resumed {
        assert_eq!(r.range.as_deref(), Some("bytes=6000-"), "{r:?}");
    }
    assert_eq!(
        std::fs::read(statuses[0].path().unwrap()).unwrap(),
        checkpoint_file("ita")
    );
    assert!(!part.exists());

    // Within one pull, a retry resumes too.
    let store = open_store(&model, &cache, Some(server.template()));
    server.once(NLD, Fault::CutAfter(4000));
    let before = server.requests().len();
    let (statuses, _) = ensure(&store, &["nld"]);
    assert_eq!(fetched_attempts(&statuses[0]), 2);
    let ranges: Vec<_> = server.requests()[before..]
        .iter()
        .map(|r| r.range.clone())
        .collect();
    assert_eq!(ranges, [None, Some("bytes=4000-".to_string())]);
}

#[test]
fn partial_files_that_cannot_be_trusted_start_over() {
    let server = Server::serving(&checkpoint());
    let model = bare_model("bad-part-model");
    let cache = scratch("bad-part-cache");
    let store = open_store(&model, &cache, Some(server.template()));
    std::fs::create_dir_all(store.cache_dir()).unwrap();

    // A partial file of garbage (another program's, a disk error): resuming it fails the hash, so the
    // puller throws it away and fetches the whole file.
    let part = store.cache_dir().join("adapter.ita.safetensors.part");
    std::fs::write(&part, vec![0x55; 5000]).unwrap();
    let (statuses, _) = ensure(&store, &["ita"]);
    assert_eq!(fetched_attempts(&statuses[0]), 2);
    let ranges: Vec<_> = server.requests().iter().map(|r| r.range.clone()).collect();
    assert_eq!(ranges, [Some("bytes=5000-".to_string()), None]);

    // A server that ignores Range sends the whole file: written from the start, not appended.
    server.ignore_range();
    let good = checkpoint_file("nld");
    std::fs::write(
        store.cache_dir().join("adapter.nld.safetensors.part"),
        &good[..3000],
    )
    .unwrap();
    let (statuses, _) = ensure(&store, &["nld"]);
    assert_eq!(fetched_attempts(&statuses[0]), 1);
    assert_eq!(std::fs::read(statuses[0].path().unwrap()).unwrap(), good);

    // A partial file longer than the adapter is dropped, not sent as a range.
    std::fs::remove_file(store.cache_dir().join(NLD)).unwrap();
    std::fs::write(
        store.cache_dir().join("adapter.nld.safetensors.part"),
        vec![0; good.len() + 10],
    )
    .unwrap();
    let (statuses, _) = ensure(&store, &["nld"]);
    assert_eq!(fetched_attempts(&statuses[0]), 2);
}

#[test]
fn server_down_with_a_full_cache_still_works() {
    let mut server = Server::serving(&checkpoint());
    let model = bare_model("down-full-model");
    let cache = scratch("down-full-cache");
    let store = open_store(&model, &cache, Some(server.template()));
    let (statuses, _) = ensure(&store, &["eng", "ita", "nld"]);
    assert!(statuses.iter().all(LanguageStatus::is_ready));
    server.stop();

    let t0 = Instant::now();
    let (statuses, rec) = ensure(&store, &["eng", "ita", "nld"]);
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s.availability, Availability::Cached { .. })),
        "{statuses:?}"
    );
    assert!(rec.with("start").is_empty() && rec.with("retry").is_empty());
    assert!(t0.elapsed() < Duration::from_secs(5), "no network wait");
    all_load(&model, &statuses);
}

#[test]
fn server_down_with_an_empty_cache_reports_the_missing_languages() {
    let mut server = Server::serving(&checkpoint());
    let source = server.template();
    server.stop();
    let cache = scratch("down-empty-cache");
    let model = tiny_model("int8");
    let store = open_store(&model, &cache, Some(source));

    let (statuses, rec) = ensure(&store, &["eng", "ita", "nld"]);
    assert!(matches!(
        statuses[0].availability,
        Availability::Bundled { .. }
    ));
    let (problem, detail) = missing(&statuses[1]);
    assert_eq!(problem, Problem::Unreachable);
    assert!(detail.contains("4 attempts"), "{detail}");
    // Once the source proved down, the next language gets one attempt, not a full backoff.
    let (problem, detail) = missing(&statuses[2]);
    assert_eq!(problem, Problem::Unreachable);
    assert!(detail.contains("(1 attempt)"), "{detail}");
    assert_eq!(rec.with("retry").len(), 3);
    // What the daemon publishes on its status topic.
    let json = serde_json::to_value(&statuses).unwrap();
    assert_eq!(json[0]["state"], "bundled");
    assert_eq!(json[1]["lang"], "ita");
    assert_eq!(json[1]["state"], "missing");
    assert_eq!(json[1]["problem"], "unreachable");
    // The present language works.
    all_load(&model, &statuses);

    // Fetching switched off entirely (offline configuration): reported as such, instantly.
    let offline = open_store(&model, &cache, None);
    let (statuses, _) = ensure(&offline, &["eng", "ita"]);
    assert!(statuses[0].is_ready());
    assert_eq!(missing(&statuses[1]).0, Problem::NoSource);
}

#[test]
fn tampered_cached_file_is_detected_at_start() {
    let mut server = Server::serving(&checkpoint());
    let model = bare_model("tamper-model");
    let cache = scratch("tamper-cache");
    let store = open_store(&model, &cache, Some(server.template()));
    ensure(&store, &["ita"]);
    let cached = store.cache_dir().join(ITA);

    // Same size, one byte changed: only the hash can tell.
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[9000] ^= 0x01;
    std::fs::write(&cached, &bytes).unwrap();
    let (statuses, rec) = ensure(&store, &["ita"]);
    assert_eq!(fetched_attempts(&statuses[0]), 1, "re-fetched");
    let rejected = statuses[0].rejected_local.as_deref().unwrap();
    assert!(rejected.contains("sha256"), "{rejected}");
    assert_eq!(rec.with("rejected ita").len(), 1);
    assert_eq!(server.paths().len(), 2);
    assert_eq!(std::fs::read(&cached).unwrap(), checkpoint_file("ita"));

    // Truncated, with the source down: reported, not used, no crash.
    std::fs::write(&cached, &bytes[..100]).unwrap();
    server.stop();
    let (statuses, _) = ensure(&store, &["ita"]);
    assert_eq!(missing(&statuses[0]).0, Problem::Unreachable);
    assert!(statuses[0]
        .rejected_local
        .as_deref()
        .unwrap()
        .contains("100 bytes"));
    let err = store.locate("ita").unwrap_err().to_string();
    assert!(
        err.contains("100 bytes") && err.contains("pull-adapters --languages ita"),
        "{err}"
    );
}

#[test]
fn unknown_codes_get_suggestions_and_nothing_is_fetched() {
    let server = Server::serving(&checkpoint());
    let store = open_store(
        &tiny_model("int8"),
        &scratch("unknown-cache"),
        Some(server.template()),
    );
    let err = store
        .ensure(&["ita", "fre"], &mut Recorder::default())
        .unwrap_err();
    assert!(
        matches!(&err, AsrError::UnknownLanguage { lang, suggestions } if lang == "fre" && suggestions[0] == "fra"),
        "{err:?}"
    );
    assert!(err.to_string().contains("did you mean fra"), "{err}");
    assert!(
        server.requests().is_empty(),
        "nothing fetched, not even ita"
    );
    // A code with a vocabulary but no adapter in the checkpoint, or neither, is unknown too.
    assert!(store.check_languages(&["xyz"]).is_err());
    assert_eq!(
        store.known_languages(),
        ["deu", "eng", "fra", "ita", "nld", "spa"]
    );
}

#[test]
fn retries_back_off_and_give_up() {
    let server = Server::serving(&checkpoint());
    let model = bare_model("backoff-model");
    let retry = RetryPolicy {
        attempts: 5,
        initial_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(100),
    };
    let store = open_store_with(
        &model,
        &scratch("backoff-cache"),
        Some(server.template()),
        retry,
    );
    server.always(ITA, Fault::Status(503));
    let (statuses, _) = ensure(&store, &["ita"]);
    assert_eq!(missing(&statuses[0]).0, Problem::Unreachable);

    // Exactly `attempts` requests, each gap at least 3/4 of the doubling, capped base, and never
    // under the initial delay (`retry::Backoff`): 40, 80, 100, 100 ms → at least 40, 60, 75, 75 ms.
    // A busy loop would make dozens of requests.
    let times: Vec<Instant> = server.requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 5);
    for (i, min_ms) in [40u64, 60, 75, 75].into_iter().enumerate() {
        let gap = times[i + 1] - times[i];
        assert!(
            gap >= Duration::from_millis(min_ms),
            "gap {i}: {gap:?} < {min_ms} ms"
        );
    }

    // A file the source does not have is not retried.
    server.always(NLD, Fault::Status(404));
    let (statuses, _) = ensure(&store, &["nld"]);
    let (problem, detail) = missing(&statuses[0]);
    assert_eq!(problem, Problem::NotAtSource);
    assert!(
        detail.contains("404") && detail.contains("(1 attempt)"),
        "{detail}"
    );
    assert_eq!(server.requests().len(), 6);
}

#[test]
fn a_file_with_the_manifests_hash_but_the_wrong_tensors_is_refused() {
    // A model whose manifest records, for `ita`, a file made for another model (a tensor renamed):
    // the hash matches, so only the tensor check can catch it.
    let model = bare_model("unfit-model");
    let source = scratch("unfit-source");
    let good = checkpoint_file("ita");
    let st = safetensors::SafeTensors::deserialize(&good).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name.replace("linear_2", "linear_9"), view))
        .collect();
    let unfit = safetensors::serialize(views, None).unwrap();
    std::fs::write(source.join(ITA), &unfit).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    manifest["adapters"]["ita"]["sha256"] = sha256_hex(&unfit).into();
    manifest["adapters"]["ita"]["size"] = unfit.len().into();
    std::fs::write(model.join("manifest.json"), manifest.to_string()).unwrap();

    // A plain directory as source, as a USB stick or NFS mirror would be.
    let store = open_store(
        &model,
        &scratch("unfit-cache"),
        Some(source.display().to_string()),
    );
    let (statuses, _) = ensure(&store, &["ita"]);
    let (problem, detail) = missing(&statuses[0]);
    assert_eq!(problem, Problem::Rejected);
    assert!(
        detail.contains("missing tensor") && detail.contains("(1 attempt)"),
        "{detail}"
    );
    assert!(cache_files(&store).is_empty(), "{:?}", cache_files(&store));
}

#[test]
fn local_directories_and_file_urls_are_sources() {
    let model = bare_model("local-model");
    let cache = scratch("local-cache");
    let dir = checkpoint().display().to_string();
    let store = open_store(&model, &cache, Some(dir.clone()));
    let (statuses, _) = ensure(&store, &["deu"]);
    assert_eq!(fetched_attempts(&statuses[0]), 1);
    let store = open_store(
        &model,
        &cache,
        Some(format!("file://{dir}/adapter.{{lang}}.safetensors")),
    );
    let (statuses, _) = ensure(&store, &["spa"]);
    assert_eq!(fetched_attempts(&statuses[0]), 1);
    // No such file at the source: reported, not retried.
    let empty = scratch("local-empty-source");
    let store = open_store(&model, &cache, Some(empty.display().to_string()));
    let (statuses, _) = ensure(&store, &["nld"]);
    assert_eq!(missing(&statuses[0]).0, Problem::NotAtSource);
    let bad = StoreOptions {
        source: Some("ftp://mirror/x".into()),
        ..StoreOptions::new(cache.clone())
    };
    assert!(matches!(
        AdapterStore::open(&model, bad),
        Err(AsrError::BadSource(_))
    ));
}

#[test]
fn the_cache_is_keyed_by_the_models_adapters() {
    let root = scratch("key-cache");
    let int8 = open_store(&tiny_model("int8"), &root, None);
    let fp32 = open_store(&tiny_model("fp32"), &root, None);
    // Two exports of one checkpoint have byte-identical adapters: they share the cache.
    assert_eq!(int8.cache_dir(), fp32.cache_dir());
    assert_eq!(int8.cache_dir().parent().unwrap(), root);

    // Another checkpoint (here: one adapter differs) gets its own directory.
    let other = scratch("key-other-model");
    copy_dir(&tiny_model("int8"), &other);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(other.join("manifest.json")).unwrap()).unwrap();
    manifest["adapters"]["nld"]["sha256"] = "00".repeat(32).into();
    std::fs::write(other.join("manifest.json"), manifest.to_string()).unwrap();
    let other = open_store(&other, &root, None);
    assert_ne!(other.cache_dir(), int8.cache_dir());
    let key =
        cache::model_key(&edgescribe::asr::manifest::Manifest::load(&tiny_model("int8")).unwrap());
    assert!(int8.cache_dir().ends_with(&key) && key.len() == 16);
}

#[test]
fn cancelling_stops_a_pull_waiting_to_retry() {
    let server = Server::serving(&checkpoint());
    server.always(ITA, Fault::Status(503));
    let cancel = Cancel::new();
    let options = StoreOptions {
        source: Some(server.template()),
        retry: RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
        },
        cancel: cancel.clone(),
        ..StoreOptions::new(scratch("cancel-cache"))
    };
    let store = AdapterStore::open(&bare_model("cancel-model"), options).unwrap();

    /// Cancels as the first retry is announced, as SIGTERM would during the backoff sleep.
    struct CancelOnRetry(Cancel);
    impl PullObserver for CancelOnRetry {
        fn retrying(&mut self, _: &str, _: u32, _: Duration, _: &str) {
            self.0.cancel();
        }
    }
    let t0 = Instant::now();
    let statuses = store
        .ensure(&["ita", "nld"], &mut CancelOnRetry(cancel))
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert_eq!(missing(&statuses[0]).0, Problem::Cancelled);
    assert_eq!(missing(&statuses[1]).0, Problem::Cancelled);
    assert_eq!(server.requests().len(), 1);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn https_sources_go_through_rustls() {
    // A plain-HTTP peer on a TLS URL: the handshake must be attempted by rustls (its crypto provider
    // wired in, no panic) and fail as a retryable network error.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut hello = [0u8; 5];
        conn.read_exact(&mut hello).unwrap();
        conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        hello
    });
    let once = RetryPolicy {
        attempts: 1,
        ..quick_retry()
    };
    let source = format!("https://127.0.0.1:{port}/adapter.{{lang}}.safetensors");
    let store = open_store_with(
        &bare_model("tls-model"),
        &scratch("tls-cache"),
        Some(source),
        once,
    );
    let (statuses, _) = ensure(&store, &["ita"]);
    let hello = peer.join().unwrap();
    assert_eq!(hello[0], 0x16, "a TLS handshake record was sent");
    let (problem, detail) = missing(&statuses[0]);
    assert_eq!(problem, Problem::Unreachable, "{detail}");
}
