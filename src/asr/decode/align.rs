//! Phrase mode's local check: the allowed sentence the beam chose, aligned to the frames (CTC
//! Viterbi), against the most likely symbol of every frame. One misheard word in a command ("turn
//! on the kitchen *fan*" heard as the allowed "… light") costs a few nats per frame over that word
//! only; averaged over the whole utterance (`reject_nats_per_frame`) it vanishes, summed over a
//! word-sized window it does not.

use super::beam::log_softmax;
use crate::asr::vocab::{Token, Vocab};

/// The window the deficit is summed over: 400 ms, about one short word.
pub const WINDOW_FRAMES: usize = 20;

/// The largest sum, over any `WINDOW_FRAMES` consecutive frames (all of them if fewer), of how much
/// less likely `text`'s best alignment is than the most likely symbol, in nats. `None` when `text`
/// cannot be spelled with the vocabulary's single-character tokens, or has more labels than the
/// utterance has frames.
pub fn worst_window_deficit(logits: &[f32], vocab: &Vocab, text: &str) -> Option<f32> {
    let n_vocab = vocab.len();
    if n_vocab == 0 {
        return None;
    }
    let labels = spell(vocab, text)?;
    let blank = (0..n_vocab).find(|&id| *vocab.token(id) == Token::Blank)?;
    let rows: Vec<Vec<f32>> = logits
        .chunks_exact(n_vocab)
        .map(|row| {
            let mut out = vec![0.0; n_vocab];
            log_softmax(row, &mut out);
            out
        })
        .collect();
    let aligned = viterbi(&rows, &labels, blank)?;
    let deficit: Vec<f32> = rows
        .iter()
        .zip(&aligned)
        .map(|(row, a)| row.iter().copied().fold(f32::NEG_INFINITY, f32::max) - a)
        .collect();
    let window = WINDOW_FRAMES.min(deficit.len()).max(1);
    let mut sum: f32 = deficit[..window].iter().sum();
    let mut worst = sum;
    for t in window..deficit.len() {
        sum += deficit[t] - deficit[t - window];
        worst = worst.max(sum);
    }
    Some(worst)
}

/// `text`'s token ids: characters, and the word boundary between words.
fn spell(vocab: &Vocab, text: &str) -> Option<Vec<usize>> {
    let id_of = |want: &Token| (0..vocab.len()).find(|&id| vocab.token(id) == want);
    let boundary = id_of(&Token::WordBoundary)?;
    let mut labels = Vec::new();
    for (i, word) in text.split(' ').filter(|w| !w.is_empty()).enumerate() {
        if i > 0 {
            labels.push(boundary);
        }
        for c in word.chars() {
            labels.push(id_of(&Token::Text(c.to_string()))?);
        }
    }
    Some(labels)
}

/// The log probability, per frame, of the symbol the best CTC alignment of `labels` emits there.
fn viterbi(rows: &[Vec<f32>], labels: &[usize], blank: usize) -> Option<Vec<f32>> {
    // States: blank, label 0, blank, label 1, ..., blank.
    let states: Vec<usize> = std::iter::once(blank)
        .chain(labels.iter().flat_map(|&l| [l, blank]))
        .collect();
    let (t_len, s_len) = (rows.len(), states.len());
    if t_len == 0 || labels.len() > t_len {
        return None;
    }
    const NONE: f32 = f32::NEG_INFINITY;
    let mut score = vec![NONE; s_len];
    // How far back (0, 1 or 2 states) each state's best predecessor was, per frame.
    let mut back = vec![0u8; t_len * s_len];
    score[0] = rows[0][states[0]];
    if s_len > 1 {
        score[1] = rows[0][states[1]];
    }
    let mut next = vec![NONE; s_len];
    for t in 1..t_len {
        for s in 0..s_len {
            let mut best = (score[s], 0u8);
            if s >= 1 && score[s - 1] > best.0 {
                best = (score[s - 1], 1);
            }
            // A label may follow the previous label directly unless it repeats it.
            if s >= 2 && states[s] != blank && states[s] != states[s - 2] && score[s - 2] > best.0 {
                best = (score[s - 2], 2);
            }
            next[s] = best.0 + rows[t][states[s]];
            back[t * s_len + s] = best.1;
        }
        std::mem::swap(&mut score, &mut next);
    }
    // The alignment ends on the last label or the blank after it.
    let mut s = if s_len > 1 && score[s_len - 2] > score[s_len - 1] {
        s_len - 2
    } else {
        s_len - 1
    };
    if score[s] == NONE {
        return None;
    }
    let mut out = vec![0.0; t_len];
    for t in (0..t_len).rev() {
        out[t] = rows[t][states[s]];
        s -= back[t * s_len + s] as usize;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::decode::beam::tests::{frames, vocab};

    // ids: 0 <pad>, 4 |, 5 a, 6 b, 7 c
    fn sure(id: usize) -> &'static [(usize, f32)] {
        match id {
            0 => &[(0, 0.98), (5, 0.01), (6, 0.01)],
            4 => &[(4, 0.98), (0, 0.02)],
            5 => &[(5, 0.98), (0, 0.02)],
            6 => &[(6, 0.98), (0, 0.02)],
            _ => &[(7, 0.98), (0, 0.02)],
        }
    }

    fn heard(ids: &[usize]) -> Vec<f32> {
        frames(&ids.iter().map(|&i| sure(i)).collect::<Vec<_>>())
    }

    #[test]
    fn what_was_heard_costs_nothing() {
        // "ab a" with a held "a" and blanks between.
        let logits = heard(&[0, 5, 5, 6, 0, 4, 5, 0]);
        let d = worst_window_deficit(&logits, &vocab(), "ab a").unwrap();
        assert!(d.abs() < 1e-3, "{d}");
    }

    #[test]
    fn one_wrong_word_shows_in_its_window_whatever_the_length() {
        // A long utterance "ab ab ... ab cb": the last word is "cb" but "ab" is claimed.
        let mut ids = Vec::new();
        for _ in 0..40 {
            ids.extend([5, 6, 0, 4]);
        }
        ids.extend([7, 6, 0]);
        let logits = heard(&ids);
        let right: String = ["ab"; 40].join(" ") + " cb";
        let wrong: String = ["ab"; 41].join(" ");
        let v = vocab();
        let ok = worst_window_deficit(&logits, &v, &right).unwrap();
        let bad = worst_window_deficit(&logits, &v, &wrong).unwrap();
        assert!(ok < 0.1, "{ok}");
        // "a" instead of a sure "c" in one frame: ln(0.98 / ~1e-17) ≈ 38 nats, all in one window,
        // while per frame over the 163 frames it would be a quarter of a nat.
        assert!(bad > 20.0, "{bad}");
    }

    #[test]
    fn unspellable_or_too_long_texts_give_none() {
        let logits = heard(&[5, 6]);
        let v = vocab();
        assert_eq!(worst_window_deficit(&logits, &v, "x"), None);
        assert_eq!(worst_window_deficit(&logits, &v, "ab ab"), None);
        assert_eq!(worst_window_deficit(&[], &v, "a"), None);
    }

    #[test]
    fn repeated_letters_need_a_blank_between() {
        // "aa" needs a, blank, a: three frames heard as "a a a" cannot hold it without a blank
        // but it is still alignable (the middle frame as blank, at a cost).
        let logits = heard(&[5, 5, 5]);
        let d = worst_window_deficit(&logits, &vocab(), "aa").unwrap();
        assert!(d > 1.0, "{d}");
        let logits = heard(&[5, 0, 5]);
        let d = worst_window_deficit(&logits, &vocab(), "aa").unwrap();
        assert!(d.abs() < 1e-3, "{d}");
    }
}
