//! What must hold on every architecture the daemon ships for (x86_64 here; aarch64 under QEMU as a
//! Cortex-A72 and a Cortex-A76 through cross/test-aarch64): threads work, tract picks the CPU's own
//! int8 kernels, and the int8 logits agree with the x86_64 results committed in the fixtures.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use edgescribe::asr::{Engine, EngineOptions};
use edgescribe::audio::{wav, MODEL_RATE_HZ};

const X86_REFERENCE: &str = "reference/tract_x86_64_int8.safetensors";

/// Largest |Δ| allowed between this machine's int8 logits and x86_64's. The int8 products are exact
/// integers on every CPU; what differs is the order of the f32 sums around them (normalisation, attention,
/// dequantisation). Measured on emulated Cortex-A72 and A76: 5e-5. The margin covers an activation that
/// lands on the other side of a quantisation rounding boundary.
const INT8_TOLERANCE: f32 = 1e-3;

/// Under a wrongly configured emulator (two arm64 C libraries mixed) `pthread_create` never returns, so
/// this test hangs rather than fails: `cross/test-aarch64` runs it first under `timeout`, which turns
/// that hang into one clear error. Its deadline catches threads that start but never finish.
#[test]
fn threads_start_and_finish() {
    let (tx, rx) = mpsc::channel();
    for i in 0..4u64 {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("arch-test-{i}"))
            .spawn(move || {
                tx.send((0..100_000u64).map(|x| x * i).sum::<u64>())
                    .unwrap()
            })
            .unwrap();
    }
    drop(tx);
    let sums: Vec<u64> = (0..4)
        .map(|_| rx.recv_timeout(Duration::from_secs(60)).unwrap())
        .collect();
    assert_eq!(sums.iter().sum::<u64>(), (0..100_000u64).sum::<u64>() * 6);
}

fn int8_engine(threads: usize) -> Engine {
    Engine::load(&tiny_model("int8"), &EngineOptions { threads }).unwrap()
}

#[test]
fn tract_selects_this_cpus_int8_kernel() {
    let kernels = int8_engine(1).kernels();
    let int8: Vec<&String> = kernels.iter().filter(|k| k.contains("i32")).collect();
    assert!(
        !int8.is_empty(),
        "no int8 (i32-accumulating) kernel in {kernels:?}"
    );
    #[cfg(target_arch = "aarch64")]
    {
        assert!(
            int8.iter().all(|k| k.starts_with("arm64simd_")),
            "NEON expected: {kernels:?}"
        );
        assert!(
            !kernels.iter().any(|k| k.contains("sve")),
            "no Pi or Jetson has SVE: {kernels:?}"
        );
        let dot = std::arch::is_aarch64_feature_detected!("dotprod");
        assert_eq!(
            int8.iter().any(|k| k.ends_with("_dot")),
            dot,
            "dot-product CPU: {dot}, kernels {kernels:?}"
        );
    }
    #[cfg(target_arch = "x86_64")]
    assert!(
        int8.iter().all(|k| !k.starts_with("generic")),
        "{kernels:?}"
    );
}

fn int8_logits(engine: &Engine) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    for wav_name in REFERENCE_WAVS {
        let samples = wav::read_mono(&audio(&format!("{wav_name}.wav")), MODEL_RATE_HZ).unwrap();
        for lang in LANGS {
            let logits = engine
                .logits(&engine.language(lang).unwrap(), &samples)
                .unwrap();
            out.push((
                format!("{wav_name}.{lang}"),
                vec![logits.frames, logits.vocab],
                logits.values,
            ));
        }
    }
    out
}

/// Compares with the committed x86_64 results; `EDGESCRIBE_WRITE_X86_REFERENCE=1` on x86_64 rewrites them
/// (after a change of the int8 fixture model).
#[test]
fn int8_logits_match_x86_64_within_tolerance() {
    let engine = int8_engine(2); // multithreaded: exercises the thread pool under emulation too
    let got = int8_logits(&engine);
    let path = fixtures().join(X86_REFERENCE);
    if cfg!(target_arch = "x86_64") && std::env::var_os("EDGESCRIBE_WRITE_X86_REFERENCE").is_some()
    {
        write_f32_safetensors(&path, &got);
    }
    let bytes = std::fs::read(&path).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (mut worst, mut agree, mut frames) = (0.0f32, 0usize, 0usize);
    for (name, shape, values) in &got {
        let r = reference.tensor(name).unwrap();
        assert_eq!(r.shape(), shape.as_slice(), "{name}");
        let want: Vec<f32> = r
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        worst = values
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
        let (a, b) = (argmax_rows(values, shape[1]), argmax_rows(&want, shape[1]));
        agree += a.iter().zip(&b).filter(|(x, y)| x == y).count();
        frames += a.len();
    }
    eprintln!("int8 vs x86_64: max |Δ| {worst:e}, argmax agreement {agree}/{frames}");
    assert!(
        worst <= INT8_TOLERANCE,
        "max |Δ| {worst} > {INT8_TOLERANCE}"
    );
    assert!(
        agree as f64 >= 0.99 * frames as f64,
        "argmax agreement {agree}/{frames}"
    );
}

#[test]
fn one_engine_serves_several_threads() {
    let engine = Arc::new(int8_engine(1));
    let samples = Arc::new(wav::read_mono(&audio("spa_musica.wav"), MODEL_RATE_HZ).unwrap());
    let single = engine
        .transcribe(&engine.language("spa").unwrap(), &samples)
        .unwrap()
        .text;
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (engine, samples) = (engine.clone(), samples.clone());
            std::thread::spawn(move || {
                engine
                    .transcribe(&engine.language("spa").unwrap(), &samples)
                    .unwrap()
                    .text
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), single);
    }
}
