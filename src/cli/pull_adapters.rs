//! `edgescribe pull-adapters`: fetch, verify and cache the adapters of the languages asked for, as
//! the daemon does at start. Prints one line per language on stdout (or JSON with `--json`); progress
//! goes to stderr, as bars on a terminal and as log lines otherwise.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::ModelDirArg;
use crate::asr::store::{AdapterStore, LanguageStatus, LogObserver, PullObserver, StoreOptions};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The daemon's configuration file: its `languages`, `[model]` and `[adapters]` are used;
    /// the flags below override them.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelDirArg,
    /// Languages to make available, comma-separated MMS codes (eng,fra,deu).
    #[arg(long, value_delimiter = ',')]
    languages: Vec<String>,
    /// Where adapters come from: a URL template with {lang}, a base URL or directory holding the hub's
    /// adapter.<lang>.safetensors files, or a file:// URL. Default: the config's, else the hub.
    #[arg(long)]
    source: Option<String>,
    /// Cache directory. Default: the config's, else $STATE_DIRECTORY/adapters under systemd, else
    /// /var/lib/edgescribe/adapters if /var/lib/edgescribe exists, else ~/.cache/edgescribe/adapters.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Attempts per language before it is reported missing. Default: the config's, else 5.
    #[arg(long)]
    attempts: Option<u32>,
    /// Delay before the first retry, in milliseconds; it doubles per retry, up to 30 s.
    #[arg(long)]
    backoff_ms: Option<u64>,
    /// Print the languages' statuses as JSON (what the daemon publishes) instead of text lines.
    #[arg(long)]
    json: bool,
}

/// Everything a pull needs, however it was given.
struct Settings {
    model: PathBuf,
    languages: Vec<String>,
    options: StoreOptions,
}

/// The configuration file (if given), then the flags over it.
fn settings(args: &Args) -> Result<Settings> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let model = args.model.resolve(Some(&config.model))?;
    let flags: Vec<String> = args
        .languages
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let languages = if flags.is_empty() {
        config.languages.clone()
    } else {
        flags
    };
    if languages.is_empty() {
        bail!("no languages given: pass --languages (e.g. --languages eng,fra) or a --config with `languages`");
    }
    let cache_root = match args.cache.clone().or_else(|| config.adapters.cache_root()) {
        Some(dir) => dir,
        None => bail!(
            "no cache directory (no $STATE_DIRECTORY, $XDG_CACHE_HOME or $HOME): pass --cache DIR"
        ),
    };
    let mut options = StoreOptions::new(cache_root);
    options.source = match &args.source {
        Some(s) => Some(s.clone()),
        None => config.adapters.source(),
    };
    options.retry = config.adapters.retry();
    if let Some(n) = args.attempts {
        options.retry.attempts = n.max(1);
    }
    if let Some(ms) = args.backoff_ms {
        options.retry.initial_delay = Duration::from_millis(ms.max(1));
        options.retry.max_delay = options.retry.max_delay.max(options.retry.initial_delay);
    }
    Ok(Settings {
        model,
        languages,
        options,
    })
}

pub fn run(args: Args) -> Result<()> {
    let settings = settings(&args)?;
    let store = AdapterStore::open(&settings.model, settings.options)?;
    let statuses = if std::io::stderr().is_terminal() {
        store.ensure(&settings.languages, &mut Bars::default())?
    } else {
        store.ensure(&settings.languages, &mut LogObserver)?
    };
    if args.json {
        println!("{}", serde_json::to_string(&statuses)?);
    } else {
        for status in &statuses {
            println!("{status}");
        }
    }
    let missing: Vec<&LanguageStatus> = statuses.iter().filter(|s| !s.is_ready()).collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|s| s.lang.as_str()).collect();
        bail!(
            "{} of {} languages not available: {} (see above; cache {})",
            missing.len(),
            statuses.len(),
            names.join(", "),
            store.cache_dir().display()
        );
    }
    Ok(())
}

/// Progress bars for a terminal: one per download, replaced by a line when it ends.
#[derive(Default)]
struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl PullObserver for Bars {
    fn rejected_local(&mut self, lang: &str, path: &Path, why: &str) {
        self.say(format!("{lang}: {} rejected: {why}", path.display()));
    }

    fn download_started(&mut self, lang: &str, from_url: &str, from: u64, total: u64) {
        self.clear();
        let style = ProgressStyle::with_template(
            "{msg:>5} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::new(total)
            .with_style(style)
            .with_message(lang.to_string())
            .with_position(from);
        let verb = if from > 0 { "resuming" } else { "fetching" };
        bar.println(format!("{lang}: {verb} {from_url}"));
        self.bar = Some(bar);
    }

    fn download_progress(&mut self, _lang: &str, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn retrying(&mut self, lang: &str, attempt: u32, delay: Duration, error: &str) {
        self.clear();
        self.say(format!(
            "{lang}: attempt {attempt} failed ({error}); retrying in {:.1} s",
            delay.as_secs_f64()
        ));
    }

    fn finished(&mut self, _status: &LanguageStatus) {
        // The result line goes to stdout once all languages are done.
        self.clear();
    }
}
