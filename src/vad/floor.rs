//! Adaptive noise floor by minimum statistics: the floor is the lowest frame energy of the last few
//! seconds.
//!
//! Speech always has quiet gaps (between words, stop closures, breaths), so its minimum stays at the
//! background level, while stationary noise (a fan, a fridge) has no gaps and becomes the floor once it
//! has lasted one window. The floor drops at once when the room gets quieter. The window is kept as a
//! ring of sub-window minima, so each frame costs O(1) and nothing is allocated after `new`.
//!
//! The minimum is taken of the energy averaged over `SMOOTHING_MS`: the minimum of raw 20 ms frames of
//! a narrow-band noise (a fan's hum) lies 5 dB or more below its typical level, and thresholds above
//! such a floor would let the noise's own fluctuations hold an utterance open. Pauses between words are
//! longer than the average, so speech still shows its gaps.

/// Sub-windows per window: the floor rises in steps of window / SUBWINDOWS.
const SUBWINDOWS: usize = 6;

/// Span of the power average whose minimum is tracked.
pub const SMOOTHING_MS: u32 = 100;

#[derive(Debug, Clone)]
pub struct NoiseFloor {
    /// Minimum of each finished sub-window, oldest overwritten first.
    minima: Vec<f32>,
    next: usize,
    minima_min: f32,
    /// Minimum of the sub-window being filled.
    current_min: f32,
    current_frames: usize,
    subwindow_frames: usize,
    /// Powers of the last frames (for the average), oldest overwritten first; NaN until filled.
    recent: Vec<f64>,
    recent_next: usize,
}

impl NoiseFloor {
    /// `window_frames`: the minimum's window; `smoothing_frames`: the average's span (at least 1).
    pub fn new(window_frames: usize, smoothing_frames: usize) -> NoiseFloor {
        NoiseFloor {
            // +inf until filled: at the start of a stream the floor is the quietest frame seen so far.
            minima: vec![f32::INFINITY; SUBWINDOWS],
            next: 0,
            minima_min: f32::INFINITY,
            current_min: f32::INFINITY,
            current_frames: 0,
            subwindow_frames: window_frames.div_ceil(SUBWINDOWS).max(1),
            recent: vec![f64::NAN; smoothing_frames.max(1)],
            recent_next: 0,
        }
    }

    /// Takes one frame's energy (dBFS) and returns the updated floor (dBFS).
    pub fn update(&mut self, energy_dbfs: f32) -> f32 {
        self.recent[self.recent_next] = 10f64.powf(energy_dbfs as f64 / 10.0);
        self.recent_next = (self.recent_next + 1) % self.recent.len();
        // Until the average's span is filled (start of stream), average what there is.
        let (sum, n) = self
            .recent
            .iter()
            .filter(|p| !p.is_nan())
            .fold((0.0, 0usize), |(s, n), p| (s + p, n + 1));
        let smoothed = (10.0 * (sum / n as f64).log10()) as f32;
        self.current_min = self.current_min.min(smoothed);
        self.current_frames += 1;
        let floor = self.floor_dbfs();
        if self.current_frames == self.subwindow_frames {
            self.minima[self.next] = self.current_min;
            self.next = (self.next + 1) % SUBWINDOWS;
            self.minima_min = self.minima.iter().copied().fold(f32::INFINITY, f32::min);
            self.current_min = f32::INFINITY;
            self.current_frames = 0;
        }
        floor
    }

    /// The current floor in dBFS; +inf before the first frame.
    pub fn floor_dbfs(&self) -> f32 {
        self.minima_min.min(self.current_min)
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
        assert_eq!(f.floor_dbfs(), -70.0);
        // A fan switches on, 30 dB louder: the floor holds for most of a window, then follows.
        let mut floors = Vec::new();
        for _ in 0..80 {
            floors.push(f.update(-40.0));
        }
        assert_eq!(floors[40], -70.0);
        assert_eq!(floors[79], -40.0);
        // It switches off: the floor follows on the first quiet frame.
        assert_eq!(f.update(-70.0), -70.0);
    }

    #[test]
    fn one_quiet_frame_per_window_holds_the_floor() {
        let mut f = NoiseFloor::new(60, 1);
        for i in 0..600 {
            f.update(if i % 50 == 0 { -60.0 } else { -20.0 });
        }
        assert_eq!(f.floor_dbfs(), -60.0);
    }

    #[test]
    fn the_floor_of_a_fluctuating_noise_is_near_its_average() {
        // Frames alternating 6 dB apart: the raw minimum is the low one, the smoothed one in between.
        let mut f = NoiseFloor::new(60, 4);
        for i in 0..200 {
            f.update(if i % 2 == 0 { -50.0 } else { -44.0 });
        }
        let mean_db = (10.0 * ((1e-5f64 + 10f64.powf(-4.4)) / 2.0).log10()) as f32;
        assert!(
            (f.floor_dbfs() - mean_db).abs() < 0.01,
            "{}",
            f.floor_dbfs()
        );
    }
}
