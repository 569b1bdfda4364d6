//! MMS vocabularies: `vocab.json` holds one `{token: id}` dict per language code.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::manifest::VocabSpec;
use super::AsrError;

/// What a CTC output id means when decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// The CTC blank (`<pad>`): separates repeats, never printed.
    Blank,
    /// The word delimiter (`|`).
    WordBoundary,
    /// `<s>`, `</s>`, `<unk>`: real outputs of the head, but never printed.
    Silent,
    /// A character (or several) of the language's alphabet.
    Text(String),
}

/// One language's output alphabet, indexed by head output id.
#[derive(Debug, Clone)]
pub struct Vocab {
    tokens: Vec<Token>,
}

impl Vocab {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn token(&self, id: usize) -> &Token {
        &self.tokens[id]
    }

    /// Builds the id-indexed table from a `{token: id}` dict, as the MMS tokenizer does.
    pub fn from_map(map: &HashMap<String, usize>, spec: &VocabSpec) -> Result<Vocab, String> {
        let n = map.len();
        let mut tokens: Vec<Option<Token>> = vec![None; n];
        for (tok, &id) in map {
            let slot = tokens
                .get_mut(id)
                .ok_or_else(|| format!("id {id} of {tok:?} is out of range 0..{n}"))?;
            if slot.is_some() {
                return Err(format!("id {id} is used twice"));
            }
            *slot = Some(if *tok == spec.blank {
                Token::Blank
            } else if *tok == spec.word_delimiter {
                Token::WordBoundary
            } else if spec.never_printed.contains(tok) {
                Token::Silent
            } else {
                Token::Text(tok.clone())
            });
        }
        let tokens: Vec<Token> = tokens
            .into_iter()
            .collect::<Option<_>>()
            .ok_or("ids are not contiguous")?;
        if !tokens.contains(&Token::Blank) {
            return Err(format!("no CTC blank {:?}", spec.blank));
        }
        Ok(Vocab { tokens })
    }
}

/// All the languages of a model: which codes exist, and their vocabularies.
#[derive(Debug, Clone)]
pub struct Vocabularies {
    by_lang: BTreeMap<String, Vocab>,
}

impl Vocabularies {
    pub fn load(path: &Path, spec: &VocabSpec) -> Result<Vocabularies, AsrError> {
        let text = std::fs::read_to_string(path).map_err(|e| AsrError::model_file(path, e))?;
        let raw: BTreeMap<String, HashMap<String, usize>> =
            serde_json::from_str(&text).map_err(|e| {
                AsrError::model_file(
                    path,
                    format!("{e} (expected one {{token: id}} dict per language code)"),
                )
            })?;
        let mut by_lang = BTreeMap::new();
        for (lang, map) in raw {
            let vocab = Vocab::from_map(&map, spec)
                .map_err(|e| AsrError::model_file(path, format!("{lang}: {e}")))?;
            by_lang.insert(lang, vocab);
        }
        Ok(Vocabularies { by_lang })
    }

    pub fn get(&self, lang: &str) -> Result<&Vocab, AsrError> {
        self.by_lang
            .get(lang)
            .ok_or_else(|| AsrError::UnknownLanguage {
                lang: lang.to_string(),
                suggestions: closest_codes(lang, self.by_lang.keys().map(String::as_str)),
            })
    }

    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.by_lang.keys().map(String::as_str)
    }
}

/// Up to three known codes closest to `wanted` by edit distance (at most 2 edits), nearest first;
/// `fre` finds `fra`, `en` finds `eng`.
pub fn closest_codes<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> Vec<String> {
    let wanted = wanted.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = known
        .map(|k| (levenshtein(&wanted, k), k))
        .filter(|(d, _)| *d <= 2)
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, k)| k.to_string())
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != *cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VocabSpec {
        VocabSpec {
            file: "vocab.json".into(),
            blank: "<pad>".into(),
            word_delimiter: "|".into(),
            never_printed: vec!["<s>".into(), "</s>".into(), "<unk>".into()],
        }
    }

    #[test]
    fn maps_special_tokens_by_role() {
        let map: HashMap<String, usize> = [
            ("<pad>", 0),
            ("<s>", 1),
            ("</s>", 2),
            ("<unk>", 3),
            ("|", 4),
            ("a", 5),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let v = Vocab::from_map(&map, &spec()).unwrap();
        assert_eq!(v.token(0), &Token::Blank);
        assert_eq!(v.token(3), &Token::Silent);
        assert_eq!(v.token(4), &Token::WordBoundary);
        assert_eq!(v.token(5), &Token::Text("a".into()));
    }

    #[test]
    fn rejects_gaps_and_missing_blank() {
        let gap: HashMap<String, usize> = [("<pad>".to_string(), 0), ("a".to_string(), 2)].into();
        assert!(Vocab::from_map(&gap, &spec()).is_err());
        let no_blank: HashMap<String, usize> = [("a".to_string(), 0)].into();
        assert!(Vocab::from_map(&no_blank, &spec())
            .unwrap_err()
            .contains("blank"));
    }

    #[test]
    fn suggests_close_codes() {
        let known = ["eng", "fra", "deu", "spa", "ita"];
        assert_eq!(closest_codes("fre", known.into_iter())[0], "fra");
        assert_eq!(closest_codes("en", known.into_iter())[0], "eng");
        assert_eq!(closest_codes("ENG", known.into_iter())[0], "eng");
        assert!(closest_codes("xxxxxx", known.into_iter()).is_empty());
    }
}
