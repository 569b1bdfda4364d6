//! An engine and the languages loaded for it, with one of them active.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::decode::{Decoder, Decoding};
use super::{AsrError, Engine, LanguagePack};

/// A transcribed utterance. Times are relative to the start of the audio given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    pub text: String,
    pub language: String,
    pub confidence: f32,
    pub duration_ms: u64,
    pub words: Vec<Word>,
    /// Beam decoding's extras (`rejected`, `hint`, `alternatives`); empty for greedy decoding.
    #[serde(flatten)]
    pub decoding: Decoding,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub word: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub confidence: f32,
}

/// Per-user state over a shared engine: the loaded languages and which one is active.
///
/// Cloning a `Recognizer` shares the engine and the loaded languages (all `Arc`).
#[derive(Debug, Clone)]
pub struct Recognizer {
    engine: Arc<Engine>,
    packs: BTreeMap<String, Arc<LanguagePack>>,
    active: Arc<LanguagePack>,
    /// Per language; a language without one decodes greedily.
    decoders: BTreeMap<String, Arc<Decoder>>,
}

impl Recognizer {
    pub fn new(engine: Arc<Engine>, first: LanguagePack) -> Recognizer {
        let active = Arc::new(first);
        let packs = BTreeMap::from([(active.language().to_string(), active.clone())]);
        Recognizer {
            engine,
            packs,
            active,
            decoders: BTreeMap::new(),
        }
    }

    /// Decodes `lang` with `decoder` from the next utterance on (a pointer swap: built elsewhere).
    pub fn set_decoder(&mut self, lang: &str, decoder: Arc<Decoder>) {
        self.decoders.insert(lang.to_string(), decoder);
    }

    /// Replaces every language's decoder (a reload); languages left out decode greedily.
    pub fn set_decoders(&mut self, decoders: BTreeMap<String, Arc<Decoder>>) {
        self.decoders = decoders;
    }

    pub fn decoder(&self, lang: &str) -> Option<&Arc<Decoder>> {
        self.decoders.get(lang)
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Makes a loaded language available for [`Recognizer::set_language`].
    pub fn add_language(&mut self, pack: LanguagePack) {
        self.packs
            .insert(pack.language().to_string(), Arc::new(pack));
    }

    /// Switches to a language loaded before: a pointer swap, no I/O, no allocation of model data.
    pub fn set_language(&mut self, lang: &str) -> Result<(), AsrError> {
        match self.packs.get(lang) {
            Some(pack) => {
                self.active = pack.clone();
                Ok(())
            }
            None => {
                let known: Vec<&str> = self.packs.keys().map(String::as_str).collect();
                Err(AsrError::UnknownLanguage {
                    lang: lang.to_string(),
                    suggestions: super::vocab::closest_codes(lang, known.into_iter()),
                })
            }
        }
    }

    pub fn language(&self) -> &str {
        self.active.language()
    }

    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.packs.keys().map(String::as_str)
    }

    /// Transcribes in `lang` (a loaded language), leaving the active language as it is: what a
    /// request naming its own language needs while the microphone keeps its own.
    pub fn transcribe_in(&self, lang: &str, samples: &[f32]) -> Result<Transcript, AsrError> {
        let mut other = self.clone();
        other.set_language(lang)?;
        other.transcribe(samples)
    }

    /// Transcribes 16 kHz mono samples in the active language.
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcript, AsrError> {
        let (decoded, decoding) = match self.decoders.get(self.active.language()) {
            Some(decoder) if decoder.uses_beam() => {
                let logits = self.engine.logits(&self.active, samples)?;
                let out = decoder.decode(&logits.values, &self.active.vocab);
                let decoding = Decoding {
                    rejected: out.rejected,
                    hint: out.hint,
                    alternatives: out.alternatives,
                };
                (out.decoded, decoding)
            }
            _ => (
                self.engine.transcribe(&self.active, samples)?,
                Decoding::default(),
            ),
        };
        let manifest = self.engine.manifest();
        let frame_ms = manifest.frame_ms();
        let ms = |frame: usize| (frame as f64 * frame_ms).round() as u64;
        Ok(Transcript {
            text: decoded.text,
            language: self.active.language().to_string(),
            confidence: decoded.confidence,
            duration_ms: (samples.len() as u64 * 1000) / manifest.audio.sample_rate as u64,
            words: decoded
                .words
                .into_iter()
                .map(|w| Word {
                    word: w.word,
                    start_ms: ms(w.start_frame),
                    end_ms: ms(w.end_frame),
                    confidence: w.confidence,
                })
                .collect(),
            decoding,
        })
    }
}
