//! Reading WAV files of any common format into what the recogniser takes: 16 kHz mono f32.

use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader};

use super::resample::Resampler;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct WavError {
    pub path: PathBuf,
    pub reason: String,
}

/// Decoded audio before conversion: interleaved samples scaled to [-1, 1].
#[derive(Debug, Clone)]
pub struct WavAudio {
    pub sample_rate: u32,
    pub channels: u16,
    pub interleaved: Vec<f32>,
}

/// Reads 8/16/24/32-bit integer or 32-bit float PCM, any channel count.
pub fn read(path: &Path) -> Result<WavAudio, WavError> {
    let err = |reason: String| WavError {
        path: path.to_path_buf(),
        reason,
    };
    let reader = WavReader::open(path).map_err(|e| err(describe(e)))?;
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
    let interleaved: Result<Vec<f32>, hound::Error> =
        match (spec.sample_format, spec.bits_per_sample) {
            (SampleFormat::Float, 32) => reader.into_samples::<f32>().collect(),
            (SampleFormat::Int, bits @ 8..=32) => {
                let scale = 1.0 / (1u64 << (bits - 1)) as f32;
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect()
            }
            (format, bits) => {
                return Err(err(format!(
                    "unsupported sample format: {bits}-bit {format:?}"
                )))
            }
        };
    let interleaved = interleaved.map_err(|e| err(describe(e)))?;
    Ok(WavAudio {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        interleaved,
    })
}

/// Averages the channels into one.
pub fn downmix(interleaved: &[f32], channels: u16) -> Vec<f32> {
    let c = channels.max(1) as usize;
    if c == 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(c)
        .map(|frame| frame.iter().sum::<f32>() / c as f32)
        .collect()
}

/// Reads a WAV file and converts it to mono at `rate_hz`.
pub fn read_mono(path: &Path, rate_hz: u32) -> Result<Vec<f32>, WavError> {
    let audio = read(path)?;
    let mono = downmix(&audio.interleaved, audio.channels);
    Resampler::convert(&mono, audio.sample_rate, rate_hz).map_err(|reason| WavError {
        path: path.to_path_buf(),
        reason,
    })
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

    #[test]
    fn downmix_averages_frames() {
        assert_eq!(downmix(&[1.0, 0.0, 0.5, 0.5], 2), vec![0.5, 0.5]);
        assert_eq!(downmix(&[0.25, 0.5], 1), vec![0.25, 0.5]);
    }
}
