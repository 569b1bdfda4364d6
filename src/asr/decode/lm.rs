//! The word language model as the beam search uses it: an ARPA model, scored in natural log when a
//! word ends, and a character trie of its vocabulary, so that a word being spelled can be checked
//! against the vocabulary as it grows (lexicon-free decoding: any spelling is allowed, but one that
//! leaves the vocabulary pays an "unknown word" penalty at once rather than when the word ends).

use std::collections::HashMap;

use super::arpa::{Arpa, MAX_ORDER};

/// log10 -> ln.
const LN_10: f32 = std::f32::consts::LN_10;

/// The words before the next one, most recent last (at most order - 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LmState {
    words: [u32; MAX_ORDER - 1],
    len: u8,
}

impl LmState {
    fn context(&self) -> &[u32] {
        &self.words[..self.len as usize]
    }
}

/// A node of the vocabulary trie: a prefix of at least one word.
pub type TrieNode = u32;

#[derive(Debug)]
pub struct WordLm {
    arpa: Arpa,
    edges: HashMap<(TrieNode, char), TrieNode>,
    /// The word ending at each trie node, if any.
    word_at: Vec<Option<u32>>,
}

impl WordLm {
    pub fn new(arpa: Arpa) -> WordLm {
        let mut edges = HashMap::new();
        let mut word_at = vec![None];
        for (word, id) in arpa.words() {
            if matches!(word, "<s>" | "</s>" | "<unk>") {
                continue;
            }
            let mut node = 0;
            for c in word.chars() {
                let next = word_at.len() as TrieNode;
                node = *edges.entry((node, c)).or_insert(next);
                if node == next {
                    word_at.push(None);
                }
            }
            word_at[node as usize] = Some(id);
        }
        WordLm {
            arpa,
            edges,
            word_at,
        }
    }

    pub fn arpa(&self) -> &Arpa {
        &self.arpa
    }

    /// The context at the start of an utterance: `<s>` when the model has it.
    pub fn start(&self) -> LmState {
        let mut state = LmState {
            words: [0; MAX_ORDER - 1],
            len: 0,
        };
        if let Some(bos) = self.arpa.bos() {
            state.words[0] = bos;
            state.len = 1;
        }
        state
    }

    /// The trie node of the empty word.
    pub fn trie_root(&self) -> TrieNode {
        0
    }

    /// The partial word `node` followed by `c`, if some vocabulary word starts so.
    pub fn trie_step(&self, node: TrieNode, c: char) -> Option<TrieNode> {
        self.edges.get(&(node, c)).copied()
    }

    /// The word spelled by a trie node (`None`: a partial word that is out of the vocabulary).
    pub fn word_at(&self, node: Option<TrieNode>) -> Option<u32> {
        node.and_then(|n| self.word_at.get(n as usize).copied().flatten())
    }

    /// ln p(word | state), and the state after it. `None` is an unknown word (scored as `<unk>`).
    pub fn score_word(&self, state: &LmState, word: Option<u32>) -> (f32, LmState) {
        let score = self.arpa.score(state.context(), word) * LN_10;
        let keep = (self.arpa.order() - 1).min(MAX_ORDER - 1);
        let mut next = *state;
        let id = word.or(self.arpa.unk()).unwrap_or(u32::MAX);
        if keep == 0 {
            next.len = 0;
        } else if (next.len as usize) < keep {
            next.words[next.len as usize] = id;
            next.len += 1;
        } else {
            next.words.copy_within(1..keep, 0);
            next.words[keep - 1] = id;
        }
        (score, next)
    }

    /// ln p(`</s>` | state): the end of the utterance (0 when the model has no `</s>`).
    pub fn score_end(&self, state: &LmState) -> f32 {
        match self.arpa.eos() {
            Some(eos) => self.arpa.score(state.context(), Some(eos)) * LN_10,
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::decode::arpa::tests::BIGRAM;

    fn lm() -> WordLm {
        WordLm::new(Arpa::read(BIGRAM.as_bytes()).unwrap())
    }

    #[test]
    fn trie_knows_prefixes_of_vocabulary_words_only() {
        let lm = lm();
        let a = lm.trie_step(lm.trie_root(), 'a');
        assert!(a.is_some());
        assert_eq!(lm.word_at(a), lm.arpa().word_id("a"));
        assert_eq!(lm.trie_step(lm.trie_root(), 'z'), None);
        // Markup is not a word anyone spells.
        assert_eq!(lm.trie_step(lm.trie_root(), '<'), None);
        assert_eq!(lm.word_at(None), None);
    }

    #[test]
    fn scores_are_natural_log_and_state_slides() {
        let lm = lm();
        let a = lm.arpa().word_id("a");
        let b = lm.arpa().word_id("b");
        let (s1, st) = lm.score_word(&lm.start(), a);
        assert!((s1 - (-0.2 * LN_10)).abs() < 1e-5);
        let (s2, st) = lm.score_word(&st, b);
        assert!((s2 - (-0.4 * LN_10)).abs() < 1e-5);
        // Bigram model: only the last word is kept as context.
        assert_eq!(st.context(), &[b.unwrap()]);
        assert!((lm.score_end(&st) - (-0.3 * LN_10)).abs() < 1e-5);
        // Unknown word, no <unk> in the model: the floor.
        let (s3, _) = lm.score_word(&st, None);
        assert!(s3 < -200.0);
    }
}
