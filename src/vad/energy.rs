//! Frame energy in dBFS, measured in the voice band: a high-pass removes DC offset and low rumble, a
//! low-pass the hiss above the band where voiced speech has its energy.

/// Energies are clamped here: digital silence has a finite level, so the floor arithmetic stays finite.
pub const SILENCE_DBFS: f32 = -120.0;

/// Second-order Butterworth section (RBJ cookbook), direct form I, state in f64 so that a large DC
/// offset leaves no residue from rounding.
#[derive(Debug, Clone)]
pub struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    x: [f64; 2],
    y: [f64; 2],
    primed: bool,
}

impl Biquad {
    pub fn high_pass(cutoff_hz: f32, sample_rate_hz: u32) -> Biquad {
        Biquad::new(cutoff_hz, sample_rate_hz, true)
    }

    pub fn low_pass(cutoff_hz: f32, sample_rate_hz: u32) -> Biquad {
        Biquad::new(cutoff_hz, sample_rate_hz, false)
    }

    fn new(cutoff_hz: f32, sample_rate_hz: u32, high: bool) -> Biquad {
        let w0 = 2.0 * std::f64::consts::PI * cutoff_hz as f64 / sample_rate_hz as f64;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
        let a0 = 1.0 + alpha;
        let (b0, b1) = if high {
            ((1.0 + cos) / 2.0, -(1.0 + cos))
        } else {
            ((1.0 - cos) / 2.0, 1.0 - cos)
        };
        Biquad {
            b: [b0 / a0, b1 / a0, b0 / a0],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
            x: [0.0; 2],
            y: [0.0; 2],
            primed: false,
        }
    }

    #[inline]
    pub fn process(&mut self, x: f64) -> f64 {
        if !self.primed {
            // Start in the steady state for the first sample, as if it had always been there: a
            // stream that opens on a DC offset does not begin with a step (which reads as a click).
            let dc_gain = (self.b.iter().sum::<f64>()) / (1.0 + self.a[0] + self.a[1]);
            self.x = [x, x];
            self.y = [x * dc_gain; 2];
            self.primed = true;
        }
        let y = self.b[0] * x + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [x, self.x[0]];
        self.y = [y, self.y[0]];
        y
    }
}

/// Accumulates filtered samples into frames of fixed length and reports each frame's energy.
#[derive(Debug, Clone)]
pub struct FrameEnergy {
    high_pass: Biquad,
    low_pass: Biquad,
    frame_len: usize,
    filled: usize,
    sum_sq: f64,
}

impl FrameEnergy {
    /// Energy of the band `highpass_hz`–`lowpass_hz` (the voice band) over frames of `frame_len`.
    pub fn new(
        frame_len: usize,
        highpass_hz: f32,
        lowpass_hz: f32,
        sample_rate_hz: u32,
    ) -> FrameEnergy {
        FrameEnergy {
            high_pass: Biquad::high_pass(highpass_hz, sample_rate_hz),
            low_pass: Biquad::low_pass(lowpass_hz, sample_rate_hz),
            frame_len,
            filled: 0,
            sum_sq: 0.0,
        }
    }

    /// Samples still missing from the current frame.
    pub fn remaining(&self) -> usize {
        self.frame_len - self.filled
    }

    /// Feeds at most `remaining()` samples; returns the frame's energy in dBFS when it is complete.
    pub fn feed(&mut self, samples: &[f32]) -> Option<f32> {
        debug_assert!(samples.len() <= self.remaining());
        let mut sum = 0.0f64;
        for &s in samples {
            // A non-finite sample (a corrupt float file) would poison the filter state for good.
            let s = if s.is_finite() { s } else { 0.0 };
            let y = self.low_pass.process(self.high_pass.process(s as f64));
            sum += y * y;
        }
        self.sum_sq += sum;
        self.filled += samples.len();
        if self.filled < self.frame_len {
            return None;
        }
        let mean_sq = self.sum_sq / self.frame_len as f64;
        self.filled = 0;
        self.sum_sq = 0.0;
        Some(to_dbfs(mean_sq))
    }
}

/// Mean square to dBFS, 0 dBFS being a full-scale sine (mean square 1/2).
pub fn to_dbfs(mean_sq: f64) -> f32 {
    ((10.0 * (2.0 * mean_sq).log10()) as f32).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, n: usize, offset: f32) -> Vec<f32> {
        (0..n)
            .map(|i| offset + amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 16000.0).sin())
            .collect()
    }

    fn frames(x: &[f32], highpass_hz: f32) -> Vec<f32> {
        let mut e = FrameEnergy::new(320, highpass_hz, 7000.0, 16000);
        x.chunks(320).filter_map(|c| e.feed(c)).collect()
    }

    #[test]
    fn full_scale_sine_is_0_dbfs_and_zeros_are_the_silence_level() {
        let db = frames(&sine(1000.0, 1.0, 16000, 0.0), 100.0);
        assert!(db[5..].iter().all(|d| d.abs() < 0.1), "{db:?}");
        let db = frames(&vec![0.0; 3200], 100.0);
        assert!(db.iter().all(|&d| d == SILENCE_DBFS));
    }

    #[test]
    fn dc_offset_is_removed_from_the_first_frame_on() {
        let with_dc = frames(&sine(500.0, 0.01, 16000, 0.4), 100.0);
        let without = frames(&sine(500.0, 0.01, 16000, 0.0), 100.0);
        for (a, b) in with_dc.iter().zip(&without) {
            assert!((a - b).abs() < 0.5, "{a} vs {b}");
        }
    }

    #[test]
    fn hiss_above_the_low_pass_is_attenuated() {
        let mut e = FrameEnergy::new(320, 100.0, 3000.0, 16000);
        let hiss: Vec<f32> = sine(7000.0, 0.5, 16000, 0.0);
        let db: Vec<f32> = hiss.chunks(320).filter_map(|c| e.feed(c)).collect();
        assert!(db[40] < -25.0, "7 kHz at {} dBFS", db[40]);
    }

    #[test]
    fn rumble_below_the_cutoff_is_attenuated() {
        let hum = frames(&sine(30.0, 0.5, 16000, 0.0), 100.0);
        let voice = frames(&sine(300.0, 0.5, 16000, 0.0), 100.0);
        let (h, v) = (hum[40], voice[40]);
        assert!(v - h > 15.0, "30 Hz at {h} dBFS, 300 Hz at {v} dBFS");
    }
}
