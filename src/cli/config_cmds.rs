//! `edgescribe check-config` and `edgescribe print-default-config`.

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{Config, EXAMPLE};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The file to check.
    file: PathBuf,
}

/// Validates without starting anything: exit 0 and "ok", or the first error (file:line: key: why).
pub fn check(args: CheckArgs) -> Result<()> {
    Config::load(&args.file)?;
    println!("{}: ok", args.file.display());
    Ok(())
}

/// The documented example, every option commented out at its default.
pub fn print_default() -> Result<()> {
    print!("{EXAMPLE}");
    Ok(())
}
