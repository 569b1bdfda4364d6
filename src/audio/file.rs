//! A WAV recording as an audio source, so the whole daemon can be run and tested on files.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::ring::RingWriter;
use super::source::{AudioError, AudioSource, SourceStats};
use super::wav::{self, WavStream};
use super::MODEL_RATE_HZ;
use crate::retry::Cancel;

/// Samples per block written to the ring: 20 ms at 16 kHz, the same granularity as a capture period.
const BLOCK: usize = 320;
/// Input frames read from the file at a time (about half a second at 48 kHz).
const READ_FRAMES: usize = 1 << 14;

pub struct WavSource {
    path: PathBuf,
    /// Pace the file as a microphone would deliver it (one block per 20 ms of wall time). Without it,
    /// the file is read as fast as the reader takes it: a full ring makes the file wait (back-pressure),
    /// since a recording, unlike a microphone, loses nothing by waiting.
    realtime: bool,
}

impl WavSource {
    pub fn new(path: impl Into<PathBuf>, realtime: bool) -> WavSource {
        WavSource {
            path: path.into(),
            realtime,
        }
    }
}

impl AudioSource for WavSource {
    fn describe(&self) -> String {
        format!(
            "wav:{}{}",
            self.path.display(),
            if self.realtime { " (real-time)" } else { "" }
        )
    }

    fn run(
        &mut self,
        out: &mut RingWriter,
        stop: &Cancel,
        stats: &SourceStats,
    ) -> Result<(), AudioError> {
        let file_err = |e: wav::WavError| AudioError::File {
            path: self.path.clone(),
            reason: e.reason,
        };
        // Read as it is consumed: memory stays one read's worth whatever the recording's length.
        let mut stream = WavStream::open(&self.path, MODEL_RATE_HZ).map_err(file_err)?;
        stats.live.store(true, Ordering::Relaxed);
        let start = Instant::now();
        let mut converted = Vec::with_capacity(READ_FRAMES);
        let mut sent = 0u64;
        loop {
            converted.clear();
            let more = stream
                .read_into(READ_FRAMES, &mut converted)
                .map_err(file_err)?;
            for block in converted.chunks(BLOCK) {
                if stop.is_cancelled() {
                    return Ok(());
                }
                if self.realtime {
                    let due =
                        start + Duration::from_micros(sent * 1_000_000 / MODEL_RATE_HZ as u64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        if stop.sleep(wait) {
                            return Ok(());
                        }
                    }
                } else {
                    while out.free() < block.len() {
                        if stop.is_cancelled() {
                            return Ok(());
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                out.push(block);
                sent += block.len() as u64;
                stats
                    .samples
                    .fetch_add(block.len() as u64, Ordering::Relaxed);
            }
            if !more {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ring::{ring, Read};
    use crate::audio::source::Capture;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/audio")
            .join(name)
    }

    #[test]
    fn delivers_the_whole_file_through_a_small_ring_without_loss() {
        let (writer, mut reader) = ring(1024);
        let mut cap = Capture::spawn(
            Box::new(WavSource::new(fixture("fmt_48k_f32_stereo.wav"), false)),
            writer,
        )
        .unwrap();
        let mut got = Vec::new();
        while reader.read(&mut got, Duration::from_secs(5)) != Read::Closed {}
        cap.join().unwrap();
        let want = wav::read_mono(&fixture("fmt_48k_f32_stereo.wav"), MODEL_RATE_HZ).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        assert_eq!(reader.stats().dropped_samples.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let (writer, _reader) = ring(1024);
        let mut cap =
            Capture::spawn(Box::new(WavSource::new("/nonexistent.wav", false)), writer).unwrap();
        let err = cap.join().unwrap_err().to_string();
        assert!(err.contains("/nonexistent.wav"), "{err}");
    }

    #[test]
    fn realtime_pacing_delivers_at_the_recording_rate() {
        let path =
            std::env::temp_dir().join(format!("edgescribe-pacing-{}.wav", std::process::id()));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        (0..4800).for_each(|i| w.write_sample((i % 100) as i16).unwrap());
        w.finalize().unwrap();

        let (writer, mut reader) = ring(64_000);
        let t0 = Instant::now();
        let mut cap = Capture::spawn(Box::new(WavSource::new(&path, true)), writer).unwrap();
        cap.join().unwrap();
        let elapsed = t0.elapsed();
        let mut got = Vec::new();
        reader.read(&mut got, Duration::ZERO);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.len(), 4800);
        // 300 ms of audio in 15 blocks: the last is due 280 ms after the first.
        assert!(elapsed >= Duration::from_millis(280), "{elapsed:?}");
    }
}
