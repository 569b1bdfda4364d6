//! `transcribe`'s decoding options (beam search, language model, phrase mode, boosts) and its
//! logits files (`--dump-logits`, `--from-logits`: what the decoder benchmark feeds other decoders).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::asr::decode::{Decoder, DecoderConfig, LanguageDecoderConfig, Mode};

/// Largest logits file read: 30 s of audio at 50 frames/s and a few hundred symbols is ~1 MB.
const MAX_LOGITS_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, clap::Args)]
pub struct DecodeArgs {
    /// Decode with a CTC prefix beam search instead of greedily (implied by --lm, --phrases and
    /// --boost).
    #[arg(long)]
    pub beam: bool,
    /// Hypotheses kept per frame (1 to 256).
    #[arg(long, default_value_t = DecoderConfig::default().beam_width)]
    pub beam_width: usize,
    /// Word n-gram language model: an ARPA file, plain or gzip.
    #[arg(long)]
    pub lm: Option<PathBuf>,
    /// Weight of the language model (0 to 5).
    #[arg(long, default_value_t = DecoderConfig::default().lm_weight)]
    pub lm_weight: f32,
    /// Added per word with a language model (-20 to 20).
    #[arg(long, default_value_t = DecoderConfig::default().word_bonus)]
    pub word_bonus: f32,
    /// Phrase mode: only sentences of this phrase list or grammar (the `../shared/corpus/`
    /// format) are output; anything else is rejected (`"rejected": true` and a `hint`).
    #[arg(long)]
    pub phrases: Option<PathBuf>,
    /// Phrase mode's rejection threshold: score gap per 20 ms frame, in nats, between the best
    /// allowed sentence and an open decoding (with --lm: the LM's, else the greedy path; 0 to 10).
    #[arg(long, default_value_t = DecoderConfig::default().reject_nats_per_frame)]
    pub reject_nats_per_frame: f32,
    /// Phrase mode's local rejection threshold: the most, in nats over any 400 ms, by which the
    /// best allowed sentence's alignment may fall below the most likely symbols (0 to 1000).
    #[arg(long, default_value_t = DecoderConfig::default().reject_local_nats)]
    pub reject_local_nats: f32,
    /// Boosted words and phrases, one a line.
    #[arg(long)]
    pub boost: Option<PathBuf>,
    /// Bonus per matched character of a boosted phrase, in nats (0 to 10).
    #[arg(long, default_value_t = DecoderConfig::default().boost_per_char)]
    pub boost_per_char: f32,
    /// Also write each file's logits (frames x symbols, log-softmax not applied) as
    /// DIR/<name>.npy.
    #[arg(long, value_name = "DIR")]
    pub dump_logits: Option<PathBuf>,
    /// The files given are .npy logits written by --dump-logits: decode them without running the
    /// model, and report the decoding time on stderr.
    #[arg(long)]
    pub from_logits: bool,
}

impl DecodeArgs {
    /// The decoder for `lang`, with errors naming the option.
    pub fn decoder(&self, lang: &str) -> Result<Decoder> {
        let beam = self.beam || self.lm.is_some() || self.phrases.is_some() || self.boost.is_some();
        let mut config = DecoderConfig {
            mode: if beam { Mode::Beam } else { Mode::Greedy },
            beam_width: self.beam_width,
            lm_weight: self.lm_weight,
            word_bonus: self.word_bonus,
            reject_nats_per_frame: self.reject_nats_per_frame,
            reject_local_nats: self.reject_local_nats,
            boost_per_char: self.boost_per_char,
            ..DecoderConfig::default()
        };
        config
            .validate()
            .map_err(|(key, e)| anyhow::anyhow!("--{}: {e}", key.replace('_', "-")))?;
        config.per_language.insert(
            lang.to_string(),
            LanguageDecoderConfig {
                lm: self.lm.clone(),
                phrases: self.phrases.clone(),
                boost: self.boost.clone(),
                reject_nats_per_frame: None,
                reject_local_nats: None,
            },
        );
        Decoder::load(&config, lang).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Writes `frames × vocab` f32 logits as a NumPy `.npy` (format 1.0, little-endian, C order).
pub fn write_npy(path: &Path, values: &[f32], frames: usize, vocab: usize) -> Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({frames}, {vocab}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads what [`write_npy`] writes: (values, frames, vocab).
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_LOGITS_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_LOGITS_BYTES {
        bail!("{}: larger than {MAX_LOGITS_BYTES} bytes", path.display());
    }
    let bad = || anyhow::anyhow!("{}: not a 2-D little-endian f32 .npy", path.display());
    if bytes.len() < 10 || &bytes[..8] != b"\x93NUMPY\x01\x00" {
        return Err(bad());
    }
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = bytes.get(10..10 + len).ok_or_else(bad)?;
    let header = std::str::from_utf8(header).map_err(|_| bad())?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad());
    }
    let shape = header
        .split_once("'shape': (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .ok_or_else(bad)?
        .0;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let [frames, vocab] = dims[..] else {
        return Err(bad());
    };
    let data = &bytes[10 + len..];
    if Some(data.len()) != frames.checked_mul(vocab).and_then(|n| n.checked_mul(4)) {
        return Err(bad());
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((values, frames, vocab))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trips_and_refuses_garbage() {
        let dir = std::env::temp_dir().join(format!("edgescribe-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.npy");
        let values: Vec<f32> = (0..15).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_npy(&path, &values, 3, 5).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - values.len() * 4) % 64, 0);
        assert_eq!(read_npy(&path).unwrap(), (values, 3, 5));
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        assert!(read_npy(&path).is_err());
        std::fs::write(&path, b"not numpy").unwrap();
        assert!(read_npy(&path).is_err());
    }
}
