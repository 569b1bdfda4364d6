//! Capture → VAD through the real threads and ring: `edgescribe listen` on a recording.

use crate::common::daemon::{quiet, read_wav, write_wav};
use crate::common::*;

/// 1 s of quiet room noise, the fixture command, 1.5 s quiet, the command again, 1 s quiet.
fn two_commands_wav(path: &std::path::Path) -> (usize, usize) {
    let speech = read_wav(&audio("eng_lights.wav"));
    let mut all = quiet(16000, 12345);
    let first = all.len();
    all.extend(&speech);
    all.extend(quiet(24000, 1));
    let second = all.len();
    all.extend(&speech);
    all.extend(quiet(16000, 2));
    write_wav(path, &all);
    (first, second)
}

#[test]
fn listen_cuts_each_spoken_command_with_its_onset() {
    let dir = scratch("listen");
    let wav = dir.join("two.wav");
    let (first, second) = two_commands_wav(&wav);
    let out = edgescribe_command()
        .args(["listen", "--input", &wav.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, onset) in lines.iter().zip([first, second]) {
        let onset_ms = onset as u64 / 16;
        let (start, end) = (
            line["start_ms"].as_u64().unwrap(),
            line["end_ms"].as_u64().unwrap(),
        );
        assert!(
            start <= onset_ms + 55,
            "utterance starts at {start} ms, after the speech at {onset_ms}+55 ms: {line}"
        );
        assert!(start + 600 > onset_ms, "too much lead-in: {line}");
        // The recording's speech runs from 55 ms to 1374 ms; the utterance must cover it, plus post-roll,
        // and end within the hangover of it.
        assert!(
            end >= onset_ms + 1374 && end < onset_ms + 1374 + 1000,
            "{line}"
        );
        assert_eq!(line["end_reason"], "silence");
    }
}
