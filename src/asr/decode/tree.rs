//! The prefix tree of the beam search: nodes, their scores beyond the acoustics, and the final
//! ranking.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{
    log_add, BeamOptions, Hypothesis, Kind, Label, Node, Scorers, MAX_NODES, OOV_FREE_CHARS,
};
use crate::asr::ctc::WordSpan;
use crate::asr::decode::lm::{LmState, TrieNode};
use crate::asr::decode::phrases::Walker;

pub(super) struct Tree<'a> {
    pub(super) nodes: Vec<Node>,
    /// (parent, token) -> child; `None` for a prefix the phrase automaton refuses.
    children: HashMap<(u32, u32), Option<u32>, BuildHasherDefault<IdHasher>>,
    scorers: Scorers<'a>,
    walker: Option<Walker<'a>>,
    options: &'a BeamOptions,
    /// Extensions refused at `MAX_NODES`.
    pub(super) refused: usize,
}

/// Hashes the (parent, token) keys the search makes itself with one multiply per word (as rustc's
/// FxHash does): SipHash's resistance to chosen keys buys nothing here, and this map is consulted
/// for every extension of every hypothesis in every frame.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SEED);
    }
}

impl<'a> Tree<'a> {
    pub(super) fn new(scorers: Scorers<'a>, options: &'a BeamOptions) -> Tree<'a> {
        let walker = scorers.phrases.map(Walker::new);
        let root = Node {
            parent: 0,
            label: Label::Root,
            extra: 0.0,
            oov: 0.0,
            word_chars: 0,
            lm: scorers.lm.map(|lm| lm.start()),
            trie: scorers.lm.map(|lm| lm.trie_root()),
            phrase: walker.as_ref().map_or(0, Walker::start),
            boost: scorers.boost.map_or(0, |b| b.root()),
            start_frame: 0,
            end_frame: 0,
            prob_sum: 0.0,
            prob_frames: 0,
            parent_end_frame: 0,
            parent_prob_sum: 0.0,
            parent_prob_frames: 0,
            live_frame: u32::MAX,
        };
        Tree {
            nodes: vec![root],
            children: HashMap::default(),
            scorers,
            walker,
            options,
            refused: 0,
        }
    }

    /// The child of `parent` by token `token` (`chars`: its characters, `None` for a word
    /// boundary), made on first use; `None` when the phrase automaton refuses it.
    pub(super) fn child(
        &mut self,
        parent: u32,
        token: u32,
        chars: Option<&Vec<char>>,
    ) -> Option<u32> {
        if let Some(&known) = self.children.get(&(parent, token)) {
            return known;
        }
        if self.nodes.len() >= MAX_NODES {
            self.refused += 1;
            return None;
        }
        let made = self.make(parent, token, chars);
        let id = made.map(|node| {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        });
        self.children.insert((parent, token), id);
        id
    }

    fn make(&mut self, parent: u32, token: u32, chars: Option<&Vec<char>>) -> Option<Node> {
        let p = &self.nodes[parent as usize];
        let mut node = Node {
            parent,
            label: Label::Text(token),
            live_frame: u32::MAX,
            ..p.clone()
        };
        let Some(chars) = chars else {
            // A word ends: the language model scores it.
            node.label = Label::Boundary;
            if let (Some(lm), Some(state)) = (self.scorers.lm, &p.lm) {
                let (s, next) = self.word_score(state, p.trie);
                node.extra += s;
                node.lm = Some(next);
                node.trie = Some(lm.trie_root());
            }
            node.oov = 0.0;
            node.word_chars = 0;
            return Some(node);
        };
        // The space before a word is stepped lazily, so that a trailing boundary costs nothing.
        let space = (p.label == Label::Boundary).then_some(' ');
        for c in space.into_iter().chain(chars.iter().copied()) {
            if let Some(walker) = &mut self.walker {
                node.phrase = walker.step(node.phrase, c)?;
            }
            if let Some(boost) = self.scorers.boost {
                let (next, delta) = boost.step(node.boost, c);
                node.boost = next;
                node.extra += delta;
            }
            if c != ' ' {
                node.word_chars = node.word_chars.saturating_add(1);
                if let (Some(lm), Some(t)) = (self.scorers.lm, node.trie) {
                    node.trie = lm.trie_step(t, c);
                }
            }
        }
        if self.scorers.lm.is_some() && node.trie.is_none() {
            let scale = (f32::from(node.word_chars) / OOV_FREE_CHARS).max(1.0);
            node.oov = self.options.unk_penalty * scale;
        }
        Some(node)
    }

    /// The score of the word spelled up to trie node `trie` ending after `state` (LM weight, word
    /// bonus, and `unk_penalty` for a word the LM does not know: a spelling that left the
    /// vocabulary, or one that is only the start of a known word), and the state after it.
    fn word_score(&self, state: &LmState, trie: Option<TrieNode>) -> (f32, LmState) {
        let Some(lm) = self.scorers.lm else {
            return (0.0, *state);
        };
        let word = lm.word_at(trie);
        let (s, next) = lm.score_word(state, word);
        let unknown = if word.is_none() {
            self.options.unk_penalty
        } else {
            0.0
        };
        (
            self.options.lm_weight * s + self.options.word_bonus + unknown,
            next,
        )
    }

    /// `node` gets a label at frame `t` with ln probability `logp`: its alignment starts here
    /// unless it was already in the beam (then nothing changes, and `exp` is not paid).
    pub(super) fn enter(&mut self, node: u32, t: u32, logp: f32) {
        if t > 0 && self.nodes[node as usize].live_frame == t - 1 {
            return;
        }
        let parent = &self.nodes[self.nodes[node as usize].parent as usize];
        let span = (parent.end_frame, parent.prob_sum, parent.prob_frames);
        let n = &mut self.nodes[node as usize];
        (n.parent_end_frame, n.parent_prob_sum, n.parent_prob_frames) = span;
        n.start_frame = t;
        n.end_frame = t + 1;
        n.prob_sum = logp.exp();
        n.prob_frames = 1;
    }

    /// `node` survived frame `t`: it and its ancestors (whose spans its words need) stay alive.
    pub(super) fn mark_live(&mut self, mut node: u32, t: u32) {
        while self.nodes[node as usize].live_frame != t {
            self.nodes[node as usize].live_frame = t;
            if node == 0 {
                break;
            }
            node = self.nodes[node as usize].parent;
        }
    }

    /// `node`'s label is held through frame `t`.
    pub(super) fn hold(&mut self, node: u32, t: u32, prob: f32) {
        let n = &mut self.nodes[node as usize];
        n.end_frame = t + 1;
        n.prob_sum += prob;
        n.prob_frames += 1;
    }

    /// Final scores (the last word and the end of the sentence for the language model, phrase
    /// mode's whole-sentence check, boosts of unfinished matches taken back), best first, one
    /// hypothesis per text.
    pub(super) fn finish(
        &self,
        beams: &[(u32, f32, f32)],
        kinds: &[Kind],
        empty_confidence: f32,
    ) -> Vec<Hypothesis> {
        let mut scored: Vec<(f32, f32, u32)> = Vec::new();
        for &(id, pb, pnb) in beams {
            let node = &self.nodes[id as usize];
            if let Some(walker) = &self.walker {
                if !walker.accepts(node.phrase) {
                    continue;
                }
            }
            let acoustic = log_add(pb, pnb);
            let mut score = acoustic + node.extra;
            if let (Some(lm), Some(mut state)) = (self.scorers.lm, node.lm) {
                if matches!(node.label, Label::Text(_)) {
                    let (s, next) = self.word_score(&state, node.trie);
                    score += s;
                    state = next;
                }
                score += self.options.lm_weight * lm.score_end(&state);
            }
            if let Some(boost) = self.scorers.boost {
                score += boost.take_back(node.boost);
            }
            scored.push((score, acoustic, id));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut out: Vec<Hypothesis> = Vec::new();
        for (score, acoustic, id) in scored {
            let h = self.hypothesis(id, kinds, score, acoustic, empty_confidence);
            if out.iter().all(|o| o.text != h.text) {
                out.push(h);
            }
            if out.len() >= self.options.n_best.max(1) {
                break;
            }
        }
        out
    }

    fn hypothesis(
        &self,
        id: u32,
        kinds: &[Kind],
        score: f32,
        acoustic: f32,
        empty_confidence: f32,
    ) -> Hypothesis {
        let mut chain = Vec::new();
        let mut at = id;
        while at != 0 {
            chain.push(at);
            at = self.nodes[at as usize].parent;
        }
        chain.reverse();
        let mut words: Vec<(WordSpan, usize)> = Vec::new();
        let mut in_word = false;
        let (mut printed_sum, mut printed) = (0.0f64, 0usize);
        for (i, &n) in chain.iter().enumerate() {
            let node = &self.nodes[n as usize];
            // The span as it was when the next label began (the last label's is still its own).
            let (end_frame, prob_sum, prob_frames) = match chain.get(i + 1) {
                Some(&c) => {
                    let c = &self.nodes[c as usize];
                    (c.parent_end_frame, c.parent_prob_sum, c.parent_prob_frames)
                }
                None => (node.end_frame, node.prob_sum, node.prob_frames),
            };
            let Label::Text(token) = node.label else {
                in_word = false;
                continue;
            };
            let Kind::Text(chars) = &kinds[token as usize] else {
                continue;
            };
            let p = prob_sum / prob_frames.max(1) as f32;
            printed_sum += p as f64;
            printed += 1;
            match words.last_mut() {
                Some((w, count)) if in_word => {
                    w.word.extend(chars.iter());
                    w.end_frame = end_frame as usize;
                    w.confidence += p;
                    *count += 1;
                }
                _ => words.push((
                    WordSpan {
                        word: chars.iter().collect(),
                        start_frame: node.start_frame as usize,
                        end_frame: end_frame as usize,
                        confidence: p,
                    },
                    1,
                )),
            }
            in_word = true;
        }
        let words: Vec<WordSpan> = words
            .into_iter()
            .map(|(mut w, n)| {
                w.confidence /= n as f32;
                w
            })
            .collect();
        let text = words
            .iter()
            .map(|w| w.word.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let confidence = if printed > 0 {
            (printed_sum / printed as f64) as f32
        } else {
            empty_confidence
        };
        Hypothesis {
            text,
            words,
            confidence,
            acoustic,
            score,
        }
    }
}
