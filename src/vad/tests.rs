//! Segmenter edge cases on deterministic synthetic signals: harmonic "syllables" with a syllabic
//! envelope, grouped into words and phrases, over seeded noise. No committed audio.

use super::*;

const RATE: u32 = 16_000;

fn ms(v: u64) -> usize {
    (v * RATE as u64 / 1000) as usize
}

/// splitmix64: a tiny seeded generator, the same on every architecture.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    /// Roughly Gaussian (Irwin–Hall), unit variance.
    fn gauss(&mut self) -> f32 {
        (0..12).map(|_| self.unit()).sum::<f32>() - 6.0
    }
}

/// A dB level (dBFS, sine convention) as the RMS of a signal.
fn rms_of(dbfs: f32) -> f32 {
    10f32.powf(dbfs / 20.0) / std::f32::consts::SQRT_2
}

fn white(rng: &mut Rng, n: usize, dbfs: f32) -> Vec<f32> {
    let a = rms_of(dbfs);
    (0..n).map(|_| a * rng.gauss()).collect()
}

/// Noise with most energy at low frequencies, like a fan or a fridge: white noise through two
/// one-pole low-passes (~300 Hz), scaled to `dbfs`.
fn fan(rng: &mut Rng, n: usize, dbfs: f32) -> Vec<f32> {
    let (mut a, mut b) = (0.0f32, 0.0f32);
    let k = 0.11;
    let x: Vec<f32> = (0..n)
        .map(|_| {
            a += k * (rng.gauss() - a);
            b += k * (a - b);
            b
        })
        .collect();
    scale_to(x, dbfs)
}

fn scale_to(mut x: Vec<f32>, dbfs: f32) -> Vec<f32> {
    let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt();
    let g = if rms > 0.0 { rms_of(dbfs) / rms } else { 0.0 };
    x.iter_mut().for_each(|v| *v *= g);
    x
}

/// One voiced syllable: 8 harmonics of a gliding f0, raised-sine envelope, peak RMS about `dbfs`.
fn syllable(rng: &mut Rng, n: usize, dbfs: f32) -> Vec<f32> {
    let f0 = rng.range(100.0, 220.0);
    let glide = rng.range(-0.2, 0.2);
    let a = rms_of(dbfs) * 0.8;
    let mut phase = 0.0f32;
    (0..n)
        .map(|i| {
            let t = i as f32 / n as f32;
            let f = f0 * (1.0 + glide * t);
            phase += 2.0 * std::f32::consts::PI * f / RATE as f32;
            let env = (std::f32::consts::PI * t).sin().powf(0.7);
            let v: f32 = (1..=8).map(|k| (k as f32 * phase).sin() / k as f32).sum();
            a * env * v
        })
        .collect()
}

/// Synthetic speech of about `seconds`: words of 1–3 syllables (30–80 ms gaps inside words,
/// 120–250 ms between words, never as long as the default hangover). Returns the signal and the
/// sample ranges of the gaps between words.
fn speech(rng: &mut Rng, seconds: f32, dbfs: f32) -> (Vec<f32>, Vec<(usize, usize)>) {
    let n = (seconds * RATE as f32) as usize;
    let mut x = Vec::with_capacity(n + RATE as usize);
    let mut gaps = Vec::new();
    while x.len() < n {
        for s in 0..(1 + rng.next_u64() % 3) {
            if s > 0 {
                let gap = ms(rng.range(30.0, 80.0) as u64);
                x.extend(std::iter::repeat_n(0.0, gap));
            }
            let len = ms(rng.range(120.0, 260.0) as u64);
            let level = dbfs + rng.range(-4.0, 2.0);
            x.extend(syllable(rng, len, level));
        }
        if x.len() < n {
            let gap = ms(rng.range(120.0, 250.0) as u64);
            gaps.push((x.len(), x.len() + gap));
            x.extend(std::iter::repeat_n(0.0, gap));
        }
    }
    (x, gaps)
}

fn mix(base: &mut [f32], at: usize, add: &[f32]) {
    for (b, a) in base[at..].iter_mut().zip(add) {
        *b += a;
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Utt {
    start: usize,
    len: usize,
    end: EndReason,
}

impl Utt {
    fn end_sample(&self) -> usize {
        self.start + self.len
    }
}

/// Runs the whole signal through a segmenter in pushes of `chunk` samples, checks that events pair up
/// and that every utterance carries the input audio, and returns the utterances.
fn segment_in(config: &VadConfig, x: &[f32], chunk: usize) -> Vec<Utt> {
    let mut seg = Segmenter::new(config, RATE).unwrap();
    let mut events = Vec::new();
    for c in x.chunks(chunk) {
        seg.push(c, &mut events);
    }
    seg.finish(&mut events);
    let mut utts = Vec::new();
    let mut open: Option<u64> = None;
    for e in events {
        match e {
            VadEvent::SpeechStart { start_sample } => {
                assert_eq!(open, None, "two starts without an utterance");
                open = Some(start_sample);
            }
            VadEvent::Utterance {
                start_sample,
                samples,
                end,
            } => {
                assert_eq!(
                    open.take(),
                    Some(start_sample),
                    "utterance without its start"
                );
                let start = start_sample as usize;
                let expected: Vec<f32> = x[start..start + samples.len()]
                    .iter()
                    .map(|&s| if s.is_finite() { s } else { 0.0 })
                    .collect();
                assert!(
                    samples == expected,
                    "utterance audio differs from the input"
                );
                utts.push(Utt {
                    start,
                    len: samples.len(),
                    end,
                });
            }
        }
    }
    assert_eq!(open, None);
    for w in utts.windows(2) {
        assert!(
            w[0].end_sample() <= w[1].start,
            "overlapping utterances {w:?}"
        );
    }
    utts
}

fn segment(x: &[f32]) -> Vec<Utt> {
    segment_in(&VadConfig::default(), x, 160)
}

/// Quiet room, `lead_s` of it, then `x`, then `tail_s` of it. Returns the signal and where `x` starts.
fn in_room(rng: &mut Rng, lead_s: f32, x: &[f32], tail_s: f32) -> (Vec<f32>, usize) {
    let lead = (lead_s * RATE as f32) as usize;
    let n = lead + x.len() + (tail_s * RATE as f32) as usize;
    let mut room = white(rng, n, -70.0);
    mix(&mut room, lead, x);
    (room, lead)
}

#[test]
fn one_phrase_in_a_quiet_room_is_one_utterance_with_pre_and_post_roll() {
    let mut rng = Rng(1);
    let (phrase, _) = speech(&mut rng, 2.0, -25.0);
    let (x, at) = in_room(&mut rng, 2.0, &phrase, 2.0);
    let u = segment(&x);
    assert_eq!(u.len(), 1, "{u:?}");
    let c = VadConfig::default();
    let (onset, offset) = (at, at + phrase.len());
    assert!(u[0].start <= onset - ms(c.pre_roll_ms as u64) + ms(c.frame_ms as u64));
    assert!(u[0].start >= onset - ms((c.pre_roll_ms + c.frame_ms) as u64));
    assert!(u[0].end_sample() >= offset, "{u:?} ends before {offset}");
    assert!(u[0].end_sample() <= offset + ms((c.post_roll_ms + 2 * c.frame_ms) as u64));
    assert_eq!(u[0].end, EndReason::Silence);
}

#[test]
fn push_sizes_do_not_change_the_result() {
    let mut rng = Rng(2);
    let (phrase, _) = speech(&mut rng, 3.0, -30.0);
    let (x, _) = in_room(&mut rng, 1.0, &phrase, 1.5);
    let reference = segment_in(&VadConfig::default(), &x, x.len());
    assert_eq!(reference.len(), 1);
    for chunk in [1, 7, 160, 333, 4096] {
        assert_eq!(
            segment_in(&VadConfig::default(), &x, chunk),
            reference,
            "chunk {chunk}"
        );
    }
}

#[test]
fn silence_and_all_zero_input_give_nothing() {
    let mut rng = Rng(3);
    assert!(segment(&white(&mut rng, ms(10_000), -70.0)).is_empty());
    let zeros = vec![0.0; ms(10_000)];
    let mut seg = Segmenter::new(&VadConfig::default(), RATE).unwrap();
    let mut events = Vec::new();
    let mut frames = Vec::new();
    seg.push_with(&zeros, &mut events, |f| frames.push(*f));
    seg.finish(&mut events);
    assert!(events.is_empty());
    assert_eq!(frames.len(), 500);
    assert!(frames
        .iter()
        .all(|f| !f.speech && f.energy_dbfs == SILENCE_DBFS));
    assert_eq!(seg.noise_floor_dbfs(), SILENCE_DBFS);
}

#[test]
fn speech_from_the_first_sample_is_caught_from_the_first_sample() {
    let mut rng = Rng(4);
    let (phrase, _) = speech(&mut rng, 2.5, -25.0);
    let (x, _) = in_room(&mut rng, 0.0, &phrase, 1.5);
    let u = segment(&x);
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(u[0].start, 0);
    assert!(u[0].end_sample() >= phrase.len());
}

#[test]
fn speech_running_into_the_end_of_the_stream_is_flushed_whole() {
    let mut rng = Rng(5);
    let (phrase, _) = speech(&mut rng, 2.5, -25.0);
    let (mut x, _) = in_room(&mut rng, 1.0, &phrase, 0.0);
    // The stream stops in the middle of a syllable, and mid-frame.
    x.truncate(x.len() - 1234);
    while x.last().map(|v| v.abs() < 0.01).unwrap_or(false) {
        x.pop();
    }
    let u = segment(&x);
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(u[0].end, EndReason::EndOfStream);
    assert_eq!(u[0].end_sample(), x.len());
}

#[test]
fn clicks_and_taps_are_not_speech() {
    let mut rng = Rng(6);
    let mut x = white(&mut rng, ms(6000), -70.0);
    // A full-scale click (2 ms), a knock (40 ms decaying burst), a clipped pop (1 sample).
    for i in 0..ms(2) {
        x[ms(1000) + i] += if i % 2 == 0 { 1.0 } else { -1.0 };
    }
    for i in 0..ms(40) {
        x[ms(3000) + i] += 0.5 * rng.gauss() * (-(i as f32) / ms(8) as f32).exp();
    }
    x[ms(5000)] = 1.0;
    assert!(segment(&x).is_empty(), "{:?}", segment(&x));
}

#[test]
fn a_pause_shorter_than_the_hangover_stays_inside_and_a_long_one_splits() {
    let c = VadConfig::default();
    let mut rng = Rng(7);
    let (a, _) = speech(&mut rng, 1.5, -25.0);
    let (b, _) = speech(&mut rng, 1.5, -25.0);
    for (pause_ms, expected) in [(c.hangover_ms - 2 * c.frame_ms, 1), (1500, 2)] {
        let mut phrase = a.clone();
        phrase.extend(std::iter::repeat_n(0.0, ms(pause_ms as u64)));
        phrase.extend(&b);
        let (x, at) = in_room(&mut rng, 1.0, &phrase, 1.5);
        let u = segment(&x);
        assert_eq!(u.len(), expected, "pause {pause_ms} ms: {u:?}");
        assert!(u[0].start < at);
        assert!(u.last().unwrap().end_sample() >= at + phrase.len());
        if expected == 2 {
            // The second utterance's pre-roll covers its onset too.
            let second_onset = at + a.len() + ms(pause_ms as u64);
            assert!(u[1].start + ms(c.pre_roll_ms as u64) / 2 <= second_onset);
        }
    }
}

#[test]
fn hangover_decides_between_one_and_two_utterances() {
    let c = VadConfig {
        hangover_ms: 600,
        post_roll_ms: 100,
        ..Default::default()
    };
    let mut rng = Rng(8);
    let burst = syllable(&mut rng, ms(400), -25.0);
    for (gap_ms, expected) in [(500u64, 1), (760, 2)] {
        let mut phrase = burst.clone();
        phrase.extend(std::iter::repeat_n(0.0, ms(gap_ms)));
        phrase.extend(&burst);
        let (x, _) = in_room(&mut rng, 1.0, &phrase, 1.5);
        let u = segment_in(&c, &x, 160);
        assert_eq!(u.len(), expected, "gap {gap_ms} ms: {u:?}");
    }
}

#[test]
fn a_40_second_monologue_is_split_in_pauses_below_the_limit() {
    let c = VadConfig::default();
    let mut rng = Rng(9);
    let (talk, gaps) = speech(&mut rng, 40.0, -25.0);
    let (x, at) = in_room(&mut rng, 1.0, &talk, 1.5);
    let u = segment(&x);
    assert!(u.len() >= 2, "{u:?}");
    let max_len = (c.max_utterance_s * RATE as f32) as usize;
    for (i, utt) in u.iter().enumerate() {
        assert!(utt.len <= max_len, "{utt:?} longer than the limit");
        if i + 1 < u.len() {
            assert_eq!(utt.end, EndReason::MaxLength);
            assert_eq!(utt.end_sample(), u[i + 1].start, "audio lost at a split");
            // Near the limit, and in a pause between words, not in a syllable.
            assert!(utt.len + ms(c.split_search_ms as u64) >= max_len, "{utt:?}");
            let cut = utt.end_sample() - at;
            assert!(
                gaps.iter().any(|&(a, b)| a <= cut && cut < b),
                "cut at {cut} is not in a pause"
            );
        }
    }
    assert_eq!(u.last().unwrap().end, EndReason::Silence);
    assert!(u[0].start < at && u.last().unwrap().end_sample() >= at + talk.len());
}

#[test]
fn clipped_speech_segments_like_clean_speech() {
    let mut rng = Rng(10);
    let (phrase, _) = speech(&mut rng, 2.0, -25.0);
    let (x, _) = in_room(&mut rng, 1.0, &phrase, 1.5);
    let clipped: Vec<f32> = x.iter().map(|v| (v * 40.0).clamp(-1.0, 1.0)).collect();
    let (a, b) = (segment(&x), segment(&clipped));
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    let frame = ms(VadConfig::default().frame_ms as u64);
    assert!(a[0].start.abs_diff(b[0].start) <= frame, "{a:?} {b:?}");
}

#[test]
fn dc_offset_does_not_change_the_segmentation() {
    let mut rng = Rng(11);
    let (phrase, _) = speech(&mut rng, 2.0, -30.0);
    let (x, _) = in_room(&mut rng, 1.0, &phrase, 1.5);
    let shifted: Vec<f32> = x.iter().map(|v| v + 0.25).collect();
    let (a, b) = (segment(&x), segment(&shifted));
    assert_eq!(a.len(), 1);
    assert_eq!(
        a.iter().map(|u| (u.start, u.len)).collect::<Vec<_>>(),
        b.iter().map(|u| (u.start, u.len)).collect::<Vec<_>>()
    );
}

/// A steady 500 Hz tone that, added to the room noise, makes frames `above_db` above the room's floor.
fn tone_above_floor(config: &VadConfig, rng: &mut Rng, n: usize, above_db: f32) -> Vec<f32> {
    let mut seg = Segmenter::new(config, RATE).unwrap();
    let mut floor = (0.0, 0.0);
    seg.push_with(&white(rng, ms(3000), -70.0), &mut Vec::new(), |f| {
        floor = (f.floor_dbfs, f.spread_db)
    });
    let total_db = floor.0 + segmenter::SPREAD_WEIGHT * floor.1 + above_db;
    let tone_power = 10f32.powf(total_db / 10.0) - 10f32.powf(floor.0 / 10.0);
    let amp = tone_power.sqrt();
    (0..n)
        .map(|i| amp * (2.0 * std::f32::consts::PI * 500.0 * i as f32 / RATE as f32).sin())
        .collect()
}

#[test]
fn hysteresis_a_weak_tail_continues_but_cannot_start() {
    // The room is at -70 dBFS: let frames that quiet be speech.
    let c = VadConfig {
        min_level_dbfs: -100.0,
        ..Default::default()
    };
    let mut rng = Rng(12);
    let between = (c.onset_db + c.offset_db) / 2.0;
    // Alone, a sound between the thresholds starts nothing.
    let weak = tone_above_floor(&c, &mut rng, ms(600), between);
    let (x, _) = in_room(&mut rng, 3.0, &weak, 1.5);
    assert!(segment_in(&c, &x, 160).is_empty());
    // After a loud start, the same weak sound keeps the utterance open to its end.
    let mut phrase = syllable(&mut rng, ms(300), -30.0);
    phrase.extend(&weak);
    let (x, at) = in_room(&mut rng, 3.0, &phrase, 1.5);
    let u = segment_in(&c, &x, 160);
    assert_eq!(u.len(), 1, "{u:?}");
    assert!(u[0].end_sample() >= at + phrase.len(), "{u:?}");
}

#[test]
fn pre_roll_keeps_a_soft_onset() {
    let c = VadConfig::default();
    let mut rng = Rng(13);
    // A soft fricative (150 ms of noise just above the floor) before the vowel.
    let mut phrase = white(&mut rng, ms(150), -64.0);
    phrase.extend(syllable(&mut rng, ms(300), -25.0));
    let (x, at) = in_room(&mut rng, 2.0, &phrase, 1.5);
    let u = segment(&x);
    assert_eq!(u.len(), 1, "{u:?}");
    assert!(
        u[0].start <= at,
        "onset cut: starts at {} > {at}",
        u[0].start
    );
    assert!(u[0].start + ms((c.pre_roll_ms + 150 + c.frame_ms) as u64) >= at);
}

#[test]
fn min_speech_length_rejects_short_bursts() {
    let mut rng = Rng(14);
    let short = syllable(&mut rng, ms(60), -20.0);
    let (x, _) = in_room(&mut rng, 1.0, &short, 1.0);
    assert!(segment(&x).is_empty());
    let long = syllable(&mut rng, ms(250), -20.0);
    let (x, _) = in_room(&mut rng, 1.0, &long, 1.0);
    assert_eq!(segment(&x).len(), 1);
}

#[test]
fn a_fan_becomes_the_floor_and_speech_over_it_is_still_found() {
    let c = VadConfig::default();
    let mut rng = Rng(15);
    // A fan running from the start: nothing.
    let fan_on = fan(&mut rng, ms(20_000), -45.0);
    let mut seg = Segmenter::new(&c, RATE).unwrap();
    let (mut events, mut energies) = (Vec::new(), Vec::new());
    seg.push_with(&fan_on, &mut events, |f| energies.push(f.energy_dbfs));
    assert!(events.is_empty(), "{events:?}");
    // The floor is the fan's typical frame energy (as measured, in the voice band).
    energies.sort_by(f32::total_cmp);
    let median = energies[energies.len() / 2];
    let floor = seg.noise_floor_dbfs();
    assert!((floor - median).abs() < 3.0, "{floor} vs {median}");

    // A fan switching on, 25 dB above a quiet room, and running for 20 s: at most one detection,
    // over within a floor window of the switch-on (plus the sub-window that straddles the switch-on,
    // and the hangover); then speech 15 dB above the fan is found.
    let mut x = white(&mut rng, ms(26_000), -70.0);
    mix(&mut x, ms(2000), &fan(&mut rng, ms(24_000), -45.0));
    let (phrase, _) = speech(&mut rng, 2.0, -30.0);
    mix(&mut x, ms(15_000), &phrase);
    let u = segment_in(&c, &x, 160);
    let late = ms(2000 + (c.floor_window_s * 1250.0) as u64 + c.hangover_ms as u64);
    let spurious: Vec<&Utt> = u.iter().filter(|u| u.start < ms(14_000)).collect();
    assert!(spurious.len() <= 1, "{u:?}");
    assert!(spurious.iter().all(|u| u.end_sample() <= late), "{u:?}");
    let found: Vec<&Utt> = u.iter().filter(|u| u.start >= ms(14_000)).collect();
    assert_eq!(found.len(), 1, "{u:?}");
    assert!(
        found[0].start <= ms(15_000) && found[0].end_sample() >= ms(15_000) + phrase.len(),
        "{found:?}, phrase {}",
        phrase.len()
    );
}

#[test]
fn non_finite_samples_are_treated_as_silence() {
    let mut rng = Rng(16);
    let (phrase, _) = speech(&mut rng, 2.0, -25.0);
    let (mut x, _) = in_room(&mut rng, 3.0, &phrase, 1.5);
    x[ms(500)] = f32::NAN;
    x[ms(700)] = f32::INFINITY;
    let u = segment(&x);
    assert_eq!(u.len(), 1, "{u:?}");
}

#[test]
fn frame_decisions_mark_speech_frames() {
    let c = VadConfig::default();
    let mut rng = Rng(17);
    let burst = syllable(&mut rng, ms(1000), -25.0);
    let (x, at) = in_room(&mut rng, 2.0, &burst, 2.0);
    let mut seg = Segmenter::new(&c, RATE).unwrap();
    let (mut events, mut frames) = (Vec::new(), Vec::new());
    seg.push_with(&x, &mut events, |f| frames.push(*f));
    let starts = |pick: fn(&FrameDecision) -> bool| -> Vec<usize> {
        frames
            .iter()
            .filter(|f| pick(f))
            .map(|f| f.start_sample as usize)
            .collect()
    };
    let (active, speech) = (starts(|f| f.active), starts(|f| f.speech));
    // The middle of the syllable is speech; the room before it is not, nor after it beyond the
    // post-roll (which only `speech` includes).
    assert!(active.contains(&(at + ms(500))));
    let frame = ms(c.frame_ms as u64);
    assert!(active
        .iter()
        .all(|&s| s + frame > at && s < at + burst.len()));
    let post_roll = ms(c.post_roll_ms as u64);
    assert!(speech
        .iter()
        .all(|&s| s + frame > at && s < at + burst.len() + post_roll));
    assert!(speech.len() > active.len());
    assert!(frames.iter().any(|f| f.in_utterance));
}

/// Babble: `talkers` synthetic voices summed, scaled to `dbfs`. Its frames spread over several dB,
/// with dips where most voices pause at once.
fn babble(rng: &mut Rng, n: usize, talkers: usize, dbfs: f32) -> Vec<f32> {
    let mut x = vec![0.0; n];
    for _ in 0..talkers {
        let (voice, _) = speech(rng, n as f32 / RATE as f32 + 1.0, -30.0);
        let offset = (rng.unit() * RATE as f32) as usize;
        mix(&mut x, 0, &voice[offset..offset + n]);
    }
    scale_to(x, dbfs)
}

#[test]
fn an_utterance_in_babble_ends_with_the_speech_not_in_the_babble() {
    let c = VadConfig::default();
    let mut rng = Rng(18);
    let mut x = babble(&mut rng, ms(20_000), 5, -50.0);
    let (phrase, _) = speech(&mut rng, 2.5, -30.0);
    let at = ms(8_000);
    mix(&mut x, at, &phrase);
    let u = segment_in(&c, &x, 160);
    let near: Vec<&Utt> = u
        .iter()
        .filter(|u| u.end_sample() > at - ms(1000) && u.start < at + phrase.len())
        .collect();
    assert_eq!(near.len(), 1, "{u:?}");
    // The onset is kept, and the utterance ends within the hangover of the phrase's end (babble's
    // ordinary frames do not keep it open). The last syllable fades out into the babble: its last
    // tens of ms may be left out.
    assert!(near[0].start <= at, "{near:?}");
    let end = at + phrase.len();
    assert!(
        near[0].end_sample() + ms(100) >= end,
        "{near:?}, phrase ends at {end}"
    );
    assert!(
        near[0].end_sample() <= end + ms(c.hangover_ms as u64 + 200),
        "{near:?}, phrase ends at {end}"
    );
    // The babble alone opens nothing.
    assert!(u.iter().all(|u| u.end_sample() > at - ms(1000)), "{u:?}");
}
