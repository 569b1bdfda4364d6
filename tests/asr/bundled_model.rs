//! The bundled model (`models/bundled`, trained by `models/train_tiny.py`, the default without `--model`)
//! recognises speech: held-out sentences spoken by held-out espeak-ng voices come out as the right words,
//! through the real binary. The recordings and their true transcripts are made by
//! `models/train_tiny.py fixtures` (see models/TRAINING.md); transcripts are compared word for word.

use std::path::{Path, PathBuf};

use crate::common::*;

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/bundled")
}

fn trained(name: &str) -> PathBuf {
    audio("trained").join(name)
}

/// One line of `golden.tsv`: file, language, espeak-ng voice, expected transcript.
struct Golden {
    file: String,
    lang: String,
    text: String,
}

fn golden() -> Vec<Golden> {
    let tsv = std::fs::read_to_string(trained("golden.tsv")).unwrap();
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "golden.tsv line {l:?}");
            Golden {
                file: f[0].to_string(),
                lang: f[1].to_string(),
                text: f[3].to_string(),
            }
        })
        .collect()
}

/// `edgescribe transcribe` on one file: the transcript line. `model: None` means no `--model` flag.
fn transcribe(model: Option<&Path>, lang: &str, wav: &Path) -> String {
    let mut cmd = edgescribe_command();
    cmd.arg("transcribe");
    if let Some(model) = model {
        cmd.arg("--model").arg(model);
    }
    let out = cmd
        .args(["--lang", lang])
        .arg(wav)
        .env("RUST_LOG", "warn")
        .env_remove("EDGESCRIBE_MODEL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        wav.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn bundled_model_is_a_small_int8_export_with_four_languages() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundled().join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["graph"]["quantization"], "int8-dynamic");
    assert_eq!(manifest["license"]["id"], "cc0-1.0");
    for lang in LANGS {
        assert_eq!(manifest["adapters"][lang]["bundled"], true, "{lang}");
    }
    // Every file the manifest lists, and nothing big besides (no fp32 copy): a few MB in the repository.
    let files = manifest["files"].as_object().unwrap();
    let total: u64 = files.values().map(|f| f["size"].as_u64().unwrap()).sum();
    assert!(total < 4_000_000, "bundled model is {total} bytes");
    for name in files.keys() {
        assert!(bundled().join(name).is_file(), "{name} missing");
    }
}

#[test]
fn held_out_voices_give_the_expected_words_in_every_language() {
    let golden = golden();
    for lang in LANGS {
        let n = golden.iter().filter(|g| g.lang == lang).count();
        assert!(n >= 2, "{lang}: {n} golden recordings");
    }
    let mut wrong = Vec::new();
    for g in &golden {
        let got = transcribe(Some(&bundled()), &g.lang, &trained(&g.file));
        if got != g.text {
            wrong.push(format!(
                "{} ({}): got {got:?}, want {:?}",
                g.file, g.lang, g.text
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn without_model_flag_the_bundled_model_is_used() {
    let g = golden().into_iter().find(|g| g.lang == "fra").unwrap();
    let got = transcribe(None, &g.lang, &trained(&g.file));
    // A system-wide install comes before the source tree's model (README, `edgescribe transcribe`).
    let system = Path::new("/usr/share/edgescribe/model");
    if system.join("manifest.json").is_file() {
        assert_eq!(got, transcribe(Some(system), &g.lang, &trained(&g.file)));
    } else {
        assert_eq!(got, g.text);
    }
}

/// The quick-start recordings: the segmenter (`edgescribe vad`, default settings) finds one utterance per
/// line of `commands_<lang>.txt`, and each utterance, cut out and transcribed, gives that line.
#[test]
fn command_recordings_segment_and_transcribe_line_by_line() {
    let dir = scratch("bundled_model_commands");
    for lang in LANGS {
        let wav = trained(&format!("commands_{lang}.wav"));
        let expected = std::fs::read_to_string(trained(&format!("commands_{lang}.txt"))).unwrap();
        let expected: Vec<&str> = expected.lines().collect();
        assert!(expected.len() >= 3, "{lang}: {} utterances", expected.len());

        let out = edgescribe(&["vad", &wav.display().to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let segments: Vec<(f64, f64)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "utterance")
            .map(|v| {
                (
                    v["start_ms"].as_f64().unwrap(),
                    v["end_ms"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(segments.len(), expected.len(), "{lang}: {segments:?}");

        let mut reader = hound::WavReader::open(&wav).unwrap();
        let spec = reader.spec();
        assert_eq!((spec.sample_rate, spec.channels), (16_000, 1));
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        for (k, ((start_ms, end_ms), want)) in segments.iter().zip(&expected).enumerate() {
            let cut = dir.join(format!("{lang}_{k}.wav"));
            let mut writer = hound::WavWriter::create(&cut, spec).unwrap();
            let (a, b) = ((start_ms * 16.0) as usize, (end_ms * 16.0) as usize);
            for s in &samples[a..b.min(samples.len())] {
                writer.write_sample(*s).unwrap();
            }
            writer.finalize().unwrap();
            assert_eq!(
                transcribe(Some(&bundled()), lang, &cut),
                *want,
                "{lang} utterance {k}"
            );
        }
    }
}
