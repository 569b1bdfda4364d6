//! `edgescribe check-config` and `edgescribe print-default-config`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::asr::manifest::Manifest;
use crate::config::{Config, EXAMPLE};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The file to check.
    file: PathBuf,
}

/// Checks what `run` would check before starting anything, without starting anything: the file,
/// then what it names (the model's manifest, the MQTT password file or variable, the TLS files).
/// Exit 0 and "ok", or the first error (file:line: key: why).
pub fn check(args: CheckArgs) -> Result<()> {
    let config = Config::load(&args.file)?;
    crate::mqtt::check(&config.mqtt)?;
    let model = config.model.resolve_dir().context("model.dir")?;
    Manifest::load(&model).with_context(|| format!("model.dir {}", model.display()))?;
    println!("{}: ok", args.file.display());
    Ok(())
}

/// The documented example, every option commented out at its default.
pub fn print_default() -> Result<()> {
    print!("{EXAMPLE}");
    Ok(())
}
