//! Adaptive noise floor: the typical level of the quiet part of the last few seconds.
//!
//! Three steps over a window of recent frames (`floor_window_s`):
//! 1. The minimum of the energy averaged over `SMOOTHING_MS` (minimum statistics). Speech always has
//!    quiet gaps (between words, breaths), so this stays at the background level during speech, while
//!    stationary noise (a fan, a fridge) has no gaps and becomes the minimum once it has lasted a window.
//!    It drops at once when the room gets quieter.
//! 2. The frames less than `NOISE_BAND_DB` above that minimum: a first guess at which frames are noise.
//! 3. That guess refined by clipping, `CLIP_PASSES` times: the frames less than `CLIP_SPREADS` standard
//!    deviations (in dB) above the mean of the previous guess. For steady noise (spread under 1 dB) this
//!    narrows the guess to the noise itself; for babble, whose frames spread far above and below their
//!    typical level, it widens it. The minimum of babble is set by its dips (when most talkers pause),
//!    10 dB and more below its typical level, so the band above the minimum held only the quieter half
//!    of the noise, and the floor sat several dB under the babble: inside an utterance its ordinary
//!    frames then read as speech and the utterance ran on into the noise. Two passes and no more: with
//!    speech only 5 dB above babble, clipping until nothing changes climbs into the speech.
//!
//! The floor is the mean power of the frames of step 3, the spread their standard deviation in dB. The
//! segmenter raises its thresholds by a multiple of the spread, a little more for babble than for hiss.
//!
//! The window is a preallocated ring; each frame costs `2 + CLIP_PASSES` passes over it (150 frames by
//! default), a few microseconds.

/// Span of the power average whose minimum is tracked.
pub const SMOOTHING_MS: u32 = 100;

/// Frames up to this far above the minimum are the first guess at the noise (step 2).
const NOISE_BAND_DB: f32 = 8.0;

/// Refinements of that guess (step 3).
const CLIP_PASSES: usize = 2;

/// A refinement keeps the frames up to this many standard deviations above the previous guess's mean.
const CLIP_SPREADS: f32 = 2.0;

/// Statistics of the frames of the window up to some level: the noise, as far as it is known.
#[derive(Debug, Clone, Copy)]
struct NoiseStats {
    mean_power: f64,
    mean_db: f32,
    spread_db: f32,
}

impl NoiseStats {
    /// Statistics of the frames at or below `max_dbfs`; `None` if there are none.
    fn of(window: &[(f32, f32)], max_dbfs: f32) -> Option<NoiseStats> {
        let (mut sum, mut sum_db, mut sum_db2, mut n) = (0.0f64, 0.0f64, 0.0f64, 0usize);
        for &(db, _) in window.iter().filter(|f| f.0 <= max_dbfs) {
            sum += power(db);
            sum_db += db as f64;
            sum_db2 += (db as f64).powi(2);
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let mean_db = sum_db / n as f64;
        Some(NoiseStats {
            mean_power: sum / n as f64,
            mean_db: mean_db as f32,
            spread_db: (sum_db2 / n as f64 - mean_db * mean_db).max(0.0).sqrt() as f32,
        })
    }
}

fn power(db: f32) -> f64 {
    10f64.powf(db as f64 / 10.0)
}

fn to_db(power: f64) -> f32 {
    (10.0 * power.log10()) as f32
}

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
        // A smoothed value is a mean of frames of the window, so at least one frame is at or below it.
        let mut stats = NoiseStats::of(frames, min + NOISE_BAND_DB);
        for _ in 0..CLIP_PASSES {
            let Some(s) = stats else { break };
            // Some frame is at or below the mean, but rounding could leave none at or below a mean
            // of identical values: then the last guess stands.
            match NoiseStats::of(frames, s.mean_db + CLIP_SPREADS * s.spread_db) {
                Some(next) => stats = Some(next),
                None => break,
            }
        }
        (self.floor_dbfs, self.spread_db) = match stats {
            Some(s) => (to_db(s.mean_power), s.spread_db),
            None => (min, 0.0),
        };
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
    fn the_floor_of_babble_with_deep_dips_is_its_typical_level() {
        // Babble: frames spread over 8 dB around -50 dBFS, and now and then a dip of 200 ms, 12 dB
        // down, when most talkers pause. The dips set the minimum; the band above it alone would hold
        // only the quieter frames (a floor near -56 dBFS).
        let levels = [
            -54.0, -52.0, -50.0, -48.0, -46.0, -50.0, -53.0, -47.0, -51.0, -49.0,
        ];
        let frame = |i: usize| if i % 100 < 10 { -62.0 } else { levels[i % 10] };
        let mut f = NoiseFloor::new(150, 5);
        for i in 0..600 {
            f.update(frame(i));
        }
        let all: Vec<f32> = (450..600).map(frame).collect();
        let mean_power = all.iter().map(|&d| power(d)).sum::<f64>() / all.len() as f64;
        let typical = to_db(mean_power);
        assert!(f.min_dbfs() < -61.0, "{}", f.min_dbfs());
        assert!(
            (f.floor_dbfs() - typical).abs() < 1.0,
            "floor {} vs typical level {typical}",
            f.floor_dbfs()
        );
        assert!((2.0..5.0).contains(&f.spread_db()), "{}", f.spread_db());
    }

    #[test]
    fn steady_hiss_keeps_a_narrow_floor() {
        // Hiss with a spread under 1 dB: clipping narrows the first guess, it does not widen it, and a
        // louder event inside the band above the minimum (a soft voice 6 dB up) stays out of the floor.
        let mut f = NoiseFloor::new(150, 5);
        for i in 0..300 {
            let hiss = [-70.5, -70.0, -69.5, -70.2, -69.8][i % 5];
            f.update(if i % 50 < 5 { -64.0 } else { hiss });
        }
        assert!((f.floor_dbfs() + 70.0).abs() < 0.3, "{}", f.floor_dbfs());
        assert!(f.spread_db() < 0.5, "{}", f.spread_db());
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
