//! CTC prefix beam search in the log domain. Each hypothesis is a node of a prefix tree (its labels
//! after collapsing repeats and dropping blanks) with two probabilities: ending in a blank and ending
//! in its last label, which is what lets "a a" (two letters) and "aa" (one, held) stay apart.
//! Scores that belong to the prefix and not to the alignment (language model, phrase automaton,
//! boosted words) are computed once, when a node is made, and kept in it.
//!
//! Pruning: per frame, only tokens at least `token_min_logp` likely are tried (the most likely one
//! always is); then the `beam_width` best hypotheses within `beam_prune_logp` of the best survive.

use super::boost::{Boost, BoostState};
use super::lm::{LmState, TrieNode, WordLm};
use super::phrases::{Grammar, StateId};
use crate::asr::ctc::WordSpan;
use crate::asr::vocab::{Token, Vocab};

/// Nodes of the prefix tree at most per utterance; past it no new prefix is made (the beam keeps
/// the ones it has). A 30 s segment at beam 128 makes a few hundred thousand.
pub const MAX_NODES: usize = 4_000_000;

/// Spellings outside the LM's vocabulary up to this long pay `unk_penalty` once; longer ones pay it
/// scaled by their length over this (as pyctcdecode does), so that a long run of letters that is no
/// word (a misheard pair of words run together) does not get away with one flat penalty.
pub const OOV_FREE_CHARS: f32 = 6.0;

const NO_SLOT: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
pub struct BeamOptions {
    pub beam_width: usize,
    /// Tokens less likely than this (ln) in a frame are not tried there.
    pub token_min_logp: f32,
    /// Hypotheses more than this (ln) below the best are dropped.
    pub beam_prune_logp: f32,
    /// Weight of the language model's ln probability.
    pub lm_weight: f32,
    /// Added per word when a language model scores words.
    pub word_bonus: f32,
    /// Added (ln, negative) to a word the language model does not know, on top of its `<unk>`
    /// probability. While such a word is being spelled it is carried as a provisional penalty,
    /// scaled up for spellings longer than `OOV_FREE_CHARS` (pyctcdecode's rule), and replaced by
    /// the word's final score when the word ends.
    pub unk_penalty: f32,
    /// Hypotheses returned at most.
    pub n_best: usize,
}

impl Node {
    /// What the node is ranked by beyond the acoustics while it is in the beam.
    fn ranked(&self) -> f32 {
        self.extra + self.oov
    }
}

impl Default for BeamOptions {
    fn default() -> Self {
        BeamOptions {
            beam_width: 32,
            token_min_logp: -8.0,
            beam_prune_logp: -12.0,
            lm_weight: 0.5,
            word_bonus: 1.0,
            unk_penalty: -10.0,
            n_best: 5,
        }
    }
}

/// What constrains and scores prefixes besides the acoustics (all optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scorers<'a> {
    pub lm: Option<&'a WordLm>,
    pub phrases: Option<&'a Grammar>,
    pub boost: Option<&'a Boost>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    pub text: String,
    pub words: Vec<WordSpan>,
    /// As `ctc::Decoded::confidence`.
    pub confidence: f32,
    /// ln probability of the text under the acoustic model (all alignments).
    pub acoustic: f32,
    /// `acoustic` plus the language model, bonuses and penalties: what hypotheses are ranked by.
    pub score: f32,
}

/// The result of one search: the n best (phrase mode: whole sentences only) and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub hypotheses: Vec<Hypothesis>,
    /// The most likely single alignment (the greedy path's ln probability): the unconstrained
    /// reference that phrase mode's rejection compares with.
    pub best_path: f32,
    pub frames: usize,
    pub nodes: usize,
    /// Extensions refused because the tree had `MAX_NODES` nodes (0 in any sane setting).
    pub refused_nodes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    Root,
    Boundary,
    Text(u32),
}

#[derive(Debug, Clone)]
struct Node {
    parent: u32,
    label: Label,
    /// Score of the prefix beyond the acoustics, for its finished words.
    extra: f32,
    /// Provisional penalty of the word being spelled when it has left the LM's vocabulary (0
    /// otherwise): counted when ranking, replaced when the word ends.
    oov: f32,
    /// Characters of the word being spelled.
    word_chars: u16,
    lm: Option<LmState>,
    /// The partial word in the LM's vocabulary trie (`None`: out of vocabulary).
    trie: Option<TrieNode>,
    phrase: StateId,
    boost: BoostState,
    /// Frames of the label's most likely alignment, and its mean probability over them.
    start_frame: u32,
    end_frame: u32,
    prob_sum: f32,
    prob_frames: u32,
    /// The parent's label span when this node's alignment began: the parent's own span may
    /// grow afterwards, held by the parent's other continuations.
    parent_end_frame: u32,
    parent_prob_sum: f32,
    parent_prob_frames: u32,
    /// Last frame at which the node, or a descendant, survived pruning (`u32::MAX`: never).
    /// A node that was not alive starts a new alignment when entered again.
    live_frame: u32,
}

/// What a token id does in the search.
enum Kind {
    /// Blank and never-printed tokens: no label.
    Empty,
    Boundary,
    Text(Vec<char>),
}

/// The whole search over `logits` (row-major `frames × vocab.len()`).
pub fn beam_search(
    logits: &[f32],
    vocab: &Vocab,
    options: &BeamOptions,
    scorers: Scorers,
) -> Search {
    let n_vocab = vocab.len().max(1);
    let kinds: Vec<Kind> = (0..vocab.len())
        .map(|id| match vocab.token(id) {
            Token::Blank | Token::Silent => Kind::Empty,
            Token::WordBoundary => Kind::Boundary,
            Token::Text(s) => Kind::Text(s.chars().collect()),
        })
        .collect();
    // Token ids by role, once: every frame needs the blank-like ones summed and the others tried.
    let empty_ids: Vec<usize> = (0..kinds.len())
        .filter(|&v| matches!(kinds[v], Kind::Empty))
        .collect();
    let label_ids: Vec<usize> = (0..kinds.len())
        .filter(|&v| !matches!(kinds[v], Kind::Empty))
        .collect();
    let mut tree = Tree::new(scorers, options);
    let mut beams: Vec<(u32, f32, f32)> = vec![(0, 0.0, f32::NEG_INFINITY)];
    let mut best_path = 0.0f32;
    let mut logp = vec![0.0f32; n_vocab];
    let mut next: Vec<(u32, f32, f32)> = Vec::new();
    // Where each node is in `next` this frame (`NO_SLOT`: not yet), indexed by node rather than
    // hashed: this is looked up for every extension of every hypothesis in every frame.
    let mut slot: Vec<u32> = Vec::new();
    let mut tried: Vec<usize> = Vec::with_capacity(kinds.len());
    let mut scored: Vec<(f32, u32)> = Vec::new();
    let mut frames = 0;
    // Sum over frames of the most likely symbol's probability: an empty result's confidence.
    let mut best_prob_sum = 0.0f64;
    for (t, row) in logits.chunks_exact(n_vocab).enumerate() {
        frames += 1;
        let t = t as u32;
        let best = log_softmax(row, &mut logp);
        best_path += best;
        best_prob_sum += f64::from(best.exp());
        let empty = empty_ids
            .iter()
            .fold(f32::NEG_INFINITY, |acc, &v| log_add(acc, logp[v]));
        tried.clear();
        tried.extend(
            label_ids
                .iter()
                .copied()
                .filter(|&v| logp[v] >= options.token_min_logp || logp[v] >= best),
        );
        next.clear();
        let mut add = |node: u32, pb: f32, pnb: f32| {
            let n = node as usize;
            if n >= slot.len() {
                slot.resize(n + 1, NO_SLOT);
            }
            if slot[n] == NO_SLOT {
                slot[n] = next.len() as u32;
                next.push((node, f32::NEG_INFINITY, f32::NEG_INFINITY));
            }
            let e = &mut next[slot[n] as usize];
            e.1 = log_add(e.1, pb);
            e.2 = log_add(e.2, pnb);
        };
        for &(node, pb, pnb) in &beams {
            let total = log_add(pb, pnb);
            let label = tree.nodes[node as usize].label;
            add(node, total + empty, f32::NEG_INFINITY);
            if let Label::Text(last) = label {
                let lp = logp[last as usize];
                add(node, f32::NEG_INFINITY, pnb + lp);
                if lp > empty {
                    tree.hold(node, t, lp.exp());
                }
            }
            for &v in &tried {
                let lp = logp[v];
                let child = match (&kinds[v], label) {
                    // Word boundaries at the start or after one are silence: no new label.
                    (Kind::Boundary, Label::Root | Label::Boundary) => {
                        add(node, total + lp, f32::NEG_INFINITY);
                        continue;
                    }
                    (Kind::Boundary, _) => tree.child(node, v as u32, None),
                    (Kind::Text(chars), _) => tree.child(node, v as u32, Some(chars)),
                    (Kind::Empty, _) => continue,
                };
                let Some(child) = child else { continue };
                // A repeated label needs a blank between: only the blank-ending mass extends.
                let from = if label == Label::Text(v as u32) {
                    pb
                } else {
                    total
                };
                tree.enter(child, t, lp);
                add(child, f32::NEG_INFINITY, from + lp);
            }
        }
        for &(node, _, _) in &next {
            slot[node as usize] = NO_SLOT;
        }
        prune(&mut next, &mut scored, &tree, options);
        for &(node, _, _) in &next {
            tree.mark_live(node, t);
        }
        std::mem::swap(&mut beams, &mut next);
    }
    let empty_confidence = if frames == 0 {
        0.0
    } else {
        (best_prob_sum / frames as f64) as f32
    };
    let hypotheses = tree.finish(&beams, &kinds, empty_confidence);
    Search {
        hypotheses,
        best_path,
        frames,
        nodes: tree.nodes.len(),
        refused_nodes: tree.refused,
    }
}

/// Keeps the `beam_width` best within `beam_prune_logp` of the best, best first.
fn prune(
    beams: &mut Vec<(u32, f32, f32)>,
    scored: &mut Vec<(f32, u32)>,
    tree: &Tree,
    options: &BeamOptions,
) {
    // Each candidate's score once (a log-add and a lookup), not once per comparison.
    scored.clear();
    scored.extend(
        beams.iter().enumerate().map(|(i, &(n, pb, pnb))| {
            (log_add(pb, pnb) + tree.nodes[n as usize].ranked(), i as u32)
        }),
    );
    let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0);
    let width = options.beam_width.max(1);
    // Candidates are ~width × tried tokens: select the best `width` before sorting only them.
    if scored.len() > width {
        scored.select_nth_unstable_by(width - 1, order);
        scored.truncate(width);
    }
    scored.sort_by(order);
    let floor = scored
        .first()
        .map_or(f32::NEG_INFINITY, |b| b.0 + options.beam_prune_logp);
    let kept: Vec<(u32, f32, f32)> = scored
        .iter()
        .take_while(|&&(score, _)| score >= floor)
        .map(|&(_, i)| beams[i as usize])
        .collect();
    *beams = kept;
}

/// Writes `row`'s log-softmax to `out` and returns its largest value (the most likely symbol's
/// ln probability), which every frame needs and the pass already has.
pub(crate) fn log_softmax(row: &[f32], out: &mut [f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
    for (o, &v) in out.iter_mut().zip(row) {
        *o = v - lse;
    }
    max - lse
}

pub(crate) fn log_add(a: f32, b: f32) -> f32 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f32::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

#[path = "tree.rs"]
mod tree;
use tree::Tree;

#[cfg(test)]
#[path = "beam_tests.rs"]
pub(crate) mod tests;
