use super::*;
use crate::asr::decode::beam::tests::{frames, vocab};

fn peaked(ids: &[usize]) -> Vec<f32> {
    ids.iter()
        .flat_map(|&id| (0..8).map(move |v| if v == id { 6.0 } else { 0.0 }))
        .collect()
}

#[test]
fn greedy_is_the_default_and_unchanged() {
    let logits = peaked(&[5, 5, 0, 6, 4, 7, 0]);
    let out = Decoder::greedy().decode(&logits, &vocab());
    assert_eq!(out.decoded, greedy_decode(&logits, &vocab()));
    assert!(!out.rejected && out.alternatives.is_empty() && out.hint.is_none());
    assert!(!Decoder::greedy().uses_beam());
    assert_eq!(DecoderConfig::default().mode, Mode::Greedy);
}

/// Phrase mode with the per-frame rule at `threshold` and the local rule out of the way.
fn phrase_decoder(phrases: &[&str], threshold: f32) -> Decoder {
    Decoder {
        phrases: Some(Arc::new(Grammar::from_phrases(phrases).unwrap())),
        reject_nats_per_frame: threshold,
        reject_local_nats: 1000.0,
        ..Decoder::greedy()
    }
}

#[test]
fn one_wrong_word_of_a_long_command_is_rejected_by_the_local_rule() {
    // "ab ab ab ab ab ab ab ab cb" heard; "ab" × 9 allowed. Per frame the one wrong letter is
    // ~6 nats over 36 frames, under a per-frame threshold of 0.2; over 400 ms it is all there.
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.extend([5, 0, 6, 4]);
    }
    ids.extend([7, 0, 6, 0]);
    let logits = peaked(&ids);
    let allowed = ["ab"; 9].join(" ");
    let lenient = phrase_decoder(&[&allowed], 0.2).decode(&logits, &vocab());
    assert_eq!(lenient.decoded.text, allowed);
    let local = Decoder {
        reject_local_nats: 3.0,
        ..phrase_decoder(&[&allowed], 0.2)
    };
    let out = local.decode(&logits, &vocab());
    assert!(out.rejected, "{out:?}");
    assert_eq!(out.hint.as_deref(), Some(allowed.as_str()));
    // What was said, allowed, passes both rules.
    let said = ["ab"; 8].join(" ") + " cb";
    let ok = Decoder {
        reject_local_nats: 3.0,
        ..phrase_decoder(&[&allowed, &said], 0.2)
    };
    assert_eq!(ok.decode(&logits, &vocab()).decoded.text, said);
}

#[test]
fn phrase_mode_accepts_a_close_sentence_and_rejects_a_far_one() {
    // Clearly "ab c" (a, b, boundary, c, with blanks).
    let logits = peaked(&[5, 0, 6, 4, 7, 0]);
    let accepted = phrase_decoder(&["ab c", "ba"], 0.5).decode(&logits, &vocab());
    assert_eq!(accepted.decoded.text, "ab c");
    assert!(!accepted.rejected);
    assert_eq!(accepted.decoded.words.len(), 2);
    // Only "ab b" is allowed: one letter wrong at a confident frame is ~6 nats over 6 frames.
    let rejected = phrase_decoder(&["ab b"], 0.5).decode(&logits, &vocab());
    assert!(rejected.rejected);
    assert_eq!(rejected.decoded.text, "");
    assert_eq!(rejected.hint.as_deref(), Some("ab b"));
    // With a lax threshold the same utterance is taken as the allowed sentence.
    let lax = phrase_decoder(&["ab b"], 5.0).decode(&logits, &vocab());
    assert_eq!((lax.decoded.text.as_str(), lax.rejected), ("ab b", false));
}

#[test]
fn phrase_mode_finds_a_hint_beyond_the_pruned_tokens() {
    // "c" is below token_min_logp everywhere: the pruned search finds no allowed sentence, the
    // hint comes from a second, unpruned one.
    let logits = frames(&[
        &[(5, 0.9), (0, 0.1)],
        &[(0, 0.9), (5, 0.1)],
        &[(6, 0.9), (0, 0.1)],
    ]);
    let out = phrase_decoder(&["ac", "cc"], 0.5).decode(&logits, &vocab());
    assert!(out.rejected && out.decoded.text.is_empty());
    assert_eq!(out.hint.as_deref(), Some("ac"));
    // Too short for any allowed sentence: rejected without a hint.
    let logits = frames(&[&[(5, 0.9), (0, 0.1)]]);
    let out = phrase_decoder(&["abcabc"], 0.5).decode(&logits, &vocab());
    assert!(out.rejected && out.hint.is_none() && out.decoded.text.is_empty());
}

#[test]
fn beam_mode_returns_alternatives() {
    let row: &[(usize, f32)] = &[(5, 0.5), (6, 0.3), (0, 0.2)];
    let decoder = Decoder {
        mode: Mode::Beam,
        ..Decoder::greedy()
    };
    let out = decoder.decode(&frames(&[row]), &vocab());
    assert_eq!(out.decoded.text, "a");
    assert_eq!(out.alternatives[0].text, "b");
    assert!(out.alternatives[0].score < 0.0);
}

fn temp_file(name: &str, text: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edgescribe-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn load_builds_from_files_and_errors_name_the_key() {
    let lm = temp_file(
        "lm.arpa",
        crate::asr::decode::arpa::tests::BIGRAM.as_bytes(),
    );
    let phrases = temp_file("phrases.txt", b"$x = a | b\nturn $x on\n");
    let boost = temp_file("boost.txt", b"# rooms\nkitchen\n");
    let bad = temp_file("bad.txt", b"turn $y on\n");
    let mut config = DecoderConfig::default();
    config.per_language.insert(
        "eng".into(),
        LanguageDecoderConfig {
            lm: Some(lm),
            phrases: Some(phrases),
            boost: Some(boost),
            reject_nats_per_frame: Some(0.9),
            reject_local_nats: Some(6.0),
        },
    );
    let d = Decoder::load(&config, "eng").unwrap();
    assert!(d.lm.is_some() && d.phrases.is_some() && d.boost.is_some());
    assert_eq!(d.reject_nats_per_frame, 0.9);
    assert_eq!(d.reject_local_nats, 6.0);
    // A language without its own table gets the defaults.
    let fra = Decoder::load(&config, "fra").unwrap();
    assert!(fra.lm.is_none() && !fra.uses_beam());
    let own = config.per_language.get_mut("eng").unwrap();
    own.phrases = Some(bad);
    let e = Decoder::load(&config, "eng").unwrap_err();
    assert!(e.starts_with("decoder.per_language.eng.phrases: "), "{e}");
    assert!(e.contains("line 1: slot $y"), "{e}");
    let own = config.per_language.get_mut("eng").unwrap();
    own.lm = Some("/nonexistent/lm.arpa".into());
    let e = Decoder::load(&config, "eng").unwrap_err();
    assert!(
        e.starts_with("decoder.per_language.eng.lm: /nonexistent"),
        "{e}"
    );
}

#[test]
fn config_ranges_name_the_key() {
    let mut c = DecoderConfig {
        beam_width: 0,
        ..DecoderConfig::default()
    };
    assert_eq!(c.validate().unwrap_err().0, "beam_width");
    c.beam_width = 8;
    c.lm_weight = f32::NAN;
    assert_eq!(c.validate().unwrap_err().0, "lm_weight");
    c.lm_weight = 1.0;
    c.per_language.insert(
        "deu".into(),
        LanguageDecoderConfig {
            reject_nats_per_frame: Some(11.0),
            ..Default::default()
        },
    );
    assert_eq!(
        c.validate().unwrap_err().0,
        "per_language.deu.reject_nats_per_frame"
    );
    let deu = c.per_language.get_mut("deu").unwrap();
    deu.reject_nats_per_frame = None;
    deu.reject_local_nats = Some(-1.0);
    assert_eq!(
        c.validate().unwrap_err().0,
        "per_language.deu.reject_local_nats"
    );
}

#[test]
fn with_a_language_model_rejection_forgives_what_the_model_explains() {
    use crate::asr::decode::arpa::Arpa;
    use crate::asr::decode::beam::tests::LM;
    let lm = Arc::new(WordLm::new(Arpa::read(LM.as_bytes()).unwrap()));
    let decoder = |threshold| Decoder {
        lm: Some(lm.clone()),
        ..phrase_decoder(&["ab"], threshold)
    };
    let b: &[(usize, f32)] = &[(6, 0.99), (0, 0.01)];
    // Acoustics unsure between "cb" and the allowed "ab": the LM explains "ab", no gap at all.
    let unsure = frames(&[&[(7, 0.55), (5, 0.45)], b]);
    let out = decoder(0.0).decode(&unsure, &vocab());
    assert_eq!((out.decoded.text.as_str(), out.rejected), ("ab", false));
    // Clearly "cb": the open decoding keeps "cb" despite the LM, by
    // (ln .99 - 3.5 ln10 / 2 + 1) - (ln .01 - 0.8 ln10 / 2 + 1) = 1.48 nats over 2 frames.
    let sure = frames(&[&[(7, 0.99), (5, 0.01)], b]);
    let out = decoder(0.5).decode(&sure, &vocab());
    assert!(out.rejected, "{out:?}");
    assert_eq!(out.hint.as_deref(), Some("ab"));
    assert!(!decoder(1.0).decode(&sure, &vocab()).rejected);
}
