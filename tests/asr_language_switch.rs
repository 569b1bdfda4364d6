//! Switching language: fast, and costing only the adapter's own memory. Its own test binary, not a
//! module of `tests/asr/`, so no other test allocates in this process while RSS is read (nor competes
//! with the 10 ms switch).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use edgescribe::asr::{Engine, EngineOptions, Recognizer};
use edgescribe::audio::{wav, MODEL_RATE_HZ};

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn switching_language_is_fast_and_adds_only_the_adapter() {
    let engine =
        Arc::new(Engine::load(&tiny_model("int8"), &EngineOptions { threads: 1 }).unwrap());
    let audio = wav::read_mono(&audio("fra_volets.wav"), MODEL_RATE_HZ).unwrap();
    let mut recognizer = Recognizer::new(engine.clone(), engine.language("eng").unwrap());
    for lang in ["fra", "deu", "spa"] {
        recognizer.add_language(engine.language(lang).unwrap());
    }

    // Switching among loaded languages changes the output and takes well under 10 ms.
    let mut texts = Vec::new();
    for lang in ["fra", "deu", "spa", "eng"] {
        let t0 = Instant::now();
        recognizer.set_language(lang).unwrap();
        let took = t0.elapsed();
        assert!(
            took < Duration::from_millis(10),
            "switch to {lang}: {took:?}"
        );
        let t = recognizer.transcribe(&audio).unwrap();
        assert_eq!(t.language, lang);
        texts.push(t.text);
    }
    texts.sort();
    texts.dedup();
    assert_eq!(
        texts.len(),
        4,
        "each language decodes differently: {texts:?}"
    );
    assert!(recognizer.set_language("ita").is_err(), "not loaded");

    // Loading a language from disk is also well under 10 ms for an adapter of this size.
    let t0 = Instant::now();
    let pack = engine.language("deu").unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(10),
        "load deu: {:?}",
        t0.elapsed()
    );

    // Memory: N more languages cost N adapters, not N models. Warm up the allocator first.
    let per_pack = pack.size_bytes();
    let mut packs = vec![pack];
    packs.extend((0..20).map(|_| engine.language("deu").unwrap()));
    let before = rss_bytes();
    const N: usize = 300;
    packs.extend((0..N).map(|_| engine.language("deu").unwrap()));
    let grown = rss_bytes().saturating_sub(before);
    let budget = N * per_pack * 5 / 4 + (2 << 20);
    assert!(
        grown <= budget,
        "{N} adapters of {per_pack} B grew RSS by {grown} B (budget {budget} B)"
    );
    assert!(packs.iter().all(|p| p.language() == "deu"));
}
