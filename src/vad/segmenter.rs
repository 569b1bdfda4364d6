//! The segmenter: a stream of samples in, utterances out.
//!
//! Per frame: energy (after the high-pass) against the adaptive noise floor, with two thresholds.
//! Idle, a run of frames above `onset_db` lasting `min_speech_ms` starts an utterance, which begins
//! `pre_roll_ms` before the run. Inside an utterance, frames above `offset_db` are speech; `hangover_ms`
//! of frames below it end the utterance `post_roll_ms` after its last speech frame. An utterance about
//! to exceed `max_utterance_s` is split at the quietest point of its last `split_search_ms` and goes on.
//!
//! Allocation: the pre-roll ring, the utterance buffer (sized for the longest utterance) and the frame
//! energy record are allocated in `new`; after that only emitting an utterance allocates (its samples).

use super::energy::{FrameEnergy, SILENCE_DBFS};
use super::floor::{NoiseFloor, SMOOTHING_MS};
use super::{EndReason, FrameDecision, VadConfig, VadConfigError, VadEvent};

/// A run of loud frames survives gaps up to this long: a first syllable too short to start an
/// utterance alone, and the gap after it, still count, so the onset (and pre-roll) is reckoned from it.
const RUN_GAP_MS: u32 = 100;

/// A run that starts this soon after a broken one (a first syllable too short to start an utterance
/// alone) is reckoned from the broken run's start, so the pre-roll covers that syllable too. Its count
/// of loud frames restarts: separate clicks never add up to speech.
const CHAIN_GAP_MS: u32 = 300;

/// Both thresholds are raised by this many times the spread (in dB) of the noise (see `floor.rs`):
/// next to nothing for steady hiss (spread under 1 dB), 2 dB for babble (spread about 4 dB). The floor
/// is the noise's mean, so the spread need not lift the thresholds over the noise's peaks on its own.
pub(super) const SPREAD_WEIGHT: f32 = 0.5;

const IDLE: State = State::Idle {
    run: 0,
    run_start: 0,
    gap: 0,
};

/// Half-width, in ms, of the neighbourhood whose mean energy ranks split points: a split lands in a
/// pause, not in the short dip of a stop consonant.
const SPLIT_NEIGHBOURHOOD_MS: u32 = 60;

#[derive(Debug)]
pub struct Segmenter {
    p: Params,
    energy: FrameEnergy,
    floor: NoiseFloor,
    /// Samples seen so far (the timeline position of the next sample).
    total: u64,
    /// Last `ring.len()` samples, indexed by absolute position modulo the length.
    ring: Vec<f32>,
    /// Start of the frame being filled.
    frame_start: u64,
    state: State,
    /// Where the last utterance ended: the next pre-roll does not reach back into it.
    last_end: u64,
    /// Loudest frame of the stream's first `SMOOTHING_MS`, and whether any utterance has started yet:
    /// together they recognise a stream that opens in the middle of speech (see `start_utterance`).
    opening_dbfs: f32,
    opening_len: u64,
    started_any: bool,
    /// End of the last frame above the onset threshold, and the start and that end of the last run
    /// that broke before it was long enough (see `CHAIN_GAP_MS`).
    last_hot_end: u64,
    broken_run: Option<(u64, u64)>,
    /// Samples of the utterance in progress, from `utt_start`.
    utt: Vec<f32>,
    utt_start: u64,
    /// (end sample, energy dBFS) of the frames recorded since onset, for choosing split points.
    utt_frames: Vec<(u64, f32)>,
}

#[derive(Debug, Clone, Copy)]
struct Params {
    frame_len: usize,
    onset_db: f32,
    offset_db: f32,
    min_level_dbfs: f32,
    min_speech_frames: u32,
    hangover_frames: u32,
    pre_roll: u64,
    post_roll: u64,
    max_len: usize,
    split_search: u64,
    split_half_frames: usize,
    run_gap_frames: u32,
    chain_gap: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// `run` frames above the onset threshold since `run_start`, not yet enough for an onset (0: no
    /// run), and the last `gap` frames below the offset threshold.
    Idle { run: u32, run_start: u64, gap: u32 },
    /// In an utterance; `quiet` frames in a row below the offset threshold. `held_floor_dbfs` and
    /// `held_spread_db` are the noise statistics at its start (see `on_frame`).
    Speech {
        last_speech_end: u64,
        quiet: u32,
        held_floor_dbfs: f32,
        held_spread_db: f32,
    },
}

impl Segmenter {
    pub fn new(config: &VadConfig, sample_rate_hz: u32) -> Result<Segmenter, VadConfigError> {
        config.validate()?;
        if !(8000..=48000).contains(&sample_rate_hz) {
            return Err(VadConfigError {
                field: "sample_rate_hz",
                reason: format!("{sample_rate_hz} must be 8000–48000"),
            });
        }
        let samples = |ms: u32| (ms as u64 * sample_rate_hz as u64 / 1000) as usize;
        let frame_len = samples(config.frame_ms);
        let frames = |ms: u32| ms.div_ceil(config.frame_ms);
        let max_len = (config.max_utterance_s as f64 * sample_rate_hz as f64) as usize;
        let p = Params {
            frame_len,
            onset_db: config.onset_db,
            offset_db: config.offset_db,
            min_level_dbfs: config.min_level_dbfs,
            min_speech_frames: frames(config.min_speech_ms),
            hangover_frames: frames(config.hangover_ms),
            pre_roll: samples(config.pre_roll_ms) as u64,
            post_roll: samples(config.post_roll_ms) as u64,
            max_len,
            split_search: samples(config.split_search_ms) as u64,
            split_half_frames: SPLIT_NEIGHBOURHOOD_MS.div_ceil(config.frame_ms) as usize,
            run_gap_frames: RUN_GAP_MS / config.frame_ms,
            chain_gap: samples(CHAIN_GAP_MS) as u64,
        };
        // The ring must hold the pre-roll plus the onset run plus the frame being filled.
        let floor_frames =
            (config.floor_window_s * 1000.0 / config.frame_ms as f32).ceil() as usize;
        // The ring holds the pre-roll plus the onset run plus the frame being filled, and the whole
        // first floor window (for a stream that opens in speech), within half the longest utterance.
        let ring_len = (p.pre_roll as usize + (p.min_speech_frames as usize + 2) * frame_len)
            .max((floor_frames * frame_len).min(max_len / 2));
        Ok(Segmenter {
            p,
            energy: FrameEnergy::new(
                frame_len,
                config.highpass_hz,
                config.lowpass_hz,
                sample_rate_hz,
            ),
            floor: NoiseFloor::new(floor_frames, frames(SMOOTHING_MS) as usize),
            total: 0,
            ring: vec![0.0; ring_len],
            frame_start: 0,
            state: IDLE,
            last_end: 0,
            opening_dbfs: f32::NEG_INFINITY,
            opening_len: samples(SMOOTHING_MS) as u64,
            started_any: false,
            last_hot_end: 0,
            broken_run: None,
            utt: Vec::with_capacity(max_len),
            utt_start: 0,
            utt_frames: Vec::with_capacity(max_len / frame_len + 2),
        })
    }

    /// The current noise floor in dBFS (the silence level before the first frame).
    pub fn noise_floor_dbfs(&self) -> f32 {
        let f = self.floor.floor_dbfs();
        if f.is_finite() {
            f
        } else {
            SILENCE_DBFS
        }
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> u64 {
        self.total
    }

    /// Whether an utterance is in progress (a `SpeechStart` was emitted, its `Utterance` not yet).
    pub fn in_utterance(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// Feeds samples (any count); appends the events they complete to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<VadEvent>) {
        self.push_with(samples, out, |_| {});
    }

    /// As `push`, and calls `on_frame` with the decision on each frame completed.
    pub fn push_with(
        &mut self,
        mut samples: &[f32],
        out: &mut Vec<VadEvent>,
        mut on_frame: impl FnMut(&FrameDecision),
    ) {
        while !samples.is_empty() {
            let take = self.energy.remaining().min(samples.len());
            let (chunk, rest) = samples.split_at(take);
            samples = rest;
            self.store(chunk);
            let energy = self.energy.feed(chunk);
            if let Some(db) = energy {
                let decision = self.on_frame(db, out);
                on_frame(&decision);
                self.frame_start = self.total;
            }
        }
    }

    /// End of stream: flushes the utterance in progress (`EndReason::EndOfStream`). The segmenter is
    /// then idle; samples pushed after this continue the same timeline.
    pub fn finish(&mut self, out: &mut Vec<VadEvent>) {
        if let State::Speech {
            last_speech_end, ..
        } = self.state
        {
            let end = (last_speech_end + self.p.post_roll).min(self.total);
            self.emit(end, EndReason::EndOfStream, out);
        }
        self.state = IDLE;
    }

    fn store(&mut self, chunk: &[f32]) {
        let n = self.ring.len();
        for (i, &s) in chunk.iter().enumerate() {
            let s = if s.is_finite() { s } else { 0.0 };
            self.ring[((self.total + i as u64) % n as u64) as usize] = s;
        }
        if let State::Speech { .. } = self.state {
            self.utt
                .extend(chunk.iter().map(|&s| if s.is_finite() { s } else { 0.0 }));
        }
        self.total += chunk.len() as u64;
    }

    fn on_frame(&mut self, energy_dbfs: f32, out: &mut Vec<VadEvent>) -> FrameDecision {
        self.floor.update(energy_dbfs);
        // Inside an utterance the statistics of its start hold: its own weaker frames (a long soft
        // vowel, a murmur) would otherwise enter the noise mean and spread and raise the thresholds
        // over them. But once even the minimum is above the held floor, the background itself has
        // changed: a fan switching on (mistaken for speech at first) ends its "utterance" once it has
        // lasted a floor window.
        let (floor, spread_db) = match self.state {
            State::Speech {
                held_floor_dbfs,
                held_spread_db,
                ..
            } if self.floor.min_dbfs() <= held_floor_dbfs => (held_floor_dbfs, held_spread_db),
            // The whole window is louder than the floor was: the background has changed.
            State::Speech { .. } => (self.floor.floor_dbfs(), self.floor.spread_db()),
            State::Idle { .. } => (self.floor.floor_dbfs(), self.floor.spread_db()),
        };
        let margin = SPREAD_WEIGHT * spread_db;
        let frame_start = self.frame_start;
        let frame_end = self.total;
        let audible = energy_dbfs >= self.p.min_level_dbfs;
        let above_onset = audible && energy_dbfs >= floor + margin + self.p.onset_db;
        let above_offset = audible && energy_dbfs >= floor + margin + self.p.offset_db;
        if frame_start < self.opening_len {
            self.opening_dbfs = self.opening_dbfs.max(energy_dbfs);
        }
        let (active, speech) = match self.state {
            State::Idle {
                run,
                run_start,
                gap,
            } => {
                self.state = if above_onset {
                    self.last_hot_end = frame_end;
                    let run_start = match (run, self.broken_run) {
                        (0, Some((start, end))) if frame_start <= end + self.p.chain_gap => start,
                        (0, _) => frame_start,
                        _ => run_start,
                    };
                    State::Idle {
                        run: run + 1,
                        run_start,
                        gap: 0,
                    }
                } else if run > 0 && above_offset {
                    // Between the thresholds: the run neither grows nor breaks.
                    State::Idle {
                        run,
                        run_start,
                        gap: 0,
                    }
                } else if run > 0 && gap < self.p.run_gap_frames {
                    State::Idle {
                        run,
                        run_start,
                        gap: gap + 1,
                    }
                } else {
                    if run > 0 {
                        self.broken_run = Some((run_start, self.last_hot_end));
                    }
                    IDLE
                };
                if let State::Idle { run, run_start, .. } = self.state {
                    if run >= self.p.min_speech_frames {
                        self.start_utterance(run_start, frame_end, floor, spread_db, out);
                    }
                }
                let active = above_onset || (run > 0 && above_offset);
                (active, active)
            }
            State::Speech {
                last_speech_end,
                quiet,
                held_floor_dbfs,
                held_spread_db,
            } => {
                self.utt_frames.push((frame_end, energy_dbfs));
                if above_offset {
                    self.state = State::Speech {
                        last_speech_end: frame_end,
                        quiet: 0,
                        held_floor_dbfs,
                        held_spread_db,
                    };
                } else if quiet + 1 >= self.p.hangover_frames {
                    let end = (last_speech_end + self.p.post_roll).min(frame_end);
                    self.emit(end, EndReason::Silence, out);
                } else {
                    self.state = State::Speech {
                        last_speech_end,
                        quiet: quiet + 1,
                        held_floor_dbfs,
                        held_spread_db,
                    };
                }
                if self.in_utterance() && self.utt.len() + self.p.frame_len > self.p.max_len {
                    self.split(out);
                }
                // Within the post-roll of a speech frame: the utterance keeps this frame as speech.
                let kept = frame_end <= last_speech_end + self.p.post_roll;
                (above_offset, above_offset || kept)
            }
        };
        FrameDecision {
            start_sample: frame_start,
            energy_dbfs,
            floor_dbfs: floor,
            spread_db,
            active,
            speech,
            in_utterance: self.in_utterance(),
        }
    }

    fn start_utterance(
        &mut self,
        run_start: u64,
        now: u64,
        floor_dbfs: f32,
        spread_db: f32,
        out: &mut Vec<VadEvent>,
    ) {
        let oldest_kept = now.saturating_sub(self.ring.len() as u64);
        // A stream that opens in speech (a file trimmed to its first word) has no floor to measure
        // its beginning against: the floor is only learnt at the first pause, and the onset found
        // after it. If the stream's opening was already loud against the floor learnt since, and that
        // opening is still in the ring, the utterance starts at the stream's first sample.
        let opened_in_speech = !self.started_any
            && oldest_kept == 0
            && self.opening_dbfs >= floor_dbfs + SPREAD_WEIGHT * spread_db + self.p.onset_db;
        self.started_any = true;
        self.broken_run = None;
        let start = if opened_in_speech {
            0
        } else {
            run_start
                .saturating_sub(self.p.pre_roll)
                .max(self.last_end)
                .max(oldest_kept)
        };
        self.utt.clear();
        let n = self.ring.len() as u64;
        self.utt
            .extend((start..now).map(|i| self.ring[(i % n) as usize]));
        self.utt_start = start;
        self.utt_frames.clear();
        self.state = State::Speech {
            last_speech_end: now,
            quiet: 0,
            held_floor_dbfs: floor_dbfs,
            held_spread_db: spread_db,
        };
        out.push(VadEvent::SpeechStart {
            start_sample: start,
        });
    }

    /// Emits the utterance in progress up to `end` (absolute) and goes idle.
    fn emit(&mut self, end: u64, reason: EndReason, out: &mut Vec<VadEvent>) {
        let len = (end - self.utt_start) as usize;
        out.push(VadEvent::Utterance {
            start_sample: self.utt_start,
            samples: self.utt[..len].to_vec(),
            end: reason,
        });
        self.last_end = end;
        self.utt.clear();
        self.utt_frames.clear();
        self.state = IDLE;
    }

    /// The utterance is at its length limit: cut it at the quietest point of the search window, emit
    /// the part before and carry on with the rest.
    fn split(&mut self, out: &mut Vec<VadEvent>) {
        let State::Speech {
            last_speech_end, ..
        } = self.state
        else {
            return;
        };
        let limit = self.utt_start + self.utt.len() as u64;
        let window_start = limit.saturating_sub(self.p.split_search);
        let half = self.p.split_half_frames;
        let frames = &self.utt_frames;
        // Mean energy (in dB) of each candidate frame's neighbourhood; the lowest wins, the latest on
        // ties (so the emitted part is as long as allowed).
        let mut best: Option<(f32, usize)> = None;
        for i in 0..frames.len() {
            if frames[i].0 < window_start {
                continue;
            }
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(frames.len());
            let score = frames[lo..hi].iter().map(|f| f.1).sum::<f32>() / (hi - lo) as f32;
            if best.is_none_or(|(s, _)| score <= s) {
                best = Some((score, i));
            }
        }
        let cut = match best {
            // Cut in the middle of the quietest frame.
            Some((_, i)) => frames[i].0 - self.p.frame_len as u64 / 2,
            None => limit,
        };
        let cut = cut.clamp(self.utt_start + 1, limit);
        let len = (cut - self.utt_start) as usize;
        out.push(VadEvent::Utterance {
            start_sample: self.utt_start,
            samples: self.utt[..len].to_vec(),
            end: EndReason::MaxLength,
        });
        self.last_end = cut;
        if last_speech_end <= cut {
            // Only the silence of the hangover remains: the utterance is over.
            self.utt.clear();
            self.utt_frames.clear();
            self.state = IDLE;
            return;
        }
        // The rest goes on as a new utterance; the buffer keeps its capacity (no allocation).
        self.utt.drain(..len);
        self.utt_start = cut;
        self.utt_frames.retain(|f| f.0 > cut);
        out.push(VadEvent::SpeechStart { start_sample: cut });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffers allocated in `new` are never regrown: a long loud signal (split several times) and
    /// silence leave their capacities as they were.
    #[test]
    fn buffers_keep_their_preallocated_capacity() {
        let config = VadConfig {
            max_utterance_s: 2.0,
            split_search_ms: 500,
            ..Default::default()
        };
        let mut seg = Segmenter::new(&config, 16_000).unwrap();
        let caps = (
            seg.ring.capacity(),
            seg.utt.capacity(),
            seg.utt_frames.capacity(),
        );
        let loud: Vec<f32> = (0..16_000 * 9)
            .map(|i| 0.3 * (i as f32 * 0.05).sin() * ((i / 3000) % 4 != 0) as u8 as f32)
            .collect();
        let mut events = Vec::new();
        for chunk in loud.chunks(160).chain(vec![0.0; 16_000 * 2].chunks(160)) {
            seg.push(chunk, &mut events);
        }
        let splits = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    VadEvent::Utterance {
                        end: EndReason::MaxLength,
                        ..
                    }
                )
            })
            .count();
        assert!(splits >= 3, "{splits} splits");
        assert_eq!(
            caps,
            (
                seg.ring.capacity(),
                seg.utt.capacity(),
                seg.utt_frames.capacity()
            )
        );
    }
}
