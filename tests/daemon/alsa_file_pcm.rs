//! Real ALSA capture without hardware: PCMs of `type file` reading raw data (`infile`), configured
//! through `ALSA_CONFIG_PATH`. Such a PCM has no clock and returns stale data past the end of its
//! file, so each test reads exactly as many samples as the file holds, then stops the capture.

use std::f64::consts::PI;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common;
use edgescribe::audio::alsa::{AlsaConfig, AlsaSource};
use edgescribe::audio::capture::ChannelMode;
use edgescribe::audio::ring::{ring, Read};
use edgescribe::audio::source::Capture;

const SECONDS: f64 = 1.5;

fn tone_mix(t: f64) -> f64 {
    0.3 * (2.0 * PI * 440.0 * t).sin()
        + 0.2 * (2.0 * PI * 1230.0 * t).sin()
        + 0.1 * (2.0 * PI * 3000.0 * t).sin()
}

/// Left: speech-band tones. Right: a 12 kHz tone, which must not survive the conversion to 16 kHz.
fn stereo48_frame(i: usize) -> (f64, f64) {
    let t = i as f64 / 48000.0;
    (tone_mix(t), 0.4 * (2.0 * PI * 12000.0 * t).sin())
}

fn write_i16(path: &PathBuf, samples: impl Iterator<Item = f64>) {
    let bytes: Vec<u8> = samples
        .flat_map(|v| ((v * 32767.0).round() as i16).to_le_bytes())
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// Writes the raw files and the ALSA configuration once per test process.
fn alsa_setup() -> &'static (Vec<i16>, usize) {
    static SETUP: OnceLock<(Vec<i16>, usize)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = common::scratch("alsa-file-pcm");
        let mono: Vec<i16> = hound::WavReader::open(common::audio("eng_lights.wav"))
            .unwrap()
            .into_samples()
            .map(|s| s.unwrap())
            .collect();
        let mono_raw = dir.join("mono16.raw");
        std::fs::write(
            &mono_raw,
            mono.iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        let frames48 = (48000.0 * SECONDS) as usize;
        let stereo_raw = dir.join("stereo48.raw");
        write_i16(
            &stereo_raw,
            (0..frames48).flat_map(|i| {
                let (l, r) = stereo48_frame(i);
                [l, r]
            }),
        );
        let conf = dir.join("asound.conf");
        std::fs::write(
            &conf,
            format!(
                r#"
pcm.es_mono16 {{
    type plug
    slave {{ pcm "es_file16"; format S16_LE; rate 16000; channels 1 }}
}}
pcm.es_file16 {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{mono}"
    format "raw"
}}
pcm.es_file48 {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{stereo}"
    format "raw"
}}
pcm.es_stereo48 {{
    type plug
    slave {{ pcm "es_file48"; format S16_LE; rate 48000; channels 2 }}
}}
"#,
                mono = mono_raw.display(),
                stereo = stereo_raw.display()
            ),
        )
        .unwrap();
        // Set once for the whole process, before any test opens a device: the tests of this module
        // share it, and no other module of this binary opens ALSA in-process (see main.rs).
        std::env::set_var(
            "ALSA_CONFIG_PATH",
            format!("/usr/share/alsa/alsa.conf:{}", conf.display()),
        );
        (mono, frames48)
    })
}

/// Captures `n` samples from `device`, then stops.
fn capture(device: &str, channel: ChannelMode, n: usize) -> Vec<f32> {
    alsa_setup();
    let (writer, mut reader) = ring(1 << 18);
    let config = AlsaConfig {
        device: device.into(),
        channel,
        ..AlsaConfig::default()
    };
    let cap = Capture::spawn(Box::new(AlsaSource::new(config)), writer).unwrap();
    let mut got = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "{device}: only {} of {n} samples",
            got.len()
        );
        if reader.read(&mut got, Duration::from_millis(200)) == Read::Closed {
            panic!("{device}: capture ended after {} samples", got.len());
        }
    }
    cap.stop().unwrap();
    got.truncate(n);
    got
}

fn snr_db(got: &[f32], want: &[f64]) -> f64 {
    let (mut sig, mut err) = (0.0, 0.0);
    for (g, w) in got.iter().zip(want) {
        sig += w * w;
        err += (*g as f64 - w).powi(2);
    }
    10.0 * (sig / err).log10()
}

#[test]
fn mono_16k_device_delivers_the_file_samples_exactly() {
    let (mono, _) = alsa_setup();
    let got = capture("es_mono16", ChannelMode::Mix, mono.len());
    let got: Vec<i16> = got
        .iter()
        .map(|v| (*v as f64 * 32768.0).round() as i16)
        .collect();
    assert_eq!(&got, mono);
}

#[test]
fn stereo_48k_device_comes_out_as_the_right_16k_mono_signal() {
    let (_, frames48) = *alsa_setup();
    let n = frames48 / 3;
    // Skip the edges (the resampler's filter ramps in and out) and compare the middle.
    let ideal =
        |f: &dyn Fn(f64) -> f64| -> Vec<f64> { (0..n).map(|i| f(i as f64 / 16000.0)).collect() };

    let left = capture("es_stereo48", ChannelMode::Pick(0), n);
    let want_left = ideal(&tone_mix);
    let snr = snr_db(&left[800..n - 800], &want_left[800..n - 800]);
    assert!(snr > 40.0, "left channel: SNR {snr:.1} dB");

    // The right channel holds only 12 kHz: above 8 kHz it must be filtered out, not folded to 4 kHz.
    let right = capture("es_stereo48", ChannelMode::Pick(1), n);
    let rms = (right[800..n - 800]
        .iter()
        .map(|v| (*v as f64).powi(2))
        .sum::<f64>()
        / (n - 1600) as f64)
        .sqrt();
    assert!(
        20.0 * (rms / 0.4).log10() < -50.0,
        "12 kHz leaked: rms {rms:.5}"
    );
    // (Mix on a `plug` device is ALSA's own down-mix, and a clock-less file PCM behind a channel
    // conversion skips data, so our averaging is tested through the PCM boundary in capture_tests.)
}

#[test]
fn missing_device_is_retried_not_fatal() {
    alsa_setup();
    let (writer, _reader) = ring(1024);
    let config = AlsaConfig {
        device: "es_no_such_device".into(),
        ..AlsaConfig::default()
    };
    let cap = Capture::spawn(Box::new(AlsaSource::new(config)), writer).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        cap.is_running(),
        "a device that is not there yet (USB) is waited for"
    );
    assert!(!cap.stats().live.load(std::sync::atomic::Ordering::Relaxed));
    cap.stop().unwrap();
}

#[test]
fn devices_lists_capture_pcms_with_what_they_offer() {
    alsa_setup();
    let out = common::edgescribe_command()
        .arg("devices")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("es_stereo48\t"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("rates 48000 Hz") && line.contains("S16_LE"),
        "{line}"
    );
}
