//! Parity of the Rust recogniser with the reference implementations, on the committed tiny fixture
//! model (random weights, exact MMS architecture). References come from models/make_references.py.

use std::sync::{Arc, OnceLock};

use crate::common::*;
use edgescribe::asr::{Engine, EngineOptions, Recognizer};
use edgescribe::audio::{wav, MODEL_RATE_HZ};

fn engine(quant: &'static str) -> Arc<Engine> {
    static FP32: OnceLock<Arc<Engine>> = OnceLock::new();
    static INT8: OnceLock<Arc<Engine>> = OnceLock::new();
    let cell = if quant == "fp32" { &FP32 } else { &INT8 };
    cell.get_or_init(|| {
        Arc::new(Engine::load(&tiny_model(quant), &EngineOptions { threads: 1 }).unwrap())
    })
    .clone()
}

fn samples(wav_name: &str) -> Vec<f32> {
    wav::read_mono(&audio(&format!("{wav_name}.wav")), MODEL_RATE_HZ).unwrap()
}

#[test]
fn fp32_logits_match_transformers_within_1e_4() {
    let engine = engine("fp32");
    for wav_name in REFERENCE_WAVS {
        let audio = samples(wav_name);
        let refs = reference_arrays(wav_name);
        for lang in LANGS {
            let pack = engine.language(lang).unwrap();
            let got = engine.logits(&pack, &audio).unwrap();
            let (shape, want) = &refs[&format!("{lang}.logits")];
            assert_eq!(
                &[got.frames, got.vocab][..],
                &shape[..],
                "{wav_name}/{lang}"
            );
            let max_diff = got
                .values
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                max_diff <= 1e-4,
                "{wav_name}/{lang}: max |Δ| = {max_diff:e}"
            );
        }
    }
}

#[test]
fn fp32_transcripts_and_word_times_match_processor_decode() {
    let engine = engine("fp32");
    let refs = references_json();
    for wav_name in REFERENCE_WAVS {
        let audio = samples(wav_name);
        for lang in LANGS {
            let recognizer = Recognizer::new(engine.clone(), engine.language(lang).unwrap());
            let t = recognizer.transcribe(&audio).unwrap();
            let r = &refs[wav_name][lang];
            // transformers joins words with the delimiter as is, so `a|<pad>|b` gives two spaces;
            // edgescribe prints single spaces. The words themselves must be identical.
            let want_text = r["text"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(t.text, want_text, "{wav_name}/{lang}");
            let want_words: Vec<(String, u64, u64)> = r["words"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    (
                        w[0].as_str().unwrap().to_string(),
                        w[1].as_u64().unwrap() * 20,
                        w[2].as_u64().unwrap() * 20,
                    )
                })
                .collect();
            let got_words: Vec<(String, u64, u64)> = t
                .words
                .iter()
                .map(|w| (w.word.clone(), w.start_ms, w.end_ms))
                .collect();
            assert_eq!(got_words, want_words, "{wav_name}/{lang}");
            assert_eq!(t.language, lang);
            assert!(t.confidence > 0.0 && t.confidence <= 1.0);
        }
    }
}

#[test]
fn int8_argmax_agrees_with_onnxruntime_on_the_same_int8_file() {
    let engine = engine("int8");
    let (mut agree, mut total) = (0usize, 0usize);
    for wav_name in REFERENCE_WAVS {
        let audio = samples(wav_name);
        let refs = reference_arrays(wav_name);
        for lang in LANGS {
            let pack = engine.language(lang).unwrap();
            let got = engine.logits(&pack, &audio).unwrap();
            let (_, want) = &refs[&format!("{lang}.ort_int8")];
            let a = argmax_rows(&got.values, got.vocab);
            let b = argmax_rows(want, got.vocab);
            let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
            assert!(
                same as f64 >= 0.95 * a.len() as f64,
                "{wav_name}/{lang}: {same}/{} frames agree",
                a.len()
            );
            agree += same;
            total += a.len();
        }
    }
    let rate = agree as f64 / total as f64;
    assert!(
        rate >= 0.98,
        "int8 argmax agreement with onnxruntime: {:.2}% of {total} frames",
        rate * 100.0
    );
}

/// On AMD cores with AVX-512 VNNI every int8 matmul left to tract (the convolutions; the projections
/// run on our own kernel, `VnniMatMul`) runs tract's 16×16 VNNI tile, which measured faster there
/// (crates/tract-accel/src/optimize/int8_tile.rs); unless the user chose through tract's environment variable. The
/// agreement with onnxruntime above is then checked with that tile and our kernel.
#[test]
fn int8_matmuls_run_the_wide_vnni_tile_on_amd() {
    let engine = engine("int8");
    let ops = engine.ops();
    let int8: Vec<&String> = ops
        .iter()
        .filter(|(name, info)| name == "OptMatMul" && info.contains(",I32,"))
        .map(|(_, info)| info)
        .collect();
    assert!(!int8.is_empty(), "no int8 matmul in the plan");
    // tract's scorer still gives a matmul narrower than the tile (m < 16: the tiny model's grouped
    // positional convolution, 8 channels per group) the 8x8 tile; that is its call, by shape.
    let rows = |info: &str| -> usize {
        let m = info
            .split("Mult: m:")
            .nth(1)
            .and_then(|s| s.split(' ').next());
        m.and_then(|m| m.parse().ok()).unwrap_or(0)
    };
    let wide_enough: Vec<&&String> = int8.iter().filter(|info| rows(info) >= 16).collect();
    let wide = wide_enough
        .iter()
        .filter(|info| info.contains("avx512vnni_mmm_i32_16x16"))
        .count();
    #[cfg(target_arch = "x86_64")]
    let expected = std::env::var_os("TRACT_AVX512_FMA_UNITS").is_none()
        && std::is_x86_feature_detected!("avx512vnni")
        && tract_accel::optimize::is_amd();
    #[cfg(not(target_arch = "x86_64"))]
    let expected = false;
    if expected {
        assert!(!wide_enough.is_empty());
        assert_eq!(wide, wide_enough.len(), "int8 matmuls: {int8:#?}");
    } else if std::env::var_os("TRACT_AVX512_FMA_UNITS").is_none() {
        // Elsewhere tract decides (its probe picks 16x16 on dual-port Intel servers): nothing to
        // assert but that the plan has int8 matmuls, checked above.
        eprintln!(
            "not an AMD AVX-512 VNNI core: {wide} of {} int8 matmuls on the 16x16 tile",
            int8.len()
        );
    }
}

/// sonos/tract#2174: tract once failed to analyse onnxruntime's quantised Conv (`ConvInteger`) in a
/// wav2vec2 front end. Our int8 export quantises the conv front end; it must load and run.
#[test]
fn int8_export_with_quantized_conv_loads_and_runs() {
    use tract_onnx::prelude::Framework;
    let proto = tract_onnx::onnx()
        .proto_model_for_path(tiny_model("int8").join("model.int8.onnx"))
        .unwrap();
    let graph = proto.graph.unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    assert!(
        ops.contains(&"ConvInteger"),
        "the int8 export should quantise the conv front end"
    );
    assert!(ops.contains(&"MatMulInteger"));
    let engine = engine("int8");
    let pack = engine.language("eng").unwrap();
    let logits = engine.logits(&pack, &samples("eng_lights")).unwrap();
    assert_eq!(logits.frames, 87);
    assert!(logits.values.iter().all(|v| v.is_finite()));
}

#[test]
fn every_common_wav_format_is_converted_to_the_same_16k_mono_signal() {
    let reference = samples("eng_lights");
    for name in [
        "fmt_8k_s16_mono",
        "fmt_44k1_s24_stereo",
        "fmt_48k_f32_stereo",
        "fmt_22k05_s32_mono",
    ] {
        let got = wav::read_mono(&audio(&format!("{name}.wav")), MODEL_RATE_HZ).unwrap();
        assert!(
            (got.len() as i64 - reference.len() as i64).abs() <= 2,
            "{name}: {} samples",
            got.len()
        );
        // The 8 kHz copy has lost everything above 4 kHz, so compare on correlation, not equality.
        let n = got.len().min(reference.len());
        let dot: f64 = (0..n).map(|i| got[i] as f64 * reference[i] as f64).sum();
        let norm = |x: &[f32]| {
            x[..n]
                .iter()
                .map(|v| (*v as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let corr = dot / (norm(&got) * norm(&reference));
        let min = if name.contains("8k") { 0.8 } else { 0.99 };
        assert!(corr > min, "{name}: correlation {corr:.4}");
    }
}

/// Exports past the test sizes keep their weights in a `.data` file beside the graph (the 300M and 1B
/// benchmarks, and what `models/export.py` writes for them), read by our own loader on several
/// threads (`tract_accel`'s `onnx_parse`) rather than by tract's parser. Here the tiny int8 model is rewritten
/// that way, the weights at offsets in one file as onnxruntime lays them out, and must give the same
/// logits bit for bit as with the weights inside the graph.
#[test]
fn int8_with_weights_in_a_data_file_gives_the_same_logits() {
    use prost::Message;
    use tract_onnx::pb::{tensor_proto::DataLocation, StringStringEntryProto};
    use tract_onnx::prelude::Framework;

    let dir = scratch("external-data");
    copy_dir(&tiny_model("int8"), &dir);
    let graph_path = dir.join("model.int8.onnx");
    let mut proto = tract_onnx::onnx()
        .proto_model_for_path(&graph_path)
        .unwrap();
    let mut data = Vec::new();
    let mut moved = 0;
    for init in &mut proto.graph.as_mut().unwrap().initializer {
        if init.raw_data.len() < 1024 {
            continue;
        }
        let entry = |key: &str, value: String| StringStringEntryProto {
            key: key.into(),
            value,
        };
        init.external_data = vec![
            entry("location", "model.int8.onnx.data".into()),
            entry("offset", data.len().to_string()),
            entry("length", init.raw_data.len().to_string()),
        ];
        init.data_location = Some(DataLocation::External as i32);
        data.append(&mut init.raw_data);
        // onnxruntime aligns each tensor to 4 KiB in its data files.
        data.resize(data.len().next_multiple_of(4096), 0);
        moved += 1;
    }
    assert!(moved > 10, "only {moved} initializers moved out");
    let graph = proto.encode_to_vec();
    std::fs::write(dir.join("model.int8.onnx.data"), &data).unwrap();
    std::fs::write(&graph_path, &graph).unwrap();
    // The manifest records each file's size (checked at load) and hash, as the exporter writes them.
    let manifest_path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let entry = |bytes: &[u8]| {
        use sha2::Digest;
        let sha256: String = sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        serde_json::json!({"size": bytes.len(), "sha256": sha256})
    };
    manifest["files"]["model.int8.onnx"] = entry(&graph);
    manifest["files"]["model.int8.onnx.data"] = entry(&data);
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();

    // Two threads: the parsing thread and one reading weights beside it.
    let external = Engine::load(&dir, &EngineOptions { threads: 2 }).unwrap();
    let embedded = engine("int8");
    let audio = samples(REFERENCE_WAVS[0]);
    let pack = |e: &Engine| e.language("eng").unwrap();
    let want = embedded.logits(&pack(&embedded), &audio).unwrap();
    let got = external.logits(&pack(&external), &audio).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!((got.frames, got.vocab), (want.frames, want.vocab));
    assert!(bits(&got.values) == bits(&want.values), "logits differ");
}
