//! Decoding beyond greedy: CTC prefix beam search ([`beam`]) with a word n-gram language model
//! ([`arpa`], [`lm`]), phrase mode with rejection ([`phrases`]) and boosted words ([`boost`]).
//! Everything here but [`Decoder::load`] is sans-IO.
//!
//! A [`Decoder`] is one language's decoding setup, built once (files read, automata compiled) and
//! shared read-only; greedy decoding (the default) is `asr::ctc::greedy_decode`, untouched.

mod align;
pub mod arpa;
pub mod beam;
pub mod boost;
mod config;
pub mod lm;
pub mod phrases;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use self::beam::{beam_search, BeamOptions, Scorers};
use self::boost::Boost;
use self::lm::WordLm;
use self::phrases::Grammar;
use super::ctc::{greedy_decode, Decoded};
use super::vocab::Vocab;

pub use config::{DecoderConfig, LanguageDecoderConfig, Mode};

/// What beam decoding adds to a transcript, all absent from the JSON for greedy decoding (so
/// greedy transcripts are exactly as before).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Decoding {
    /// Phrase mode: nothing allowed was said (`text` is empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rejected: bool,
    /// Phrase mode, when rejected: the closest allowed sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Beam search: the runners-up, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
}

/// Another hypothesis of the n best.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub text: String,
    /// The hypothesis' ranking score (ln): acoustics plus language model and bonuses.
    pub score: f32,
}

/// What decoding one utterance gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The transcript; empty text when phrase mode rejected the utterance.
    pub decoded: Decoded,
    /// The runners-up, best first (beam search only).
    pub alternatives: Vec<Alternative>,
    /// Phrase mode: no allowed sentence is close enough to what was heard.
    pub rejected: bool,
    /// Phrase mode, when rejected: the closest allowed sentence.
    pub hint: Option<String>,
}

/// One language's decoding setup.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    pub mode: Mode,
    pub options: BeamOptions,
    pub lm: Option<Arc<WordLm>>,
    pub phrases: Option<Arc<Grammar>>,
    pub boost: Option<Arc<Boost>>,
    /// Phrase mode rejects an utterance when the best allowed sentence is, per output frame, this
    /// many nats less likely than the unconstrained best path.
    pub reject_nats_per_frame: f32,
    /// Phrase mode also rejects it when, over some 400 ms of it, the best allowed sentence's
    /// alignment is this many nats less likely than the most likely symbols (`align`).
    pub reject_local_nats: f32,
}

impl Decoder {
    /// Greedy decoding, as without any configuration.
    pub fn greedy() -> Decoder {
        Decoder::default()
    }

    /// Builds `lang`'s decoder from the configuration: reads and compiles its files. Errors name
    /// the key (`decoder.per_language.eng.lm: ...`).
    pub fn load(config: &DecoderConfig, lang: &str) -> Result<Decoder, String> {
        let own = config.per_language.get(lang);
        let key = |k: &str| format!("decoder.per_language.{lang}.{k}");
        let file = |k: &str, path: &Path| -> Result<std::fs::File, String> {
            std::fs::File::open(path).map_err(|e| format!("{}: {}: {e}", key(k), path.display()))
        };
        let mut decoder = Decoder {
            mode: config.mode,
            options: config.beam_options(),
            reject_nats_per_frame: own
                .and_then(|o| o.reject_nats_per_frame)
                .unwrap_or(config.reject_nats_per_frame),
            reject_local_nats: own
                .and_then(|o| o.reject_local_nats)
                .unwrap_or(config.reject_local_nats),
            ..Decoder::default()
        };
        let Some(own) = own else {
            return Ok(decoder);
        };
        if let Some(path) = &own.lm {
            let arpa = arpa::Arpa::read(file("lm", path)?)
                .map_err(|e| format!("{}: {}: {e}", key("lm"), path.display()))?;
            decoder.lm = Some(Arc::new(WordLm::new(arpa)));
        }
        if let Some(path) = &own.phrases {
            let text = read_bounded(file("phrases", path)?, phrases::MAX_GRAMMAR_BYTES)
                .and_then(|t| Grammar::parse(&t))
                .map_err(|e| format!("{}: {}: {e}", key("phrases"), path.display()))?;
            decoder.phrases = Some(Arc::new(text));
        }
        if let Some(path) = &own.boost {
            let text = read_bounded(file("boost", path)?, phrases::MAX_GRAMMAR_BYTES)
                .map_err(|e| format!("{}: {}: {e}", key("boost"), path.display()))?;
            decoder.boost = Some(Arc::new(
                boost_from_text(&text, config.boost_per_char)
                    .map_err(|e| format!("{}: {}: {e}", key("boost"), path.display()))?,
            ));
        }
        Ok(decoder)
    }

    /// Phrase mode with these phrases instead of the configured ones (`…/set/phrases`).
    pub fn with_phrases(&self, grammar: Option<Arc<Grammar>>) -> Decoder {
        Decoder {
            phrases: grammar,
            ..self.clone()
        }
    }

    /// Beam search runs when asked for, or when phrases or boosts need it.
    pub fn uses_beam(&self) -> bool {
        self.mode == Mode::Beam || self.phrases.is_some() || self.boost.is_some()
    }

    /// Decodes one utterance's logits (row-major `frames × vocab.len()`).
    pub fn decode(&self, logits: &[f32], vocab: &Vocab) -> Outcome {
        if !self.uses_beam() {
            return Outcome {
                decoded: greedy_decode(logits, vocab),
                alternatives: Vec::new(),
                rejected: false,
                hint: None,
            };
        }
        let phrase_mode = self.phrases.is_some();
        let scorers = Scorers {
            lm: self.lm.as_deref(),
            phrases: self.phrases.as_deref(),
            boost: self.boost.as_deref(),
        };
        let search = beam_search(logits, vocab, &self.options, scorers);
        if search.refused_nodes > 0 {
            log::warn!(
                "beam search: {} extensions refused at the limit of {} prefixes (lower decoder.beam_width)",
                search.refused_nodes,
                beam::MAX_NODES
            );
        }
        if phrase_mode && search.hypotheses.is_empty() {
            // No allowed sentence survived the pruning: nothing allowed was said. Search again
            // with every token tried at every frame, only to find the closest sentence for the
            // hint (the grammar keeps that search small).
            let relaxed = BeamOptions {
                token_min_logp: f32::NEG_INFINITY,
                beam_prune_logp: f32::NEG_INFINITY,
                ..self.options.clone()
            };
            let hint = beam_search(logits, vocab, &relaxed, scorers)
                .hypotheses
                .into_iter()
                .next()
                .map(|h| h.text);
            return Outcome {
                decoded: empty(),
                alternatives: Vec::new(),
                rejected: true,
                hint,
            };
        }
        let mut hyps = search.hypotheses.into_iter();
        let Some(best) = hyps.next() else {
            // Beam search always keeps a hypothesis (the empty one at least); this is for safety.
            return Outcome {
                decoded: empty(),
                alternatives: Vec::new(),
                rejected: phrase_mode,
                hint: None,
            };
        };
        let alternatives = hyps
            .map(|h| Alternative {
                text: h.text,
                score: h.score,
            })
            .collect();
        if phrase_mode
            && (self.gap_per_frame(logits, vocab, &best, (search.best_path, search.frames))
                > self.reject_nats_per_frame
                || align::worst_window_deficit(logits, vocab, &best.text)
                    .is_some_and(|d| d > self.reject_local_nats))
        {
            return Outcome {
                decoded: Decoded {
                    confidence: best.confidence,
                    ..empty()
                },
                alternatives,
                rejected: true,
                hint: Some(best.text),
            };
        }
        Outcome {
            decoded: Decoded {
                text: best.text,
                words: best.words,
                confidence: best.confidence,
            },
            alternatives,
            rejected: false,
            hint: None,
        }
    }
}

impl Decoder {
    /// How much better than the best allowed sentence an unconstrained decoding explains the
    /// utterance, per frame. With a language model, the reference is the open decoding with it
    /// (the LM as a garbage model): an allowed sentence misheard in a letter or two costs little,
    /// since the LM pulls the open decoding to the same words, while a sentence that is not
    /// allowed keeps its own words there. Without one, the greedy path's acoustics.
    fn gap_per_frame(
        &self,
        logits: &[f32],
        vocab: &Vocab,
        best: &beam::Hypothesis,
        (best_path, frames): (f32, usize),
    ) -> f32 {
        let frames = frames.max(1) as f32;
        let Some(lm) = self.lm.as_deref() else {
            return (best_path - best.acoustic) / frames;
        };
        let open = Scorers {
            lm: Some(lm),
            phrases: None,
            boost: self.boost.as_deref(),
        };
        let reference = beam_search(logits, vocab, &self.options, open)
            .hypotheses
            .first()
            .map_or(best.score, |h| h.score.max(best.score));
        (reference - best.score) / frames
    }
}

fn empty() -> Decoded {
    Decoded {
        text: String::new(),
        words: Vec::new(),
        confidence: 0.0,
    }
}

/// The decoders of `langs` that do more than greedy decoding, built from `config` (files read,
/// automata compiled): at start and, staged, on reload.
pub fn load_all(
    config: &DecoderConfig,
    langs: &[String],
) -> Result<BTreeMap<String, Arc<Decoder>>, String> {
    let mut out = BTreeMap::new();
    for lang in langs {
        let decoder = Decoder::load(config, lang)?;
        if decoder.uses_beam() {
            out.insert(lang.clone(), Arc::new(decoder));
        }
    }
    Ok(out)
}

/// A boost file: one word or phrase a line, `#` comments.
pub fn boost_from_text(text: &str, bonus_per_char: f32) -> Result<Boost, String> {
    let phrases: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    Boost::new(&phrases, bonus_per_char)
}

fn read_bounded(file: std::fs::File, max_bytes: usize) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    file.take(max_bytes as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() > max_bytes {
        return Err(format!("larger than {max_bytes} bytes"));
    }
    Ok(text)
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
