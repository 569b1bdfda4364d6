//! Greedy CTC decoding: logits in, text with word timings and confidences out. No I/O, no model.

use super::vocab::{Token, Vocab};

/// A decoded word, in output frames (`end_frame` exclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct WordSpan {
    pub word: String,
    pub start_frame: usize,
    pub end_frame: usize,
    /// Mean, over the word's characters, of each character's mean softmax probability.
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Words joined by single spaces.
    pub text: String,
    pub words: Vec<WordSpan>,
    /// Mean probability of the printed characters; for an empty transcript, the mean probability of
    /// the frames (i.e. how sure the model is that nothing was said).
    pub confidence: f32,
}

/// Decodes `logits` (row-major, `frames × vocab.len()`): argmax per frame, repeats collapsed, blanks
/// dropped, `|` splitting words, `<s>`/`</s>`/`<unk>` never printed.
///
/// Word offsets follow transformers' `Wav2Vec2CTCTokenizer` (`output_word_offsets`): a word spans from
/// the first frame of its first character to the last frame of its last character.
pub fn greedy_decode(logits: &[f32], vocab: &Vocab) -> Decoded {
    let frames = logits.chunks_exact(vocab.len().max(1));
    let n_frames = frames.len();

    // Runs of equal argmax over consecutive frames.
    let mut runs: Vec<Run> = Vec::new();
    let mut all_prob_sum = 0.0f64;
    for (t, row) in frames.enumerate() {
        let (id, p) = argmax_prob(row);
        all_prob_sum += p as f64;
        match runs.last_mut() {
            Some(run) if run.id == id => {
                run.len += 1;
                run.prob_sum += p;
            }
            _ => runs.push(Run {
                id,
                start: t,
                len: 1,
                prob_sum: p,
            }),
        }
    }

    let mut words: Vec<WordSpan> = Vec::new();
    let mut current: Option<(WordSpan, usize)> = None; // the word being built, and its character count
    let (mut printed_prob_sum, mut printed) = (0.0f64, 0usize);
    for run in &runs {
        match vocab.token(run.id) {
            Token::Blank | Token::Silent => {}
            Token::WordBoundary => words.extend(current.take().map(finish_word)),
            Token::Text(s) => {
                let p = run.prob_sum / run.len as f32;
                printed_prob_sum += p as f64;
                printed += 1;
                let end = run.start + run.len;
                match &mut current {
                    Some((w, n)) => {
                        w.word.push_str(s);
                        w.end_frame = end;
                        w.confidence += p;
                        *n += 1;
                    }
                    None => {
                        let w = WordSpan {
                            word: s.clone(),
                            start_frame: run.start,
                            end_frame: end,
                            confidence: p,
                        };
                        current = Some((w, 1));
                    }
                }
            }
        }
    }
    words.extend(current.take().map(finish_word));

    let confidence = if printed > 0 {
        (printed_prob_sum / printed as f64) as f32
    } else if n_frames > 0 {
        (all_prob_sum / n_frames as f64) as f32
    } else {
        0.0
    };
    let text = words
        .iter()
        .map(|w| w.word.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Decoded {
        text,
        words,
        confidence,
    }
}

struct Run {
    id: usize,
    start: usize,
    len: usize,
    prob_sum: f32,
}

/// While building, `confidence` holds the sum of the characters' probabilities.
fn finish_word((mut w, chars): (WordSpan, usize)) -> WordSpan {
    w.confidence /= chars as f32;
    w
}

/// Index of the largest logit (first one on ties, as numpy's argmax) and its softmax probability.
fn argmax_prob(row: &[f32]) -> (usize, f32) {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    let max = row[best];
    let denom: f32 = row.iter().map(|&v| (v - max).exp()).sum();
    (best, 1.0 / denom)
}

#[cfg(test)]
mod tests {
    use super::*;

    // ids: 0 <pad>, 1 <s>, 2 </s>, 3 <unk>, 4 |, 5 a, 6 b, 7 c (shared with the beam's tests).
    use crate::asr::decode::beam::tests::vocab;

    /// One-hot-ish logits: the given id gets `margin`, all others 0.
    fn logits(ids: &[usize], margin: f32) -> Vec<f32> {
        ids.iter()
            .flat_map(|&id| (0..8).map(move |v| if v == id { margin } else { 0.0 }))
            .collect()
    }

    #[test]
    fn collapses_repeats_and_drops_blanks() {
        let d = greedy_decode(&logits(&[5, 5, 0, 5, 6, 6, 4, 7, 0, 0], 10.0), &vocab());
        assert_eq!(d.text, "aab c");
        assert_eq!(d.words.len(), 2);
        assert_eq!((d.words[0].start_frame, d.words[0].end_frame), (0, 6));
        assert_eq!((d.words[1].start_frame, d.words[1].end_frame), (7, 8));
    }

    #[test]
    fn never_prints_special_tokens() {
        let d = greedy_decode(&logits(&[1, 5, 3, 6, 2, 4, 3], 10.0), &vocab());
        assert_eq!(d.text, "ab");
        // A silent token between two equal characters still separates them, as in CTC.
        assert_eq!(
            greedy_decode(&logits(&[5, 3, 5], 10.0), &vocab()).text,
            "aa"
        );
    }

    #[test]
    fn delimiters_at_edges_and_in_runs_give_single_spaces() {
        let d = greedy_decode(&logits(&[4, 5, 4, 0, 4, 6, 4], 10.0), &vocab());
        assert_eq!(d.text, "a b");
    }

    #[test]
    fn empty_and_silent_input() {
        let d = greedy_decode(&[], &vocab());
        assert_eq!((d.text.as_str(), d.words.len(), d.confidence), ("", 0, 0.0));
        let d = greedy_decode(&logits(&[0, 0, 0], 10.0), &vocab());
        assert_eq!(d.text, "");
        assert!(d.confidence > 0.99, "confident silence: {}", d.confidence);
    }

    #[test]
    fn confidence_follows_softmax_margin() {
        let sure = greedy_decode(&logits(&[5, 0, 6], 10.0), &vocab());
        let unsure = greedy_decode(&logits(&[5, 0, 6], 0.5), &vocab());
        assert!(sure.confidence > 0.99);
        assert!(unsure.confidence < 0.3 && unsure.confidence > 1.0 / 8.0);
        assert!((sure.words[0].confidence - sure.confidence).abs() < 1e-6);
    }

    #[test]
    fn ties_pick_the_first_id() {
        let row = [1.0f32, 3.0, 3.0, 0.0];
        assert_eq!(argmax_prob(&row).0, 1);
    }
}
