//! The `edgescribe` binary: logging, the process's allocator, then the command line (`edgescribe::cli`).

// The one unsafe module outside the accelerator crate: jemalloc's `mallctl` (src/alloc.rs).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod alloc;

use std::process::ExitCode;

use clap::Parser;

/// rumqttd (the embedded broker) reports every routed packet as an ERROR-level tracing span: noise
/// that would drown the journal. It stays silent unless `RUST_LOG` names it explicitly.
fn log_filter(rust_log: Option<String>) -> String {
    let filter = rust_log
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| "warn,edgescribe=info".into());
    if filter.contains("rumqttd") {
        filter
    } else {
        format!("{filter},rumqttd=off")
    }
}

fn main() -> ExitCode {
    // Logs go to stderr (journald adds timestamps and levels under systemd); RUST_LOG selects verbosity.
    env_logger::Builder::new()
        .parse_filters(&log_filter(std::env::var("RUST_LOG").ok()))
        .target(env_logger::Target::Stderr)
        .init();
    edgescribe::memory::install(&alloc::JEMALLOC_HOOKS);
    let cli = edgescribe::cli::Cli::parse();
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whole cause chain: "reading x.wav: not a valid WAV file (...)".
            eprintln!("edgescribe: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
