//! One request's audio: PCM of the rate, width and channel count `audio-start` announced, to 16 kHz
//! mono `f32` through the resampler the microphone uses, bounded in length. Pure: bytes in, samples out.

use serde_json::{Map, Value};

use crate::audio::resample::Resampler;
use crate::audio::MODEL_RATE_HZ;

/// The PCM format of `audio-start` and `audio-chunk`: little-endian signed integers of `width`
/// bytes (unsigned for width 1, as Python's `audioop`), `channels` interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub rate: u32,
    pub width: u8,
    pub channels: u8,
}

/// Why a request's audio is refused, with the `code` of the `error` event sent for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    #[error("unsupported audio format: {0}")]
    Format(String),
    #[error("audio-chunk format {got:?} differs from audio-start's {started:?}")]
    Changed { started: Format, got: Format },
    #[error("audio longer than {max_s} s (wyoming.max_audio_s)")]
    TooLong { max_s: u64 },
}

impl AudioError {
    pub fn code(&self) -> &'static str {
        match self {
            AudioError::Format(_) | AudioError::Changed { .. } => "bad_audio_format",
            AudioError::TooLong { .. } => "audio_too_long",
        }
    }
}

impl Format {
    /// From an event's data. Rates 1 kHz to 384 kHz, widths 1 to 4 bytes, 1 to 32 channels.
    pub fn from_data(data: &Map<String, Value>) -> Result<Format, AudioError> {
        let field = |key: &str, max: u64| -> Result<u64, AudioError> {
            data.get(key)
                .and_then(Value::as_u64)
                .filter(|v| (1..=max).contains(v))
                .ok_or_else(|| AudioError::Format(format!("{key} must be 1 to {max}")))
        };
        let rate = field("rate", 384_000)?;
        if rate < 1000 {
            return Err(AudioError::Format("rate must be 1000 to 384000".into()));
        }
        Ok(Format {
            rate: rate as u32,
            width: field("width", 4)? as u8,
            channels: field("channels", 32)? as u8,
        })
    }

    fn frame_bytes(&self) -> usize {
        self.width as usize * self.channels as usize
    }

    /// One sample at `bytes` (exactly `width` long) as −1…1.
    fn sample(&self, bytes: &[u8]) -> f32 {
        match bytes {
            [b] => (*b as f32 - 128.0) / 128.0,
            [a, b] => i16::from_le_bytes([*a, *b]) as f32 / 32_768.0,
            [a, b, c] => (i32::from_le_bytes([0, *a, *b, *c]) >> 8) as f32 / 8_388_608.0,
            [a, b, c, d] => i32::from_le_bytes([*a, *b, *c, *d]) as f32 / 2_147_483_648.0,
            _ => 0.0,
        }
    }
}

/// A request's audio on its way to 16 kHz mono.
pub struct AudioIn {
    format: Format,
    resampler: Resampler,
    /// Bytes of an incomplete frame, kept for the next chunk (a chunk may end mid-frame).
    partial: Vec<u8>,
    mono: Vec<f32>,
    out: Vec<f32>,
    frames: u64,
    max_frames: u64,
    max_s: u64,
}

impl AudioIn {
    pub fn start(format: Format, max_s: u64) -> Result<AudioIn, AudioError> {
        let resampler = Resampler::new(format.rate, MODEL_RATE_HZ).map_err(AudioError::Format)?;
        Ok(AudioIn {
            format,
            resampler,
            partial: Vec::new(),
            mono: Vec::new(),
            out: Vec::with_capacity(MODEL_RATE_HZ as usize * 5),
            frames: 0,
            max_frames: max_s * format.rate as u64,
            max_s,
        })
    }

    /// Adds one chunk. Its format must be the one started with; the total must stay within the bound.
    pub fn push(&mut self, format: Format, mut pcm: &[u8]) -> Result<(), AudioError> {
        if format != self.format {
            return Err(AudioError::Changed {
                started: self.format,
                got: format,
            });
        }
        let frame = self.format.frame_bytes();
        let new_frames = (self.partial.len() + pcm.len()) / frame;
        if self.frames + new_frames as u64 > self.max_frames {
            return Err(AudioError::TooLong { max_s: self.max_s });
        }
        self.mono.clear();
        if !self.partial.is_empty() {
            let take = (frame - self.partial.len()).min(pcm.len());
            self.partial.extend_from_slice(&pcm[..take]);
            pcm = &pcm[take..];
            if self.partial.len() == frame {
                let whole = std::mem::take(&mut self.partial);
                self.mix(&whole);
            }
        }
        let whole = pcm.len() / frame * frame;
        self.mix(&pcm[..whole]);
        self.partial.extend_from_slice(&pcm[whole..]);
        self.frames += new_frames as u64;
        let mono = std::mem::take(&mut self.mono);
        self.resampler.process(&mono, &mut self.out);
        self.mono = mono;
        Ok(())
    }

    /// Down-mixes whole frames (the mean of the channels) into `mono`.
    fn mix(&mut self, frames: &[u8]) {
        let (width, channels) = (self.format.width as usize, self.format.channels as f32);
        for frame in frames.chunks_exact(self.format.frame_bytes()) {
            let sum: f32 = frame
                .chunks_exact(width)
                .map(|s| self.format.sample(s))
                .sum();
            self.mono.push(sum / channels);
        }
    }

    /// The whole request as 16 kHz mono (an incomplete last frame is dropped).
    pub fn finish(mut self) -> Vec<f32> {
        self.resampler.finish(&mut self.out);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn format(rate: u32, width: u8, channels: u8) -> Format {
        Format {
            rate,
            width,
            channels,
        }
    }

    #[test]
    fn formats_from_event_data() {
        let data = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            Format::from_data(&data(json!({"rate": 44100, "width": 2, "channels": 2}))),
            Ok(format(44100, 2, 2))
        );
        for bad in [
            json!({"rate": 16000, "width": 2}),
            json!({"rate": 0, "width": 2, "channels": 1}),
            json!({"rate": 500, "width": 2, "channels": 1}),
            json!({"rate": 16000, "width": 5, "channels": 1}),
            json!({"rate": 16000, "width": 2, "channels": 0}),
            json!({"rate": "16000", "width": 2, "channels": 1}),
            json!({"rate": -1, "width": 2, "channels": 1}),
        ] {
            assert!(Format::from_data(&data(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_width_decodes_full_scale() {
        let f = |w| format(16000, w, 1);
        assert_eq!(f(1).sample(&[0]), -1.0);
        assert_eq!(f(1).sample(&[128]), 0.0);
        assert_eq!(f(2).sample(&(-32768i16).to_le_bytes()), -1.0);
        assert_eq!(f(2).sample(&16384i16.to_le_bytes()), 0.5);
        assert_eq!(f(3).sample(&[0, 0, 0x80]), -1.0);
        assert_eq!(f(3).sample(&[0, 0, 0x40]), 0.5);
        assert_eq!(f(4).sample(&i32::MIN.to_le_bytes()), -1.0);
    }

    #[test]
    fn stereo_is_mixed_and_frames_may_be_split_across_chunks() {
        let fmt = format(16000, 2, 2);
        let mut a = AudioIn::start(fmt, 10).unwrap();
        let frames: Vec<u8> = [(8192i16, 8192i16), (16384, 0), (-16384, -16384)]
            .iter()
            .flat_map(|(l, r)| [l.to_le_bytes(), r.to_le_bytes()].concat())
            .collect();
        a.push(fmt, &frames[..3]).unwrap();
        a.push(fmt, &frames[3..7]).unwrap();
        a.push(fmt, &frames[7..]).unwrap();
        assert_eq!(a.finish(), vec![0.25, 0.25, -0.5]);
    }

    #[test]
    fn a_44k_stereo_second_becomes_16000_samples() {
        let fmt = format(44100, 2, 2);
        let mut a = AudioIn::start(fmt, 10).unwrap();
        // 1 kHz tone, same on both channels, in 1024-frame chunks as Home Assistant sends.
        let pcm: Vec<u8> = (0..44100)
            .flat_map(|i| {
                let s = ((i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 44100.0).sin() * 16000.0)
                    as i16;
                [s.to_le_bytes(), s.to_le_bytes()].concat()
            })
            .collect();
        for chunk in pcm.chunks(1024 * 4) {
            a.push(fmt, chunk).unwrap();
        }
        let out = a.finish();
        assert_eq!(out.len(), 16000);
        let rms = (out[1000..15000].iter().map(|s| s * s).sum::<f32>() / 14000.0).sqrt();
        let expected = 16000.0 / 32768.0 / 2f32.sqrt();
        assert!((rms - expected).abs() < 0.01, "rms {rms} vs {expected}");
    }

    #[test]
    fn the_bound_and_format_changes_are_errors() {
        let fmt = format(16000, 2, 1);
        let mut a = AudioIn::start(fmt, 1).unwrap();
        a.push(fmt, &vec![0; 32000]).unwrap();
        assert_eq!(a.push(fmt, &[0, 0]), Err(AudioError::TooLong { max_s: 1 }));
        let mut a = AudioIn::start(fmt, 1).unwrap();
        let e = a.push(format(8000, 2, 1), &[0, 0]).unwrap_err();
        assert_eq!(e.code(), "bad_audio_format");
    }
}
