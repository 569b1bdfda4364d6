//! Phrase mode through the real binary on the bundled model's held-out recordings
//! (`tests/fixtures/audio/trained`, see bundled_model.rs): with the language's command grammar
//! (`../shared/corpus/<lang>.txt`, beside the repository) every recording comes out as exactly its
//! sentence, and a recording whose sentence is not among the allowed ones is rejected, with the
//! closest allowed sentence as a hint. Beam search with `--json` reports alternatives.

use std::path::{Path, PathBuf};

use crate::common::*;

fn trained(name: &str) -> PathBuf {
    audio("trained").join(name)
}

fn grammar(lang: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus")
        .join(format!("{lang}.txt"))
}

/// `edgescribe transcribe --json` with `extra` flags on `wavs`: one JSON object per file.
fn transcribe(lang: &str, extra: &[&str], wavs: &[PathBuf]) -> Vec<serde_json::Value> {
    let out = edgescribe_command()
        .args(["transcribe", "--json", "--lang", lang])
        .args(extra)
        .args(wavs)
        .env("RUST_LOG", "warn")
        .env_remove("EDGESCRIBE_MODEL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `(file, language, sentence)` of the held-out recordings.
fn golden() -> Vec<(String, String, String)> {
    std::fs::read_to_string(trained("golden.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[3].to_string())
        })
        .collect()
}

#[test]
fn phrase_mode_returns_exact_sentences_of_the_grammar() {
    let golden = golden();
    for lang in LANGS {
        let mine: Vec<&(String, String, String)> = golden.iter().filter(|g| g.1 == lang).collect();
        let wavs: Vec<PathBuf> = mine.iter().map(|g| trained(&g.0)).collect();
        let phrases = grammar(lang);
        let out = transcribe(lang, &["--phrases", phrases.to_str().unwrap()], &wavs);
        assert_eq!(out.len(), mine.len());
        for (g, o) in mine.iter().zip(&out) {
            assert_eq!(o["text"], g.2.as_str(), "{}: {o}", g.0);
            assert!(o.get("rejected").is_none(), "{}: {o}", g.0);
            // Word timings as greedy decoding gives them: one per word, in order, within the audio.
            let words = o["words"].as_array().unwrap();
            assert_eq!(words.len(), g.2.split(' ').count(), "{o}");
            let ends: Vec<u64> = words
                .iter()
                .map(|w| w["end_ms"].as_u64().unwrap())
                .collect();
            assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{o}");
            assert!(*ends.last().unwrap() <= o["duration_ms"].as_u64().unwrap());
        }
    }
}

#[test]
fn phrase_mode_rejects_a_sentence_that_is_not_allowed() {
    // eng_1.wav says "turn off the office night light"; the list has close commands but not it.
    // (The list's first lines share most of its words: the hard case for rejection.)
    let dir = std::env::temp_dir().join(format!("edgescribe-phrases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("phrases.txt");
    std::fs::write(
        &list,
        "turn on the kitchen light\nturn off the garage lights\nwhat time is it\nstop the music\n",
    )
    .unwrap();
    let out = transcribe(
        "eng",
        &["--phrases", list.to_str().unwrap()],
        &[trained("eng_1.wav")],
    );
    assert_eq!(out[0]["rejected"], true, "{}", out[0]);
    assert_eq!(out[0]["text"], "", "{}", out[0]);
    // The hint is the allowed sentence the acoustics fit best, one of the list.
    let hint = out[0]["hint"].as_str().unwrap();
    assert!(
        ["turn on the kitchen light", "turn off the garage lights"].contains(&hint),
        "{}",
        out[0]
    );
    // Beam search without constraints gives the sentence, and runners-up.
    let out = transcribe("eng", &["--beam"], &[trained("eng_1.wav")]);
    assert_eq!(
        out[0]["text"], "turn off the office night light",
        "{}",
        out[0]
    );
    assert!(!out[0]["alternatives"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A recording longer than 30 s is cut at pauses; in phrase mode each utterance is accepted or
/// rejected on its own, and `segments` says which, with the hint and the times of each (the
/// joined text alone cannot: it would silently drop the rejected commands).
#[test]
fn long_recording_in_phrase_mode_reports_each_utterance() {
    let dir = scratch("decoder_long_recording");
    let lines: Vec<String> = std::fs::read_to_string(trained("commands_eng.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // Three rounds of the four commands with a second of quiet between: 40 s.
    let one = daemon::read_wav(&trained("commands_eng.wav"));
    let mut samples = Vec::new();
    for round in 0..3 {
        samples.extend(&one);
        samples.extend(daemon::quiet(16_000, round));
    }
    assert!(samples.len() > 35 * 16_000);
    let wav = dir.join("long.wav");
    daemon::write_wav(&wav, &samples);
    // The last command is not allowed.
    let list = dir.join("phrases.txt");
    std::fs::write(&list, lines[..3].join("\n")).unwrap();

    let out = transcribe("eng", &["--phrases", list.to_str().unwrap()], &[wav]);
    let segments = out[0]["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 12, "{}", out[0]);
    let mut last_end = 0;
    for (k, s) in segments.iter().enumerate() {
        let (start, end) = (
            s["start_ms"].as_u64().unwrap(),
            s["end_ms"].as_u64().unwrap(),
        );
        assert!(last_end <= start && start < end, "segment {k}: {s}");
        last_end = end;
        if k % 4 == 3 {
            assert_eq!(s["rejected"], true, "segment {k}: {s}");
            assert_eq!(s["text"], "", "segment {k}: {s}");
            assert!(
                lines[..3].contains(&s["hint"].as_str().unwrap().to_string()),
                "{s}"
            );
        } else {
            assert_eq!(s["text"], lines[k % 4].as_str(), "segment {k}: {s}");
            assert!(s.get("rejected").is_none(), "segment {k}: {s}");
        }
    }
    // The whole: the accepted commands, in order.
    let accepted: Vec<&str> = (0..12)
        .filter(|k| k % 4 != 3)
        .map(|k| lines[k % 4].as_str())
        .collect();
    assert_eq!(out[0]["text"], accepted.join(" "));
    assert!(out[0].get("rejected").is_none(), "{}", out[0]);
    // Its confidence is the accepted utterances' (a rejected one has none to give).
    let confidence = out[0]["confidence"].as_f64().unwrap();
    let accepted: Vec<f64> = segments
        .iter()
        .filter(|s| s.get("rejected").is_none())
        .map(|s| s["confidence"].as_f64().unwrap())
        .collect();
    let lowest = accepted.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(confidence >= lowest - 1e-6, "{confidence} < {lowest}");
    let _ = std::fs::remove_dir_all(&dir);
}
