use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Logs go to stderr (journald adds timestamps and levels under systemd); RUST_LOG selects verbosity.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,edgescribe=info"),
    )
    .target(env_logger::Target::Stderr)
    .init();
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
