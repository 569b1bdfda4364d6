//! The fuzzers' corpus (`fuzz/corpus/`), replayed through the same checks the fuzz targets make
//! (`fuzz/harness.rs`), on the ordinary toolchain: every input the fuzzers kept, and every crash
//! they found (committed there once fixed), stays handled.

use std::path::Path;

#[path = "../../fuzz/harness.rs"]
mod harness;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let caught = std::panic::catch_unwind(|| check(&data));
        assert!(caught.is_ok(), "{target}: {} fails", path.display());
        n += 1;
    }
    assert!(
        n >= 3,
        "{target}: only {n} corpus files in {}",
        dir.display()
    );
}

#[test]
fn wav_corpus() {
    replay("wav", harness::wav);
}

#[test]
fn config_corpus() {
    replay("config", harness::config);
}

#[test]
fn mqtt_command_corpus() {
    replay("mqtt_command", harness::mqtt_command);
}
