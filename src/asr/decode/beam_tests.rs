use super::*;
use crate::asr::ctc::greedy_decode;
use crate::asr::decode::arpa::Arpa;
use crate::asr::manifest::VocabSpec;
use std::collections::HashMap as Map;

// ids: 0 <pad>, 1 <s>, 2 </s>, 3 <unk>, 4 |, 5 a, 6 b, 7 c
pub(crate) fn vocab() -> Vocab {
    let map: Map<String, usize> = ["<pad>", "<s>", "</s>", "<unk>", "|", "a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i))
        .collect();
    let spec = VocabSpec {
        file: String::new(),
        blank: "<pad>".into(),
        word_delimiter: "|".into(),
        never_printed: vec!["<s>".into(), "</s>".into(), "<unk>".into()],
    };
    Vocab::from_map(&map, &spec).unwrap()
}

/// Logits whose softmax is the given probabilities per frame (`(id, p)`; the rest share nothing).
pub(crate) fn frames(rows: &[&[(usize, f32)]]) -> Vec<f32> {
    rows.iter()
        .flat_map(|row| {
            (0..8).map(move |id| {
                row.iter()
                    .find(|(i, _)| *i == id)
                    .map_or(-40.0, |(_, p)| p.ln())
            })
        })
        .collect()
}

fn search(logits: &[f32], options: &BeamOptions, scorers: Scorers) -> Search {
    beam_search(logits, &vocab(), options, scorers)
}

/// A small deterministic generator, so that the peaked inputs vary without a dependency.
fn lcg(seed: &mut u64) -> usize {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) as usize
}

#[test]
fn beam_equals_greedy_on_peaked_distributions() {
    let mut seed = 7u64;
    for _ in 0..50 {
        let ids: Vec<usize> = (0..40).map(|_| lcg(&mut seed) % 8).collect();
        let logits: Vec<f32> = ids
            .iter()
            .flat_map(|&id| (0..8).map(move |v| if v == id { 12.0 } else { 0.0 }))
            .collect();
        let greedy = greedy_decode(&logits, &vocab());
        let s = search(&logits, &BeamOptions::default(), Scorers::default());
        let best = &s.hypotheses[0];
        assert_eq!(best.text, greedy.text, "{ids:?}");
        assert_eq!(best.words.len(), greedy.words.len());
        for (b, g) in best.words.iter().zip(&greedy.words) {
            assert_eq!(
                (b.start_frame, b.end_frame),
                (g.start_frame, g.end_frame),
                "{ids:?}"
            );
            assert!((b.confidence - g.confidence).abs() < 1e-4);
        }
        assert!((best.confidence - greedy.confidence).abs() < 1e-4);
    }
}

#[test]
fn sums_alignments_where_greedy_takes_one_path() {
    // Two frames of blank 0.6 / "a" 0.4: greedy says "", but "a" has three alignments
    // (a a, a _, _ a) worth 0.16 + 0.24 + 0.24 = 0.64 against 0.36 for "".
    let row: &[(usize, f32)] = &[(0, 0.6), (5, 0.4)];
    let logits = frames(&[row, row]);
    assert_eq!(greedy_decode(&logits, &vocab()).text, "");
    let s = search(&logits, &BeamOptions::default(), Scorers::default());
    assert_eq!(s.hypotheses[0].text, "a");
    assert!((s.hypotheses[0].acoustic - 0.64f32.ln()).abs() < 1e-3);
    assert_eq!(s.hypotheses[1].text, "");
    assert!((s.hypotheses[1].acoustic - 0.36f32.ln()).abs() < 1e-3);
    // The greedy path's probability: 0.6 * 0.6.
    assert!((s.best_path - 0.36f32.ln()).abs() < 1e-3);
}

#[test]
fn repeats_need_a_blank_between() {
    // "a a" over three frames: a, a, a = one "a"; a, _, a = "aa".
    let a: &[(usize, f32)] = &[(5, 0.98), (0, 0.02)];
    let blank: &[(usize, f32)] = &[(0, 0.98), (5, 0.02)];
    let held = search(
        &frames(&[a, a, a]),
        &BeamOptions::default(),
        Scorers::default(),
    );
    assert_eq!(held.hypotheses[0].text, "a");
    let two = search(
        &frames(&[a, blank, a]),
        &BeamOptions::default(),
        Scorers::default(),
    );
    assert_eq!(two.hypotheses[0].text, "aa");
    assert_eq!(
        (
            two.hypotheses[0].words[0].start_frame,
            two.hypotheses[0].words[0].end_frame
        ),
        (0, 3)
    );
}

#[test]
fn token_pruning_and_beam_width_limit_the_work() {
    let row: &[(usize, f32)] = &[(0, 0.4), (5, 0.2), (6, 0.2), (7, 0.2)];
    let logits = frames(&vec![row; 30]);
    let wide = search(&logits, &BeamOptions::default(), Scorers::default());
    let narrow = BeamOptions {
        beam_width: 2,
        token_min_logp: -1.0,
        ..BeamOptions::default()
    };
    let few = search(&logits, &narrow, Scorers::default());
    assert!(
        few.nodes * 4 < wide.nodes,
        "{} vs {}",
        few.nodes,
        wide.nodes
    );
    assert!(few.hypotheses.len() <= 2);
}

/// Words "ab" and "cb": the acoustics lean to "cb", the LM strongly to "ab".
pub(crate) const LM: &str = "\\data\\
ngram 1=5

\\1-grams:
-1.0 <s>
-0.5 </s>
-4.0 <unk>
-0.3 ab
-3.0 cb

\\end\\
";

fn leaning_to_cb() -> Vec<f32> {
    let first: &[(usize, f32)] = &[(7, 0.55), (5, 0.45)];
    let second: &[(usize, f32)] = &[(6, 0.99), (0, 0.01)];
    frames(&[first, second])
}

#[test]
fn the_language_model_overrules_weak_acoustics() {
    let plain = search(
        &leaning_to_cb(),
        &BeamOptions::default(),
        Scorers::default(),
    );
    assert_eq!(plain.hypotheses[0].text, "cb");
    let lm = WordLm::new(Arpa::read(LM.as_bytes()).unwrap());
    let scorers = Scorers {
        lm: Some(&lm),
        ..Scorers::default()
    };
    let s = search(&leaning_to_cb(), &BeamOptions::default(), scorers);
    assert_eq!(s.hypotheses[0].text, "ab");
    // By hand: ln(0.45 * 0.99) + 0.5 * ln10 * (-0.3 - 0.5) + 1 word bonus.
    let want = (0.45f32 * 0.99).ln() + 0.5 * std::f32::consts::LN_10 * (-0.8) + 1.0;
    assert!(
        (s.hypotheses[0].score - want).abs() < 1e-2,
        "{}",
        s.hypotheses[0].score
    );
    assert_eq!(s.hypotheses[1].text, "cb");
}

#[test]
fn words_outside_the_vocabulary_pay_as_they_are_spelled() {
    let lm = WordLm::new(Arpa::read(LM.as_bytes()).unwrap());
    // "bb" is no word's prefix: the penalty is paid at its first "b".
    let b: &[(usize, f32)] = &[(6, 0.9), (0, 0.1)];
    let blank: &[(usize, f32)] = &[(0, 0.9), (6, 0.1)];
    let logits = frames(&[b, blank, b]);
    let scorers = Scorers {
        lm: Some(&lm),
        ..Scorers::default()
    };
    let with = search(&logits, &BeamOptions::default(), scorers);
    let top = with.hypotheses.iter().find(|h| h.text == "bb").unwrap();
    let unk = 0.5 * std::f32::consts::LN_10 * (-4.0 - 0.5);
    assert!((top.score - (top.acoustic - 10.0 + unk + 1.0)).abs() < 1e-2);
}

#[test]
fn the_start_of_a_known_word_is_an_unknown_word_when_it_ends() {
    // "a" is a prefix of "ab" (so it pays nothing while spelled) but no word of the model: ended
    // there it is scored as <unk> and pays the penalty, like any other unknown word.
    let lm = WordLm::new(Arpa::read(LM.as_bytes()).unwrap());
    let scorers = Scorers {
        lm: Some(&lm),
        ..Scorers::default()
    };
    let a: &[(usize, f32)] = &[(5, 0.9), (0, 0.1)];
    let s = search(&frames(&[a]), &BeamOptions::default(), scorers);
    let top = s.hypotheses.iter().find(|h| h.text == "a").unwrap();
    let unk = 0.5 * std::f32::consts::LN_10 * (-4.0 - 0.5);
    assert!((top.score - (top.acoustic - 10.0 + unk + 1.0)).abs() < 1e-2);
}

#[test]
fn long_spellings_outside_the_vocabulary_pay_more_while_in_the_beam() {
    let lm = WordLm::new(Arpa::read(LM.as_bytes()).unwrap());
    let options = BeamOptions::default();
    let scorers = Scorers {
        lm: Some(&lm),
        ..Scorers::default()
    };
    let mut tree = Tree::new(scorers, &options);
    // "cbcbcbcbcbcb": 12 letters that no word starts with, the provisional penalty doubles.
    let (c, b) = (vec!['c'], vec!['b']);
    let mut node = 0;
    for i in 0..12 {
        let (token, chars) = if i % 2 == 0 { (7, &c) } else { (6, &b) };
        node = tree.child(node, token, Some(chars)).unwrap();
        let n = &tree.nodes[node as usize];
        let want = if i < 2 {
            0.0 // "c" and "cb" are in the vocabulary
        } else {
            -10.0 * ((i + 1) as f32 / OOV_FREE_CHARS).max(1.0)
        };
        assert!(
            (n.oov - want).abs() < 1e-4,
            "after {} letters: {}",
            i + 1,
            n.oov
        );
    }
    // The word ends: the provisional penalty is replaced by the word's own score.
    let end = tree.child(node, 4, None).unwrap();
    let n = &tree.nodes[end as usize];
    assert_eq!(n.oov, 0.0);
    // ln p(<unk> | <s>) (no end of sentence yet), the word bonus, the penalty.
    let unk = 0.5 * std::f32::consts::LN_10 * -4.0;
    assert!((n.extra - (unk + 1.0 - 10.0)).abs() < 1e-3, "{}", n.extra);
}

#[test]
fn phrase_mode_only_outputs_allowed_sentences() {
    let g = Grammar::parse("ab\nab ab\n").unwrap();
    let scorers = Scorers {
        phrases: Some(&g),
        ..Scorers::default()
    };
    let s = search(&leaning_to_cb(), &BeamOptions::default(), scorers);
    assert_eq!(s.hypotheses[0].text, "ab");
    assert!(s
        .hypotheses
        .iter()
        .all(|h| h.text == "ab" || h.text == "ab ab"));
    // Nothing allowed fits: no hypothesis at all.
    let only_long = Grammar::parse("abcabc\n").unwrap();
    let scorers = Scorers {
        phrases: Some(&only_long),
        ..Scorers::default()
    };
    let s = search(&leaning_to_cb(), &BeamOptions::default(), scorers);
    assert!(s.hypotheses.is_empty());
}

#[test]
fn boosted_words_win_close_calls() {
    let boost = Boost::new(&["ab"], 1.0).unwrap();
    let scorers = Scorers {
        boost: Some(&boost),
        ..Scorers::default()
    };
    let s = search(&leaning_to_cb(), &BeamOptions::default(), scorers);
    assert_eq!(s.hypotheses[0].text, "ab");
    assert!((s.hypotheses[0].score - s.hypotheses[0].acoustic - 2.0).abs() < 1e-4);
}
