//! Pulling adapters against a real HTTP server started here (`server.rs`), through the library API
//! the daemon calls (`store.rs`) and through `edgescribe pull-adapters` (`cli.rs`). One test binary:
//! linking tract once is what costs.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod daemon;
mod server;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgescribe::asr::store::{
    AdapterStore, LanguageStatus, PullObserver, RetryPolicy, StoreOptions,
};

/// The random checkpoint's directory: every adapter the manifests list, as the hub serves them.
pub fn checkpoint() -> PathBuf {
    common::fixtures().join("mms-tiny/checkpoint")
}

pub fn checkpoint_file(lang: &str) -> Vec<u8> {
    std::fs::read(checkpoint().join(format!("adapter.{lang}.safetensors"))).unwrap()
}

/// Fast retries for tests: 4 attempts, 20 → 40 → 80 ms.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(80),
    }
}

/// A copy of the int8 export with no bundled adapters, so every language must come from the source.
pub fn bare_model(name: &str) -> PathBuf {
    let dir = common::scratch(name);
    common::copy_dir(&common::tiny_model("int8"), &dir);
    std::fs::remove_dir_all(dir.join("adapters")).unwrap();
    dir
}

pub fn open_store(model: &Path, cache: &Path, source: Option<String>) -> AdapterStore {
    open_store_with(model, cache, source, quick_retry())
}

pub fn open_store_with(
    model: &Path,
    cache: &Path,
    source: Option<String>,
    retry: RetryPolicy,
) -> AdapterStore {
    let mut options = StoreOptions::new(cache.to_path_buf());
    options.source = source;
    options.retry = retry;
    AdapterStore::open(model, options).unwrap()
}

/// Every event a pull reports, as text, for assertions.
#[derive(Default)]
pub struct Recorder {
    pub events: Vec<String>,
}

impl PullObserver for Recorder {
    fn rejected_local(&mut self, lang: &str, path: &Path, why: &str) {
        self.events
            .push(format!("rejected {lang} {} {why}", path.display()));
    }
    fn download_started(&mut self, lang: &str, _url: &str, from: u64, total: u64) {
        self.events.push(format!("start {lang} {from}/{total}"));
    }
    fn retrying(&mut self, lang: &str, attempt: u32, _delay: Duration, error: &str) {
        self.events.push(format!("retry {lang} {attempt} {error}"));
    }
    fn finished(&mut self, status: &LanguageStatus) {
        self.events.push(format!("done {status}"));
    }
}

impl Recorder {
    pub fn with(&self, prefix: &str) -> Vec<&String> {
        self.events
            .iter()
            .filter(|e| e.starts_with(prefix))
            .collect()
    }
}

pub fn ensure(store: &AdapterStore, langs: &[&str]) -> (Vec<LanguageStatus>, Recorder) {
    let mut rec = Recorder::default();
    let statuses = store.ensure(langs, &mut rec).unwrap();
    (statuses, rec)
}
