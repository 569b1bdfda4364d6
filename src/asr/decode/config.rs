//! `[decoder]`: how transcripts are decoded, defaults and per-language files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::beam::BeamOptions;
use crate::config::within;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The most likely token per frame (fast, no language model).
    #[default]
    Greedy,
    /// CTC prefix beam search, with the language's LM / phrases / boosts when configured.
    Beam,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecoderConfig {
    pub mode: Mode,
    pub beam_width: usize,
    pub token_min_logp: f32,
    pub beam_prune_logp: f32,
    pub lm_weight: f32,
    pub word_bonus: f32,
    pub unk_penalty: f32,
    pub boost_per_char: f32,
    pub reject_nats_per_frame: f32,
    pub reject_local_nats: f32,
    pub n_best: usize,
    /// Per MMS language code: its files and threshold.
    pub per_language: BTreeMap<String, LanguageDecoderConfig>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanguageDecoderConfig {
    /// ARPA n-gram model (plain or gzip).
    pub lm: Option<PathBuf>,
    /// Phrase list or grammar (`../shared/corpus/` format): phrase mode.
    pub phrases: Option<PathBuf>,
    /// Boosted words/phrases, one a line.
    pub boost: Option<PathBuf>,
    /// This language's rejection threshold, instead of `[decoder]`'s.
    pub reject_nats_per_frame: Option<f32>,
    /// This language's local rejection threshold, instead of `[decoder]`'s.
    pub reject_local_nats: Option<f32>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        let beam = BeamOptions::default();
        DecoderConfig {
            mode: Mode::Greedy,
            beam_width: beam.beam_width,
            token_min_logp: beam.token_min_logp,
            beam_prune_logp: beam.beam_prune_logp,
            lm_weight: beam.lm_weight,
            word_bonus: beam.word_bonus,
            unk_penalty: beam.unk_penalty,
            boost_per_char: 1.0,
            reject_nats_per_frame: 0.35,
            reject_local_nats: 10.0,
            n_best: beam.n_best,
            per_language: BTreeMap::new(),
        }
    }
}

/// Ranges of the numbers (documented in `systemd/edgescribe.toml`).
pub const BEAM_WIDTH: std::ops::RangeInclusive<usize> = 1..=256;
pub const N_BEST: std::ops::RangeInclusive<usize> = 1..=32;
const REJECT: std::ops::RangeInclusive<f32> = 0.0..=10.0;
const REJECT_LOCAL: std::ops::RangeInclusive<f32> = 0.0..=1000.0;

impl DecoderConfig {
    pub fn beam_options(&self) -> BeamOptions {
        BeamOptions {
            beam_width: self.beam_width,
            token_min_logp: self.token_min_logp,
            beam_prune_logp: self.beam_prune_logp,
            lm_weight: self.lm_weight,
            word_bonus: self.word_bonus,
            unk_penalty: self.unk_penalty,
            n_best: self.n_best,
        }
    }

    /// Ranges; the key is returned relative to `[decoder]`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let f = |key: &str, v: f32, lo: f32, hi: f32| {
            within(v, lo..=hi).map_err(|e| (key.to_string(), e))
        };
        within(self.beam_width, BEAM_WIDTH).map_err(|e| ("beam_width".to_string(), e))?;
        within(self.n_best, N_BEST).map_err(|e| ("n_best".to_string(), e))?;
        f("token_min_logp", self.token_min_logp, -50.0, 0.0)?;
        f("beam_prune_logp", self.beam_prune_logp, -100.0, 0.0)?;
        f("lm_weight", self.lm_weight, 0.0, 5.0)?;
        f("word_bonus", self.word_bonus, -20.0, 20.0)?;
        f("unk_penalty", self.unk_penalty, -100.0, 0.0)?;
        f("boost_per_char", self.boost_per_char, 0.0, 10.0)?;
        f(
            "reject_nats_per_frame",
            self.reject_nats_per_frame,
            *REJECT.start(),
            *REJECT.end(),
        )?;
        f(
            "reject_local_nats",
            self.reject_local_nats,
            *REJECT_LOCAL.start(),
            *REJECT_LOCAL.end(),
        )?;
        for (lang, own) in &self.per_language {
            if let Some(r) = own.reject_nats_per_frame {
                within(r, REJECT)
                    .map_err(|e| (format!("per_language.{lang}.reject_nats_per_frame"), e))?;
            }
            if let Some(r) = own.reject_local_nats {
                within(r, REJECT_LOCAL)
                    .map_err(|e| (format!("per_language.{lang}.reject_local_nats"), e))?;
            }
        }
        Ok(())
    }
}
