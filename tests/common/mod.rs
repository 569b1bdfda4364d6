//! Fixture paths and helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn tiny_model(quant: &str) -> PathBuf {
    fixtures().join("mms-tiny").join(quant)
}

pub fn audio(name: &str) -> PathBuf {
    fixtures().join("audio").join(name)
}

/// The recordings the references were made on, and the languages bundled in the tiny exports.
pub const REFERENCE_WAVS: [&str; 4] = ["eng_lights", "fra_volets", "deu_heizung", "spa_musica"];
pub const LANGS: [&str; 4] = ["eng", "fra", "deu", "spa"];

/// `<lang>.<kind>` arrays of one recording's reference file, flattened (frames × vocab).
pub fn reference_arrays(wav: &str) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(
        fixtures()
            .join("reference")
            .join(format!("{wav}.safetensors")),
    )
    .unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

pub fn references_json() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/references.json")).unwrap(),
    )
    .unwrap()
}

pub fn argmax_rows(values: &[f32], vocab: usize) -> Vec<usize> {
    values
        .chunks_exact(vocab)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
        })
        .collect()
}

/// Copies a directory tree (flat enough for model exports) so a test can damage its copy.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A fresh directory under the target dir, removed at the start of each use.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the edgescribe binary under test to completion, logging only warnings.
pub fn edgescribe(args: &[&str]) -> std::process::Output {
    edgescribe_command()
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// A command running the edgescribe binary under test. When the tests run for another architecture
/// (cross/test-aarch64), the binary goes through the same emulator cargo uses as runner.
pub fn edgescribe_command() -> std::process::Command {
    let exe = env!("CARGO_BIN_EXE_edgescribe");
    match std::env::var_os("EDGESCRIBE_TEST_RUNNER") {
        Some(runner) if !runner.is_empty() => {
            let mut cmd = std::process::Command::new(runner);
            cmd.arg(exe);
            cmd
        }
        _ => std::process::Command::new(exe),
    }
}

/// Polls `probe` until it returns `Ok`, sleeping 20 ms between polls, and returns the value. After
/// `timeout` it panics naming what was awaited (`what`) and the last `Err`, the state seen instead.
/// For the cases with no signal to wait on; where there is one (a log line, a message, a channel),
/// wait on that.
pub fn eventually<T, E: Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

pub mod daemon;
pub mod mosquitto;
pub mod mqtt_node;
pub mod subscriber;

/// Writes f32 tensors (name, shape, row-major values) as a safetensors file.
pub fn write_f32_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let raw: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&raw)
        .map(|((n, s, _), b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}
