//! Reading WAV files of any common format into what the recogniser takes: 16 kHz mono f32.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader};

use super::resample::Resampler;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct WavError {
    pub path: PathBuf,
    pub reason: String,
}

/// A WAV file read as it is consumed: 16 kHz mono (or any rate) in blocks, so that memory does not
/// grow with the recording's length (an hour of 48 kHz stereo float is 1.4 GB decoded whole).
/// Generic over the byte source so that the fuzz targets (`fuzz/`) read from memory.
pub struct WavStream<R: Read = BufReader<File>> {
    path: PathBuf,
    reader: WavReader<R>,
    channels: usize,
    sample_rate: u32,
    /// Integer samples are scaled by this; `None`: 32-bit float.
    int_scale: Option<f32>,
    resampler: Resampler,
    /// One block's interleaved input and its mono mix, reused.
    frame: Vec<f32>,
    mono: Vec<f32>,
    done: bool,
}

impl WavStream {
    /// Opens `path` and checks its format (the header only), converting to `rate_hz`.
    pub fn open(path: &Path, rate_hz: u32) -> Result<WavStream, WavError> {
        let file = File::open(path).map_err(|e| WavError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        WavStream::from_reader(BufReader::new(file), path, rate_hz)
    }
}

impl<R: Read> WavStream<R> {
    /// Reads a WAV from `source`; `path` names it in errors.
    pub fn from_reader(source: R, path: &Path, rate_hz: u32) -> Result<WavStream<R>, WavError> {
        let err = |reason: String| WavError {
            path: path.to_path_buf(),
            reason,
        };
        let reader = WavReader::new(source).map_err(|e| err(describe(e)))?;
        let spec = reader.spec();
        if spec.channels == 0 {
            return Err(err("no channels".into()));
        }
        if !(4000..=384_000).contains(&spec.sample_rate) {
            return Err(err(format!(
                "sample rate {} Hz is outside 4–384 kHz",
                spec.sample_rate
            )));
        }
        let int_scale = match (spec.sample_format, spec.bits_per_sample) {
            (SampleFormat::Float, 32) => None,
            (SampleFormat::Int, bits @ 8..=32) => Some(1.0 / (1u64 << (bits - 1)) as f32),
            (format, bits) => {
                return Err(err(format!(
                    "unsupported sample format: {bits}-bit {format:?}"
                )))
            }
        };
        let resampler = Resampler::new(spec.sample_rate, rate_hz).map_err(err)?;
        Ok(WavStream {
            path: path.to_path_buf(),
            reader,
            channels: spec.channels as usize,
            sample_rate: spec.sample_rate,
            int_scale,
            resampler,
            frame: Vec::new(),
            mono: Vec::new(),
            done: false,
        })
    }

    /// The recording's length as its header states it, in seconds (a truncated file is shorter).
    pub fn duration_s(&self) -> f64 {
        self.reader.duration() as f64 / self.sample_rate as f64
    }

    /// Reads up to `frames` input frames and appends them, converted, to `out`. Returns `false`
    /// once the file is exhausted (the resampler's tail included in that last call's output). A
    /// file cut short mid-sample ends there, like one cut at a sample boundary: a recording
    /// interrupted by a power cut still gives what it holds.
    pub fn read_into(&mut self, frames: usize, out: &mut Vec<f32>) -> Result<bool, WavError> {
        if self.done {
            return Ok(false);
        }
        self.frame.clear();
        let wanted = frames.max(1) * self.channels;
        let scale = self.int_scale;
        let result: Result<(), hound::Error> = match scale {
            None => self
                .reader
                .samples::<f32>()
                .take(wanted)
                // A float file may hold anything: NaN or 1e30 would poison the recogniser's
                // normalisation (the variance overflows). Clip to full scale, as an ADC does.
                .try_for_each(|s| s.map(|v| self.frame.push(full_scale(v)))),
            Some(scale) => self
                .reader
                .samples::<i32>()
                .take(wanted)
                .try_for_each(|s| s.map(|v| self.frame.push(v as f32 * scale))),
        };
        let ended = match result {
            Ok(()) => self.frame.len() < wanted,
            Err(hound::Error::IoError(e)) if is_cut_short(&e) => true,
            Err(e) => {
                return Err(WavError {
                    path: self.path.clone(),
                    reason: describe(e),
                })
            }
        };
        // Whole frames only: a trailing partial frame of a truncated file is dropped.
        self.frame
            .truncate(self.frame.len() / self.channels * self.channels);
        self.mono.clear();
        self.mono.extend(
            self.frame
                .chunks_exact(self.channels)
                .map(|f| f.iter().sum::<f32>() / self.channels as f32),
        );
        self.resampler.process(&self.mono, out);
        if ended {
            self.resampler.finish(out);
            self.done = true;
        }
        Ok(!ended)
    }
}

/// Reads a WAV file and converts it to mono at `rate_hz`, whole: for short files (use
/// [`WavStream`] for anything that may be long).
pub fn read_mono(path: &Path, rate_hz: u32) -> Result<Vec<f32>, WavError> {
    let mut stream = WavStream::open(path, rate_hz)?;
    let mut out = Vec::new();
    while stream.read_into(1 << 16, &mut out)? {}
    Ok(out)
}

/// A float sample clipped to [-1, 1]; NaN is silence.
fn full_scale(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-1.0, 1.0)
    }
}

/// hound reports data that ends before its header says as an `Other` I/O error with this text
/// (its `read_le_*` helpers), or as `UnexpectedEof` from the reader below it.
fn is_cut_short(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::UnexpectedEof || e.to_string() == "Failed to read enough bytes."
}

fn describe(e: hound::Error) -> String {
    match e {
        hound::Error::IoError(io) => io.to_string(),
        hound::Error::FormatError(what) => format!("not a valid WAV file ({what})"),
        other => format!("not a readable WAV file ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/audio")
            .join(name)
    }

    /// Streamed in blocks of any size, a file gives exactly what the whole-file conversion gives.
    #[test]
    fn streaming_matches_converting_whole() {
        for name in [
            "fmt_8k_s16_mono.wav",
            "fmt_22k05_s32_mono.wav",
            "fmt_44k1_s24_stereo.wav",
            "fmt_48k_f32_stereo.wav",
        ] {
            // The reference: hound's samples, averaged and resampled in one go.
            let mut reader = WavReader::open(fixture(name)).unwrap();
            let spec = reader.spec();
            let interleaved: Vec<f32> = match spec.sample_format {
                SampleFormat::Float => reader.samples::<f32>().map(Result::unwrap).collect(),
                SampleFormat::Int => {
                    let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
                    reader
                        .samples::<i32>()
                        .map(|s| s.unwrap() as f32 * scale)
                        .collect()
                }
            };
            let c = spec.channels as usize;
            let mono: Vec<f32> = interleaved
                .chunks_exact(c)
                .map(|f| f.iter().sum::<f32>() / c as f32)
                .collect();
            let whole = Resampler::convert(&mono, spec.sample_rate, 16_000).unwrap();
            for block in [1, 333, 4096, 1 << 20] {
                let mut stream = WavStream::open(&fixture(name), 16_000).unwrap();
                let mut out = Vec::new();
                while stream.read_into(block, &mut out).unwrap() {}
                assert_eq!(out.len(), whole.len(), "{name} in blocks of {block}");
                let worst = out
                    .iter()
                    .zip(&whole)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-5, "{name} in blocks of {block}: {worst}");
            }
        }
    }

    /// A recording cut short (a power cut, a full disk), even inside a sample, gives what it holds.
    #[test]
    fn a_truncated_file_gives_what_it_holds() {
        let bytes = std::fs::read(fixture("fmt_44k1_s24_stereo.wav")).unwrap();
        let dir = std::env::temp_dir().join(format!("es-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cut = dir.join("cut.wav");
        std::fs::write(&cut, &bytes[..bytes.len() / 2 + 1]).unwrap();
        let mut stream = WavStream::open(&cut, 16_000).unwrap();
        let mut out = Vec::new();
        while stream.read_into(4096, &mut out).unwrap() {}
        let full = read_mono(&fixture("fmt_44k1_s24_stereo.wav"), 16_000).unwrap();
        assert!(
            out.len() > full.len() / 3 && out.len() < full.len(),
            "{} of {}",
            out.len(),
            full.len()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A float file's NaN, infinities and values far beyond full scale (a corrupt or hostile file)
    /// come out clipped: the recogniser's normalisation would otherwise turn them into NaN.
    #[test]
    fn float_samples_are_clipped_to_full_scale() {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 32,
            sample_format: SampleFormat::Float,
        };
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
        let wild = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -5.0, 0.5];
        for _ in 0..100 {
            for v in wild {
                writer.write_sample(v).unwrap();
            }
        }
        writer.finalize().unwrap();
        let data = bytes.into_inner();
        let mut stream = WavStream::from_reader(
            std::io::Cursor::new(&data[..]),
            Path::new("wild.wav"),
            16_000,
        )
        .unwrap();
        let mut out = Vec::new();
        while stream.read_into(64, &mut out).unwrap() {}
        assert_eq!(out.len(), 600);
        assert!(
            out.iter().all(|x| x.is_finite() && x.abs() <= 1.0),
            "{:?}",
            &out[..6]
        );
        assert_eq!(&out[..6], &[0.0, 1.0, -1.0, 1.0, -1.0, 0.5]);
    }
}
