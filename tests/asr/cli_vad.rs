//! `edgescribe vad` as a user runs it to tune thresholds: JSON lines out, and one clear error line for a
//! bad setting or file.

use crate::common::*;

fn lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn prints_the_utterance_of_a_recording_and_its_frames() {
    let wav = audio("eng_lights.wav").display().to_string();
    let utterances = lines(&edgescribe(&["vad", &wav]));
    assert_eq!(utterances.len(), 1, "{utterances:?}");
    let u = &utterances[0];
    assert_eq!(u["type"], "utterance");
    let (start, end) = (
        u["start_ms"].as_f64().unwrap(),
        u["end_ms"].as_f64().unwrap(),
    );
    assert!(start < 300.0 && end > 1000.0 && end <= 1764.0, "{u}");

    let all = lines(&edgescribe(&["vad", "--frames", "--frame-ms", "10", &wav]));
    let frames: Vec<_> = all.iter().filter(|l| l["type"] == "frame").collect();
    // 1.76 s in 10 ms frames.
    assert_eq!(frames.len(), 176);
    assert!(frames.iter().any(|f| f["speech"] == true));
    assert!(frames[1]["start_ms"].as_f64().unwrap() == 10.0);
}

#[test]
fn bench_reports_the_cpu_share() {
    let wav = audio("eng_lights.wav").display().to_string();
    let report = lines(&edgescribe(&["vad", "--bench", "--runs", "1", &wav]));
    assert_eq!(report.len(), 1);
    assert!(report[0]["core_percent"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_bad_setting_or_file_is_one_error_line_naming_it() {
    let wav = audio("eng_lights.wav").display().to_string();
    for (args, expected) in [
        (
            vec!["vad", "--onset-db", "3", "--offset-db", "5", &wav],
            "[vad] offset_db",
        ),
        (vec!["vad", "--frame-ms", "50", &wav], "[vad] frame_ms"),
        (vec!["vad", "/nonexistent.wav"], "/nonexistent.wav"),
    ] {
        let out = edgescribe(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}
