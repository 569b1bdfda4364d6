//! The segmenter's parameters: the `[vad]` table of the daemon's configuration.
//!
//! Every field carries its unit in its name. Levels are in dBFS where 0 dBFS is the RMS of a full-scale
//! sine (AES17), so a full-scale square wave reads +3 dBFS; "dB" fields are relative to the noise floor.

use serde::Deserialize;

/// Energy VAD and segmenter settings. The defaults were tuned with `benches/vad_quality.py`
/// (results in `benches/VAD.md`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// Analysis frame length. Short enough to follow syllables, long enough for a stable energy.
    pub frame_ms: u32,
    /// Cut-off of the high-pass filter applied before measuring energy (never to the audio passed on).
    /// It removes DC offset and the low rumble of fans, traffic and handling noise, below the voice band.
    pub highpass_hz: f32,
    /// Cut-off of the low-pass filter applied before measuring energy. Voiced speech has most of its
    /// energy below it, broadband hiss does not: measuring the band gains several dB of SNR in hiss.
    pub lowpass_hz: f32,
    /// A frame starts speech when it is this far above the noise floor (the noise's mean level). Both
    /// thresholds are further raised by half the noise's spread (its frames' standard deviation in dB):
    /// next to nothing for steady hiss or a fan, about 2 dB for babble, whose peaks would otherwise
    /// open utterances.
    pub onset_db: f32,
    /// Inside an utterance, a frame still counts as speech while it is this far above the noise floor.
    /// Lower than `onset_db`: the hysteresis keeps weak syllables from chopping an utterance.
    pub offset_db: f32,
    /// Frames quieter than this are never speech, whatever the noise floor: digital silence followed by
    /// faint hiss must not trigger.
    pub min_level_dbfs: f32,
    /// Loud frames must last this long (counting from the first one) before an utterance starts:
    /// rejects clicks, knocks and taps.
    pub min_speech_ms: u32,
    /// Silence that ends an utterance. Pauses shorter than this stay inside it.
    pub hangover_ms: u32,
    /// Audio kept before the detected onset, so the first (weak) phonemes are not cut.
    pub pre_roll_ms: u32,
    /// Audio kept after the last speech frame, so weak final consonants are not cut (at most `hangover_ms`).
    pub post_roll_ms: u32,
    /// Longest utterance passed on; longer speech is split at its quietest point near this limit.
    pub max_utterance_s: f32,
    /// How far back from `max_utterance_s` to look for the quietest point to split at.
    pub split_search_ms: u32,
    /// Length of the window over which the noise floor is the minimum energy. Longer: speech without
    /// pauses cannot raise it; shorter: it adapts sooner when a fan or fridge switches on.
    pub floor_window_s: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            frame_ms: 20,
            highpass_hz: 100.0,
            lowpass_hz: 4000.0,
            onset_db: 5.0,
            offset_db: 4.0,
            min_level_dbfs: -60.0,
            min_speech_ms: 100,
            hangover_ms: 400,
            pre_roll_ms: 300,
            post_roll_ms: 100,
            max_utterance_s: 20.0,
            split_search_ms: 3000,
            floor_window_s: 3.0,
        }
    }
}

/// A setting that is out of range, named as it is written in the configuration file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[vad] {field}: {reason}")]
pub struct VadConfigError {
    pub field: &'static str,
    pub reason: String,
}

impl VadConfig {
    /// Checks every field; the error names the first field found wrong and says what is allowed.
    pub fn validate(&self) -> Result<(), VadConfigError> {
        let err = |field: &'static str, reason: String| Err(VadConfigError { field, reason });
        let finite = [
            ("highpass_hz", self.highpass_hz),
            ("lowpass_hz", self.lowpass_hz),
            ("onset_db", self.onset_db),
            ("offset_db", self.offset_db),
            ("min_level_dbfs", self.min_level_dbfs),
            ("max_utterance_s", self.max_utterance_s),
            ("floor_window_s", self.floor_window_s),
        ];
        for (field, value) in finite {
            if !value.is_finite() {
                return err(field, format!("{value} is not a number"));
            }
        }
        if !(10..=30).contains(&self.frame_ms) {
            return err("frame_ms", format!("{} must be 10–30", self.frame_ms));
        }
        if !(20.0..=400.0).contains(&self.highpass_hz) {
            return err(
                "highpass_hz",
                format!("{} must be 20–400", self.highpass_hz),
            );
        }
        if !(1000.0..=7000.0).contains(&self.lowpass_hz)
            || self.lowpass_hz <= 2.0 * self.highpass_hz
        {
            return err(
                "lowpass_hz",
                format!(
                    "{} must be 1000–7000 and above twice highpass_hz ({})",
                    self.lowpass_hz, self.highpass_hz
                ),
            );
        }
        if !(0.0..=40.0).contains(&self.onset_db) {
            return err("onset_db", format!("{} must be 0–40", self.onset_db));
        }
        if !(0.0..=self.onset_db).contains(&self.offset_db) {
            return err(
                "offset_db",
                format!("{} must be 0–onset_db ({})", self.offset_db, self.onset_db),
            );
        }
        if !(-120.0..=0.0).contains(&self.min_level_dbfs) {
            return err(
                "min_level_dbfs",
                format!("{} must be -120–0", self.min_level_dbfs),
            );
        }
        if !(self.frame_ms..=2000).contains(&self.min_speech_ms) {
            return err(
                "min_speech_ms",
                format!(
                    "{} must be frame_ms ({})–2000",
                    self.min_speech_ms, self.frame_ms
                ),
            );
        }
        if !(self.frame_ms..=10_000).contains(&self.hangover_ms) {
            return err(
                "hangover_ms",
                format!(
                    "{} must be frame_ms ({})–10000",
                    self.hangover_ms, self.frame_ms
                ),
            );
        }
        if self.pre_roll_ms > 2000 {
            return err(
                "pre_roll_ms",
                format!("{} must be 0–2000", self.pre_roll_ms),
            );
        }
        if self.post_roll_ms > self.hangover_ms {
            return err(
                "post_roll_ms",
                format!(
                    "{} must be 0–hangover_ms ({})",
                    self.post_roll_ms, self.hangover_ms
                ),
            );
        }
        if !(1.0..=300.0).contains(&self.max_utterance_s) {
            return err(
                "max_utterance_s",
                format!("{} must be 1–300", self.max_utterance_s),
            );
        }
        // Room for the pre-roll and the onset run before the search window starts.
        let max_ms = self.max_utterance_s * 1000.0;
        let room_ms = (self.pre_roll_ms + self.min_speech_ms + self.frame_ms) as f32;
        let search_max_ms = max_ms / 2.0;
        if max_ms < 2.0 * room_ms {
            return err(
                "max_utterance_s",
                format!(
                    "{} must be at least twice pre_roll_ms + min_speech_ms + frame_ms ({} ms)",
                    self.max_utterance_s, room_ms
                ),
            );
        }
        if self.split_search_ms < self.frame_ms || self.split_search_ms as f32 > search_max_ms {
            return err(
                "split_search_ms",
                format!(
                    "{} must be frame_ms ({})–half of max_utterance_s ({} ms)",
                    self.split_search_ms, self.frame_ms, search_max_ms
                ),
            );
        }
        if !(0.5..=60.0).contains(&self.floor_window_s) {
            return err(
                "floor_window_s",
                format!("{} must be 0.5–60", self.floor_window_s),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        VadConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(&str, VadConfig)> = vec![
            (
                "frame_ms",
                VadConfig {
                    frame_ms: 5,
                    ..Default::default()
                },
            ),
            (
                "onset_db",
                VadConfig {
                    onset_db: f32::NAN,
                    ..Default::default()
                },
            ),
            (
                "offset_db",
                VadConfig {
                    offset_db: 12.0,
                    ..Default::default()
                },
            ),
            (
                "hangover_ms",
                VadConfig {
                    hangover_ms: 0,
                    ..Default::default()
                },
            ),
            (
                "post_roll_ms",
                VadConfig {
                    post_roll_ms: 500,
                    ..Default::default()
                },
            ),
            (
                "min_speech_ms",
                VadConfig {
                    min_speech_ms: 10,
                    ..Default::default()
                },
            ),
            (
                "max_utterance_s",
                VadConfig {
                    max_utterance_s: 0.5,
                    ..Default::default()
                },
            ),
            (
                "split_search_ms",
                VadConfig {
                    split_search_ms: 15_000,
                    ..Default::default()
                },
            ),
            (
                "floor_window_s",
                VadConfig {
                    floor_window_s: 0.0,
                    ..Default::default()
                },
            ),
            (
                "highpass_hz",
                VadConfig {
                    highpass_hz: 1.0,
                    ..Default::default()
                },
            ),
            (
                "min_level_dbfs",
                VadConfig {
                    min_level_dbfs: 3.0,
                    ..Default::default()
                },
            ),
            (
                "pre_roll_ms",
                VadConfig {
                    pre_roll_ms: 5000,
                    ..Default::default()
                },
            ),
        ];
        for (field, config) in cases {
            let e = config.validate().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(
                e.to_string().starts_with(&format!("[vad] {field}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn deserializes_a_partial_table_and_rejects_unknown_fields() {
        let c: VadConfig = serde_json::from_str(r#"{"hangover_ms": 600}"#).unwrap();
        assert_eq!(c.hangover_ms, 600);
        assert_eq!(c.onset_db, VadConfig::default().onset_db);
        let e = serde_json::from_str::<VadConfig>(r#"{"hangover": 600}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `hangover`"), "{e}");
    }
}
