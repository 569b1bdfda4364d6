//! The model flags shared by the subcommands that load or read a model.

use std::path::PathBuf;

use anyhow::Result;

use crate::asr::threads::MAX_THREADS;
use crate::asr::EngineOptions;
use crate::config::ModelConfig;

/// `--model`: which export.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelDirArg {
    /// Exported model directory (see models/export.py; overrides model.dir). Default:
    /// $EDGESCRIBE_MODEL, then /usr/share/edgescribe/model, then the model bundled in the sources
    /// (`cargo run` only).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

impl ModelDirArg {
    /// `--model`, else `model.dir` of `config` (if any), else the default locations.
    pub fn resolve(&self, config: Option<&ModelConfig>) -> Result<PathBuf> {
        let dir = self
            .model
            .clone()
            .or_else(|| config.and_then(|c| c.dir.clone()));
        ModelConfig {
            dir,
            ..ModelConfig::default()
        }
        .resolve_dir()
    }
}

/// `--model`, `--lang`, `--threads`: a model loaded to run.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub dir: ModelDirArg,
    /// Language (MMS code, ISO 639-3: eng, fra, deu, ...). Default: the model's default (`run`:
    /// the first configured language; a language given here is added to them and active at start).
    #[arg(long)]
    pub lang: Option<String>,
    /// Threads for inference, 1 to 256 (default: the board's fast cores, one left free when they
    /// are all there is; the log says how many and why; `run`: model.threads).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=MAX_THREADS as i64))]
    pub threads: Option<u16>,
}

impl ModelArgs {
    pub fn model_dir(&self) -> Result<PathBuf> {
        self.dir.resolve(None)
    }

    pub fn engine_options(&self) -> EngineOptions {
        match self.threads {
            // Exactly as given: the board's default is not even worked out (or logged).
            Some(threads) => EngineOptions {
                threads: threads.into(),
            },
            None => EngineOptions::default(),
        }
    }
}
