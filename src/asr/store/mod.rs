//! The adapter store: makes sure the configured languages' adapters are on this machine, fetching
//! only those, and finds them for the recogniser.
//!
//! A language's adapter is looked for in the model directory (bundled by the exporter), then in the
//! cache ([`cache`] has the layout), then fetched from the source (the hub, a mirror or a directory).
//! Every file used is the exact one the exporter recorded: size and sha256 against the manifest, and,
//! when fetched, the model's own tensor check ([`LanguagePack::load`]) before it enters the cache.
//!
//! How the daemon uses it:
//! - at start, and on SIGHUP: [`AdapterStore::ensure`] with the configured languages; publish and log
//!   the returned [`LanguageStatus`]es, load the ready ones with
//!   [`Engine::language_from`](crate::asr::Engine::language_from), keep running with those;
//! - on a language asked over MQTT that is in the configured list: `ensure(&[lang])`, then load it;
//! - on SIGTERM: [`Cancel::cancel`](crate::retry::Cancel::cancel) on the token given in [`StoreOptions::cancel`].

pub mod cache;
mod download;
mod http;
mod local;
mod policy;
mod source;
mod status;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use cache::CacheLayout;
pub use policy::RetryPolicy;
pub use source::DEFAULT_SOURCE;
pub use status::{Availability, LanguageStatus, LogObserver, Problem, PullObserver};

use super::manifest::Manifest;
use super::vocab::{closest_codes, Vocabularies};
use super::{AsrError, Engine, LanguagePack};
use crate::retry::Cancel;
use cache::{check, Check};
use download::{Failed, Job};
use source::{FetchError, Source};

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Root of the cache; this model's files go in a subdirectory named by [`cache::model_key`].
    pub cache_root: PathBuf,
    /// URL template (`{lang}` for the code), `file://` URL or directory; `None`: never fetch, use
    /// only what is bundled or cached.
    pub source: Option<String>,
    pub retry: RetryPolicy,
    pub cancel: Cancel,
}

impl StoreOptions {
    /// The hub as source, default retries.
    pub fn new(cache_root: PathBuf) -> StoreOptions {
        StoreOptions {
            cache_root,
            source: Some(DEFAULT_SOURCE.to_string()),
            retry: RetryPolicy::default(),
            cancel: Cancel::new(),
        }
    }

    /// Bundled and cached adapters only, no network.
    pub fn offline(cache_root: PathBuf) -> StoreOptions {
        StoreOptions {
            source: None,
            ..StoreOptions::new(cache_root)
        }
    }
}

#[derive(Debug)]
pub struct AdapterStore {
    model_dir: PathBuf,
    manifest: Manifest,
    vocabs: Vocabularies,
    layout: CacheLayout,
    source: Option<Box<dyn Source>>,
    retry: RetryPolicy,
    cancel: Cancel,
    /// One pull at a time in a process: two writers on one `.part` would corrupt it.
    pulling: Mutex<()>,
}

impl AdapterStore {
    /// Reads only the model's manifest and vocabularies, not its graph: `pull-adapters` stays cheap.
    pub fn open(model_dir: &Path, options: StoreOptions) -> Result<AdapterStore, AsrError> {
        let manifest = Manifest::load(model_dir)?;
        let vocab_path = manifest.check_file(model_dir, &manifest.vocab.file)?;
        let vocabs = Vocabularies::load(&vocab_path, &manifest.vocab)?;
        AdapterStore::with_model(model_dir, manifest, vocabs, options)
    }

    /// For a process that has loaded the engine already (the daemon, `transcribe`).
    pub fn for_engine(engine: &Engine, options: StoreOptions) -> Result<AdapterStore, AsrError> {
        AdapterStore::with_model(
            engine.dir(),
            engine.manifest().clone(),
            engine.vocabularies().clone(),
            options,
        )
    }

    fn with_model(
        model_dir: &Path,
        manifest: Manifest,
        vocabs: Vocabularies,
        options: StoreOptions,
    ) -> Result<AdapterStore, AsrError> {
        let source = options
            .source
            .as_deref()
            .map(source::parse)
            .transpose()
            .map_err(AsrError::BadSource)?;
        Ok(AdapterStore {
            model_dir: model_dir.to_path_buf(),
            layout: CacheLayout::new(&options.cache_root, &manifest),
            manifest,
            vocabs,
            source,
            retry: options.retry,
            cancel: options.cancel,
            pulling: Mutex::new(()),
        })
    }

    /// This model's directory in the cache.
    pub fn cache_dir(&self) -> &Path {
        self.layout.dir()
    }

    /// Codes this model can recognise once their adapter is here: an adapter and a vocabulary.
    pub fn known_languages(&self) -> Vec<&str> {
        self.vocabs
            .languages()
            .filter(|l| self.manifest.adapters.contains_key(*l))
            .collect()
    }

    /// Fails on the first code the model does not have, suggesting the closest ones it has.
    pub fn check_languages<S: AsRef<str>>(&self, langs: &[S]) -> Result<(), AsrError> {
        for lang in langs.iter().map(AsRef::as_ref) {
            if !self.known_languages().contains(&lang) {
                return Err(AsrError::UnknownLanguage {
                    lang: lang.to_string(),
                    suggestions: closest_codes(lang, self.known_languages().into_iter()),
                });
            }
        }
        Ok(())
    }

    /// Makes sure each language's adapter is here and verified, fetching only those that are not.
    ///
    /// Errors only for an unknown code (nothing is fetched then); every other trouble is reported per
    /// language in the returned statuses (in the order given, duplicates dropped), so a device offline
    /// still starts with the languages it has.
    pub fn ensure<S: AsRef<str>>(
        &self,
        langs: &[S],
        observer: &mut dyn PullObserver,
    ) -> Result<Vec<LanguageStatus>, AsrError> {
        self.check_languages(langs)?;
        let _one_pull = self.pulling.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = Vec::new();
        let mut statuses = Vec::new();
        let mut source_down = false;
        for lang in langs.iter().map(AsRef::as_ref) {
            if seen.contains(&lang) {
                continue;
            }
            seen.push(lang);
            // Once one language found the source unreachable after all its retries, the others get a
            // single attempt: an offline device must not spend minutes in backoff before it starts.
            let attempts = if source_down { 1 } else { self.retry.attempts };
            let status = self.ensure_one(lang, attempts, observer);
            if let Availability::Missing {
                problem: Problem::Unreachable,
                ..
            } = status.availability
            {
                source_down = true;
            }
            observer.finished(&status);
            statuses.push(status);
        }
        Ok(statuses)
    }

    /// The verified adapter file for `lang`, bundled first, then cached, without fetching anything.
    pub fn locate(&self, lang: &str) -> Result<PathBuf, AsrError> {
        self.check_languages(&[lang])?;
        let entry = &self.manifest.adapters[lang];
        let bundled = self.manifest.adapter_path(&self.model_dir, lang);
        let cached = self.layout.adapter(lang);
        let mut bad = None;
        for path in [&bundled, &cached] {
            match check(path, entry) {
                Check::Good => return Ok(path.clone()),
                Check::Bad(why) => bad = Some((path, why)),
                Check::Absent => {}
            }
        }
        Err(match bad {
            Some((path, why)) => {
                // What the model's own check says of it too (which tensor is missing or misshapen)
                // helps tell a truncated copy from a file made for another model.
                let tensors = match self.load_pack(lang, path) {
                    Ok(_) => String::new(),
                    Err(AsrError::BadAdapter { reason, .. }) => format!("; {reason}"),
                    Err(e) => format!("; {e}"),
                };
                AsrError::BadAdapter {
                    path: path.clone(),
                    reason: format!(
                        "{why}{tensors}; fetch a good copy with `edgescribe pull-adapters --languages {lang}`"
                    ),
                }
            }
            None => AsrError::AdapterMissing {
                lang: lang.to_string(),
                searched: vec![bundled, cached],
            },
        })
    }

    /// The model's tensor check (names, shapes, head against vocabulary), without the model loaded.
    fn load_pack(&self, lang: &str, path: &Path) -> Result<LanguagePack, AsrError> {
        let vocab = self.vocabs.get(lang)?.clone();
        LanguagePack::load(&self.manifest, lang, vocab, path)
    }

    fn ensure_one(
        &self,
        lang: &str,
        attempts: u32,
        observer: &mut dyn PullObserver,
    ) -> LanguageStatus {
        let entry = &self.manifest.adapters[lang];
        let mut rejected_local = None;
        let status = |availability, rejected_local| LanguageStatus {
            lang: lang.to_string(),
            availability,
            rejected_local,
        };
        let bundled = self.manifest.adapter_path(&self.model_dir, lang);
        let cached = self.layout.adapter(lang);
        for (path, is_bundled) in [(&bundled, true), (&cached, false)] {
            match check(path, entry) {
                Check::Good => {
                    let path = path.clone();
                    let found = if is_bundled {
                        Availability::Bundled { path }
                    } else {
                        Availability::Cached { path }
                    };
                    return status(found, rejected_local);
                }
                Check::Bad(why) => {
                    observer.rejected_local(lang, path, &why);
                    rejected_local = Some(format!("{}: {why}", path.display()));
                }
                Check::Absent => {}
            }
        }
        let missing = |problem, detail: String| Availability::Missing { problem, detail };
        let Some(source) = self.source.as_deref() else {
            let detail = format!(
                "not in {} nor {}, and fetching is off",
                bundled.display(),
                cached.display()
            );
            return status(missing(Problem::NoSource, detail), rejected_local);
        };
        if let Err(e) = std::fs::create_dir_all(self.layout.dir()) {
            let detail = format!("{}: {e}", self.layout.dir().display());
            return status(missing(Problem::CacheIo, detail), rejected_local);
        }
        let fits_model = |path: &Path| -> Result<(), String> {
            self.load_pack(lang, path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let job = Job {
            lang,
            entry,
            layout: &self.layout,
            source,
            cancel: &self.cancel,
            fits_model: &fits_model,
        };
        let availability = match download::fetch(&job, &self.retry, attempts, observer) {
            Ok((bytes, attempts)) => Availability::Fetched {
                path: cached,
                bytes,
                attempts,
            },
            Err(Failed { error, attempts }) => {
                let problem = match error {
                    FetchError::Transient(_) => Problem::Unreachable,
                    FetchError::Corrupt(_) | FetchError::Unfit(_) => Problem::Rejected,
                    FetchError::Permanent(_) => Problem::NotAtSource,
                    FetchError::Local(_) => Problem::CacheIo,
                    FetchError::Cancelled => Problem::Cancelled,
                };
                let plural = if attempts == 1 { "" } else { "s" };
                missing(problem, format!("{error} ({attempts} attempt{plural})"))
            }
        };
        status(availability, rejected_local)
    }
}
