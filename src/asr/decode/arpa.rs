//! ARPA back-off n-gram models (the text format KenLM's `lmplz` and SRILM's `ngram-count` write), read
//! from plain text or gzip, held in hash tables keyed by packed word ids: memory grows with the number
//! of n-grams in the file and nothing else.
//!
//! Scores are log10 probabilities, as in the file; the caller converts.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

/// Highest order read: word ids are packed 21 bits each into a `u128` key.
pub const MAX_ORDER: usize = 6;
/// Words in the vocabulary: what 21 bits can number.
pub const MAX_WORDS: usize = (1 << ID_BITS) - 1;
/// Decompressed bytes read at most: a bigger model does not belong on an edge board.
pub const MAX_BYTES: u64 = 1 << 30;
/// One line at most (an n-gram of six long words fits many times over).
pub const MAX_LINE_BYTES: usize = 4096;
/// The log10 probability of a word the model has no `<unk>` for (KenLM's default).
pub const UNK_FLOOR_LOG10: f32 = -100.0;
const ID_BITS: u32 = 21;

/// A word context, most recent word last, at most `MAX_ORDER - 1` words.
pub type Context = [u32];

#[derive(Debug)]
pub struct Arpa {
    order: usize,
    words: HashMap<String, u32>,
    /// `tables[n - 1]`: n-grams of order n, packed ids -> (log10 p, log10 back-off).
    tables: Vec<HashMap<u128, (f32, f32)>>,
    unk: Option<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl Arpa {
    /// Reads an ARPA file from `input`: gzip when it starts with the gzip magic bytes, else text.
    pub fn read(input: impl Read) -> Result<Arpa, String> {
        let mut reader = BufReader::new(input);
        let gz = reader
            .fill_buf()
            .map_err(|e| e.to_string())?
            .starts_with(&[0x1f, 0x8b]);
        if gz {
            let inner = flate2::bufread::MultiGzDecoder::new(reader);
            parse(BufReader::new(inner.take(MAX_BYTES + 1)))
        } else {
            parse(BufReader::new(reader.take(MAX_BYTES + 1)))
        }
    }

    pub fn order(&self) -> usize {
        self.order
    }

    pub fn word_id(&self, word: &str) -> Option<u32> {
        self.words.get(word).copied()
    }

    pub fn words(&self) -> impl Iterator<Item = (&str, u32)> {
        self.words.iter().map(|(w, &id)| (w.as_str(), id))
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    pub fn unk(&self) -> Option<u32> {
        self.unk
    }

    pub fn ngram_count(&self) -> usize {
        self.tables.iter().map(HashMap::len).sum()
    }

    /// log10 p(`word` | `context`) by Katz back-off: the longest n-gram present, plus the back-off
    /// weights of the longer contexts that were not. `None` means an unknown word, scored as `<unk>`.
    pub fn score(&self, context: &Context, word: Option<u32>) -> f32 {
        let Some(word) = word.or(self.unk) else {
            return UNK_FLOOR_LOG10;
        };
        let n = context.len().min(self.order - 1);
        let mut backoff = 0.0f32;
        for k in (0..=n).rev() {
            let history = &context[context.len() - k..];
            if let Some(&(logp, _)) = self.tables[k].get(&pack(history, Some(word))) {
                return backoff + logp;
            }
            if k > 0 {
                if let Some(&(_, bo)) = self.tables[k - 1].get(&pack(history, None)) {
                    backoff += bo;
                }
            }
        }
        // Every word id comes from the unigram table, so the loop returns at k = 0.
        UNK_FLOOR_LOG10
    }
}

/// Packs up to `MAX_ORDER` ids (history then the word) into one key; ids are < 2^21, so shifted by
/// one to keep 0 free and make `[a]` and `[0, a]` differ.
fn pack(history: &[u32], word: Option<u32>) -> u128 {
    history
        .iter()
        .chain(word.as_ref())
        .fold(0u128, |acc, &id| (acc << ID_BITS) | (id as u128 + 1))
}

fn parse(mut input: impl BufRead) -> Result<Arpa, String> {
    let mut lines = Lines {
        input: &mut input,
        number: 0,
        buf: String::new(),
        bytes: 0,
    };
    // Header: anything before `\data\`, then `ngram N=COUNT` lines.
    loop {
        if !lines.next()? {
            return Err("no \\data\\ section: not an ARPA file".into());
        }
        if lines.buf.trim() == "\\data\\" {
            break;
        }
    }
    let mut counts: Vec<usize> = Vec::new();
    let first_section = loop {
        if !lines.next()? {
            return Err("file ends in the \\data\\ section".into());
        }
        let l = lines.buf.trim();
        if l.is_empty() {
            continue;
        }
        if l.starts_with('\\') {
            break l.to_string();
        }
        let (n, count) = l
            .strip_prefix("ngram ")
            .and_then(|r| r.split_once('='))
            .and_then(|(n, c)| Some((n.trim().parse::<usize>().ok()?, c.trim().parse().ok()?)))
            .ok_or_else(|| lines.error(format!("expected `ngram N=COUNT`, found {l:?}")))?;
        if n != counts.len() + 1 || n > MAX_ORDER {
            return Err(lines.error(format!(
                "ngram orders must be 1, 2, ... up to {MAX_ORDER}, found {n}"
            )));
        }
        counts.push(count);
    };
    let order = counts.len();
    if order == 0 {
        return Err("\\data\\ lists no n-gram counts".into());
    }
    if counts[0] > MAX_WORDS {
        return Err(format!(
            "{} words: at most {MAX_WORDS} supported",
            counts[0]
        ));
    }
    let mut arpa = Arpa {
        order,
        words: HashMap::with_capacity(counts[0]),
        tables: Vec::with_capacity(order),
        unk: None,
        bos: None,
        eos: None,
    };
    let mut section = first_section;
    for (i, &count) in counts.iter().enumerate() {
        let n = i + 1;
        if section != format!("\\{n}-grams:") {
            return Err(lines.error(format!("expected \\{n}-grams:, found {section:?}")));
        }
        // Capacity from the header, but never more than the bytes left could hold (a lying header
        // must not reserve gigabytes).
        let mut table = HashMap::with_capacity(count.min(1 << 20));
        loop {
            if !lines.next()? {
                return Err(format!("file ends inside the {n}-grams"));
            }
            let l = lines.buf.trim();
            if l.is_empty() {
                continue;
            }
            if l.starts_with('\\') {
                section = l.to_string();
                break;
            }
            let mut fields = l.split_whitespace();
            let logp = parse_log(fields.next(), &lines)?;
            let mut ids = [0u32; MAX_ORDER];
            for slot in ids.iter_mut().take(n) {
                let word = fields
                    .next()
                    .ok_or_else(|| lines.error(format!("an {n}-gram needs {n} words")))?;
                *slot = if n == 1 {
                    let next = arpa.words.len() as u32;
                    if arpa.words.insert(word.to_string(), next).is_some() {
                        return Err(lines.error(format!("unigram {word:?} listed twice")));
                    }
                    next
                } else {
                    *arpa.words.get(word).ok_or_else(|| {
                        lines.error(format!("word {word:?} is not among the unigrams"))
                    })?
                };
            }
            let backoff = match fields.next() {
                Some(b) => parse_log(Some(b), &lines)?,
                None => 0.0,
            };
            if fields.next().is_some() {
                return Err(lines.error("too many fields".into()));
            }
            table.insert(pack(&ids[..n], None), (logp, backoff));
            if table.len() > count {
                return Err(lines.error(format!("more {n}-grams than the {count} announced")));
            }
        }
        if table.len() != count {
            return Err(format!(
                "{} {n}-grams where \\data\\ announced {count}",
                table.len()
            ));
        }
        arpa.tables.push(table);
    }
    if section != "\\end\\" {
        return Err(lines.error(format!("expected \\end\\, found {section:?}")));
    }
    arpa.unk = arpa.words.get("<unk>").copied();
    arpa.bos = arpa.words.get("<s>").copied();
    arpa.eos = arpa.words.get("</s>").copied();
    Ok(arpa)
}

fn parse_log(field: Option<&str>, lines: &Lines<impl BufRead>) -> Result<f32, String> {
    let v: f32 = field
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| lines.error(format!("expected a log10 number, found {field:?}")))?;
    // log10 probabilities are <= 0; back-offs may be positive; -99 stands for log 0 (`<s>`).
    if !v.is_finite() || v.abs() > 1000.0 {
        return Err(lines.error(format!("log10 value {v} out of range")));
    }
    Ok(v)
}

/// Bounded line reader: counts lines for error messages and refuses long lines and big files.
struct Lines<'a, R> {
    input: &'a mut R,
    number: usize,
    buf: String,
    bytes: u64,
}

impl<R: BufRead> Lines<'_, R> {
    /// Reads the next line into `buf`; false at the end of the input.
    fn next(&mut self) -> Result<bool, String> {
        self.buf.clear();
        let n = (&mut *self.input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_line(&mut self.buf)
            .map_err(|e| format!("line {}: {e}", self.number + 1))?;
        self.number += 1;
        self.bytes += n as u64;
        if self.bytes > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        if n > MAX_LINE_BYTES {
            return Err(self.error(format!("longer than {MAX_LINE_BYTES} bytes")));
        }
        Ok(n > 0)
    }

    fn error(&self, what: String) -> String {
        format!("line {}: {what}", self.number)
    }
}

#[cfg(test)]
#[path = "arpa_tests.rs"]
pub(crate) mod tests;
