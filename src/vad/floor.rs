//! Adaptive noise floor: the typical level of the quiet part of the last few seconds.
//!
//! Two steps over a window of recent frames (`floor_window_s`):
//! 1. The minimum of the energy averaged over `SMOOTHING_MS` (minimum statistics). Speech always has
//!    quiet gaps (between words, breaths), so this stays at the background level during speech, while
//!    stationary noise (a fan, a fridge) has no gaps and becomes the minimum once it has lasted a window.
//!    It drops at once when the room gets quieter.
//! 2. The mean power of the frames less than `NOISE_BAND_DB` above that minimum. The minimum alone lies
//!    well below the typical level of a fluctuating noise (5 dB for a fan's hum, 10 dB for babble), and
//!    thresholds above it would let the noise's own peaks open utterances; the mean of the quiet frames is
//!    its typical level, and speech frames (far above the minimum) do not enter it.
//!
//! Beside the floor, the spread (standard deviation, in dB) of those quiet frames: the segmenter raises
//! its thresholds by a multiple of it, so that they sit just above steady hiss (spread under 1 dB) but
//! clear of the peaks of babble (3 dB or more).
//!
//! The window is a preallocated ring; each frame costs one pass over it (150 frames by default), about
//! a microsecond.

/// Span of the power average whose minimum is tracked.
pub const SMOOTHING_MS: u32 = 100;

/// Frames up to this far above the minimum are taken as noise for the mean.
const NOISE_BAND_DB: f32 = 8.0;

#[derive(Debug, Clone)]
pub struct NoiseFloor {
    /// (frame energy, smoothed energy) in dBFS of the last frames, oldest overwritten first.
    window: Vec<(f32, f32)>,
    next: usize,
    filled: usize,
    /// Powers of the last frames, for the smoothed energy.
    recent: Vec<f64>,
    recent_next: usize,
    recent_filled: usize,
    floor_dbfs: f32,
    spread_db: f32,
    min_dbfs: f32,
}

impl NoiseFloor {
    /// `window_frames`: the window; `smoothing_frames`: the average's span (both at least 1).
    pub fn new(window_frames: usize, smoothing_frames: usize) -> NoiseFloor {
        NoiseFloor {
            window: vec![(0.0, 0.0); window_frames.max(1)],
            next: 0,
            filled: 0,
            recent: vec![0.0; smoothing_frames.max(1)],
            recent_next: 0,
            recent_filled: 0,
            floor_dbfs: f32::INFINITY,
            spread_db: 0.0,
            min_dbfs: f32::INFINITY,
        }
    }

    /// Takes one frame's energy (dBFS) and returns the updated floor (dBFS).
    pub fn update(&mut self, energy_dbfs: f32) -> f32 {
        let power = |db: f32| 10f64.powf(db as f64 / 10.0);
        let to_db = |p: f64| (10.0 * p.log10()) as f32;
        self.recent[self.recent_next] = power(energy_dbfs);
        self.recent_next = (self.recent_next + 1) % self.recent.len();
        self.recent_filled = (self.recent_filled + 1).min(self.recent.len());
        // At the start of the stream, average what there is.
        let smoothed = to_db(
            self.recent[..self.recent_filled].iter().sum::<f64>() / self.recent_filled as f64,
        );
        self.window[self.next] = (energy_dbfs, smoothed);
        self.next = (self.next + 1) % self.window.len();
        self.filled = (self.filled + 1).min(self.window.len());

        let frames = &self.window[..self.filled];
        let min = frames.iter().map(|f| f.1).fold(f32::INFINITY, f32::min);
        self.min_dbfs = min;
        let (mut sum, mut sum_db, mut sum_db2, mut n) = (0.0f64, 0.0f64, 0.0f64, 0usize);
        for f in frames.iter().filter(|f| f.0 <= min + NOISE_BAND_DB) {
            sum += power(f.0);
            sum_db += f.0 as f64;
            sum_db2 += (f.0 as f64).powi(2);
            n += 1;
        }
        // A smoothed value is a mean of frames, so at least one frame is at or below it.
        if n > 0 {
            self.floor_dbfs = to_db(sum / n as f64);
            let mean_db = sum_db / n as f64;
            self.spread_db = (sum_db2 / n as f64 - mean_db * mean_db).max(0.0).sqrt() as f32;
        } else {
            self.floor_dbfs = min;
            self.spread_db = 0.0;
        }
        self.floor_dbfs
    }

    /// The minimum of the smoothed energy over the window (step 1), in dBFS.
    pub fn min_dbfs(&self) -> f32 {
        self.min_dbfs
    }

    /// Standard deviation (dB) of the frames the floor is the mean of.
    pub fn spread_db(&self) -> f32 {
        self.spread_db
    }

    /// The current floor in dBFS; +inf before the first frame.
    pub fn floor_dbfs(&self) -> f32 {
        self.floor_dbfs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_quiet_frames_down_at_once_and_loud_ones_up_after_a_window() {
        let mut f = NoiseFloor::new(60, 1);
        for _ in 0..100 {
            f.update(-70.0);
        }
        assert!((f.floor_dbfs() + 70.0).abs() < 1e-3);
        // A fan switches on, 30 dB louder: the floor holds for a window, then follows.
        let mut floors = Vec::new();
        for _ in 0..80 {
            floors.push(f.update(-40.0));
        }
        assert!((floors[58] + 70.0).abs() < 1e-3, "{}", floors[58]);
        assert!((floors[79] + 40.0).abs() < 1e-3, "{}", floors[79]);
        // It switches off: the floor follows on the first quiet frame.
        assert!((f.update(-70.0) + 70.0).abs() < 1e-3);
    }

    #[test]
    fn speech_with_one_pause_per_window_leaves_the_floor_alone() {
        let mut f = NoiseFloor::new(60, 1);
        for i in 0..600 {
            f.update(if i % 50 == 0 { -60.0 } else { -20.0 });
        }
        assert!((f.floor_dbfs() + 60.0).abs() < 1e-3, "{}", f.floor_dbfs());
    }

    #[test]
    fn the_floor_of_a_fluctuating_noise_is_its_typical_level_not_its_minimum() {
        // Frames alternating 6 dB apart, with a rare deep dip: the floor is their mean power.
        let mut f = NoiseFloor::new(60, 4);
        for i in 0..200 {
            f.update(match i % 40 {
                0 => -58.0,
                k if k % 2 == 0 => -50.0,
                _ => -44.0,
            });
        }
        let mean_db = (10.0 * ((1e-5f64 + 10f64.powf(-4.4)) / 2.0).log10()) as f32;
        assert!((f.floor_dbfs() - mean_db).abs() < 0.5, "{}", f.floor_dbfs());
        assert!((f.spread_db() - 3.0).abs() < 0.5, "{}", f.spread_db());
    }
}
