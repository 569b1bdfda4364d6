//! `edgescribe transcribe` as a user runs it: output formats, and every error a user can cause
//! giving one clear line and a non-zero exit, never a panic.

use std::path::Path;

use crate::common::*;

fn model_arg(dir: &Path) -> String {
    dir.display().to_string()
}

/// Runs a command expected to fail; returns its one error line.
fn fails(args: &[&str]) -> String {
    let out = edgescribe(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: exit {:?}, stderr:\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("edgescribe: error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{args:?}: expected one error line, got:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?}: nothing on stdout on error"
    );
    errors[0].to_string()
}

fn transcribe_with(model: &Path, lang: &str, wav: &str) -> String {
    fails(&[
        "transcribe",
        "--model",
        &model_arg(model),
        "--lang",
        lang,
        &audio(wav).display().to_string(),
    ])
}

#[test]
fn prints_the_transcript_and_json_with_word_times() {
    let wav = audio("fra_volets.wav").display().to_string();
    let model = model_arg(&tiny_model("int8"));
    let out = edgescribe(&["transcribe", "--model", &model, "--lang", "fra", &wav]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);

    let out = edgescribe(&[
        "transcribe",
        "--model",
        &model,
        "--lang",
        "fra",
        "--json",
        &wav,
    ]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["text"].as_str().unwrap(), text.trim_end());
    assert_eq!(json["language"], "fra");
    assert_eq!(json["duration_ms"], 1895);
    let confidence = json["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));
    let words = json["words"].as_array().unwrap();
    assert_eq!(
        words.len(),
        json["text"].as_str().unwrap().split(' ').count()
    );
    let mut last_end = 0;
    for w in words {
        let (start, end) = (
            w["start_ms"].as_u64().unwrap(),
            w["end_ms"].as_u64().unwrap(),
        );
        assert!(start >= last_end && end > start && end <= 1900, "{w}");
        assert_eq!(start % 20, 0, "CTC frames are 20 ms");
        assert!((0.0..=1.0).contains(&w["confidence"].as_f64().unwrap()));
        last_end = end;
    }
}

#[test]
fn stereo_48k_float_input_is_accepted() {
    let wav = audio("fmt_48k_f32_stereo.wav").display().to_string();
    let out = edgescribe(&[
        "transcribe",
        "--model",
        &model_arg(&tiny_model("fp32")),
        "--lang",
        "eng",
        &wav,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_model_directory() {
    let line = transcribe_with(Path::new("/nonexistent/model"), "eng", "eng_lights.wav");
    assert!(
        line.contains("/nonexistent/model") && line.contains("not a directory"),
        "{line}"
    );
}

#[test]
fn truncated_or_corrupt_model_file() {
    let dir = scratch("truncated-model");
    copy_dir(&tiny_model("int8"), &dir);
    let onnx = dir.join("model.int8.onnx");
    let bytes = std::fs::read(&onnx).unwrap();
    std::fs::write(&onnx, &bytes[..bytes.len() / 2]).unwrap();
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(
        line.contains("model.int8.onnx") && line.contains("truncated"),
        "{line}"
    );

    // Same size, garbage content: caught when the graph is parsed.
    std::fs::write(&onnx, vec![0x5a; bytes.len()]).unwrap();
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(
        line.contains("model.int8.onnx") && line.contains("not a loadable ONNX graph"),
        "{line}"
    );

    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(line.contains("manifest.json"), "{line}");
}

#[test]
fn manifest_that_does_not_match_the_graph() {
    let dir = scratch("mismatched-manifest");
    copy_dir(&tiny_model("int8"), &dir);
    let path = dir.join("manifest.json");
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();

    let mut renamed = original.clone();
    renamed["graph"]["adapter_inputs"][3]["name"] =
        "wav2vec2.encoder.layers.0.adapter_layer.linear_9.bias".into();
    std::fs::write(&path, renamed.to_string()).unwrap();
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(
        line.contains("does not match the model") && line.contains("linear_9"),
        "{line}"
    );

    let mut fewer = original.clone();
    fewer["graph"]["adapter_inputs"]
        .as_array_mut()
        .unwrap()
        .pop();
    std::fs::write(&path, fewer.to_string()).unwrap();
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(
        line.contains("does not match the model") && line.contains("inputs"),
        "{line}"
    );

    let mut reshaped = original;
    reshaped["graph"]["adapter_inputs"][2]["shape"] = serde_json::json!([16, 64]);
    std::fs::write(&path, reshaped.to_string()).unwrap();
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(
        line.contains("does not match the model") && line.contains("[16, 64]"),
        "{line}"
    );
}

/// Rewrites `adapters/adapter.eng.safetensors` through `edit` (name -> (shape, f32 values)).
fn edit_adapter(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    let path = dir.join("adapters/adapter.eng.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, v.shape().to_vec(), vals)
        })
        .collect();
    edit(&mut tensors);
    write_f32_safetensors(&path, &tensors);
}

#[test]
fn adapter_with_a_missing_or_misshapen_tensor() {
    let dir = scratch("bad-adapter");
    copy_dir(&tiny_model("int8"), &dir);
    edit_adapter(&dir, |t| {
        t.retain(|(n, _, _)| n != "wav2vec2.encoder.layers.1.adapter_layer.linear_1.weight")
    });
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(
        line.contains("adapter.eng.safetensors") && line.contains("missing tensor"),
        "{line}"
    );
    assert!(
        line.contains("layers.1.adapter_layer.linear_1.weight"),
        "{line}"
    );

    copy_dir(&tiny_model("int8"), &dir);
    edit_adapter(&dir, |t| {
        let w = t
            .iter_mut()
            .find(|(n, _, _)| n == "lm_head.weight")
            .unwrap();
        w.1 = vec![w.1[0] - 1, w.1[1]];
        w.2.truncate(w.1[0] * w.1[1]);
    });
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(
        line.contains("lm_head.weight has shape") && line.contains("the model needs"),
        "{line}"
    );

    copy_dir(&tiny_model("int8"), &dir);
    std::fs::write(
        dir.join("adapters/adapter.eng.safetensors"),
        b"definitely not safetensors",
    )
    .unwrap();
    let line = transcribe_with(&dir, "eng", "eng_lights.wav");
    assert!(line.contains("adapter.eng.safetensors"), "{line}");
}

#[test]
fn unknown_language_suggests_close_codes() {
    let line = transcribe_with(&tiny_model("int8"), "fre", "eng_lights.wav");
    assert!(
        line.contains("unknown language \"fre\"") && line.contains("did you mean fra"),
        "{line}"
    );
    let line = transcribe_with(&tiny_model("int8"), "klingon", "eng_lights.wav");
    assert!(
        line.contains("unknown language \"klingon\"") && !line.contains("did you mean"),
        "{line}"
    );
}

#[test]
fn known_language_whose_adapter_is_not_installed() {
    // `ita` is in the model's vocabulary but the export bundled only eng/fra/deu/spa.
    let line = transcribe_with(&tiny_model("int8"), "ita", "eng_lights.wav");
    assert!(line.contains("no adapter for language \"ita\""), "{line}");
}

#[test]
fn too_short_empty_and_unreadable_audio() {
    let model = tiny_model("int8");
    let line = transcribe_with(&model, "eng", "too_short.wav");
    assert!(
        line.contains("audio too short") && line.contains("320 samples") && line.contains("400"),
        "{line}"
    );

    let dir = scratch("bad-audio");
    let empty = dir.join("empty.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    hound::WavWriter::create(&empty, spec)
        .unwrap()
        .finalize()
        .unwrap();
    let text = dir.join("notes.wav");
    std::fs::write(&text, "this is not audio").unwrap();
    let m = model_arg(&model);
    let line = fails(&["transcribe", "--model", &m, &empty.display().to_string()]);
    assert!(line.contains("audio too short: 0 samples"), "{line}");
    let line = fails(&["transcribe", "--model", &m, &text.display().to_string()]);
    assert!(
        line.contains("notes.wav") && line.contains("not a valid WAV file"),
        "{line}"
    );
    let line = fails(&["transcribe", "--model", &m, "/nonexistent.wav"]);
    assert!(
        line.contains("/nonexistent.wav") && line.contains("No such file"),
        "{line}"
    );
}
