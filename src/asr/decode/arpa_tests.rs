use super::*;
use std::io::Write;

pub(crate) const BIGRAM: &str = "\
preamble lines are ignored

\\data\\
ngram 1=4
ngram 2=3

\\1-grams:
-1.0\t<s>\t-0.5
-0.7\t</s>
-0.6\ta\t-0.3
-0.9\tb\t-0.2

\\2-grams:
-0.2\t<s> a
-0.4\ta b
-0.3\tb </s>

\\end\\
";

const TRIGRAM: &str = "\\data\\
ngram 1=4
ngram 2=2
ngram 3=1

\\1-grams:
-1.0 <unk>
-0.5 x -0.1
-0.6 y -0.2
-0.7 w

\\2-grams:
-0.3 x y -0.4
-0.2 y x

\\3-grams:
-0.1 y x y

\\end\\
";

fn read(text: &str) -> Result<Arpa, String> {
    Arpa::read(text.as_bytes())
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn bigram_scores_and_backoff_by_hand() {
    let lm = read(BIGRAM).unwrap();
    assert_eq!((lm.order(), lm.ngram_count()), (2, 7));
    let id = |w| lm.word_id(w);
    let (s, a, b, e) = (id("<s>").unwrap(), id("a"), id("b"), id("</s>"));
    assert_eq!(lm.bos(), Some(s));
    assert!(close(lm.score(&[s], a), -0.2)); // listed bigram
    assert!(close(lm.score(&[s], b), -0.5 + -0.9)); // bo(<s>) + p(b)
    assert!(close(lm.score(&[a.unwrap()], a), -0.3 + -0.6));
    assert!(close(lm.score(&[b.unwrap()], a), -0.2 + -0.6));
    // Contexts longer than order - 1 are cut to the last word.
    assert!(close(lm.score(&[a.unwrap(), b.unwrap()], e), -0.3));
    assert!(close(lm.score(&[], b), -0.9));
    // No <unk> in the model: an unknown word gets the floor.
    assert_eq!(lm.unk(), None);
    assert!(close(lm.score(&[s], None), UNK_FLOOR_LOG10));
}

#[test]
fn trigram_backs_off_twice_and_scores_unk() {
    let lm = read(TRIGRAM).unwrap();
    let id = |w| lm.word_id(w).unwrap();
    let (x, y, w) = (id("x"), id("y"), id("w"));
    assert!(close(lm.score(&[y, x], Some(y)), -0.1));
    // (x y w) and (y w) absent: bo(x y) + bo(y) + p(w).
    assert!(close(lm.score(&[x, y], Some(w)), -0.4 + -0.2 + -0.7));
    // (y y x) absent, (y y) absent so no back-off weight for it, (y x) present.
    assert!(close(lm.score(&[y, y], Some(x)), -0.2));
    assert!(close(lm.score(&[x], None), -0.1 + -1.0));
}

#[test]
fn gzip_is_read_like_text() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(BIGRAM.as_bytes()).unwrap();
    let lm = Arpa::read(&gz.finish().unwrap()[..]).unwrap();
    let plain = read(BIGRAM).unwrap();
    assert_eq!(lm.ngram_count(), plain.ngram_count());
    let s = lm.bos().unwrap();
    assert!(close(lm.score(&[s], lm.word_id("b")), -1.4));
}

#[test]
fn malformed_files_are_errors_with_line_numbers() {
    let cases: Vec<(String, &str)> = vec![
        ("hello world\n".into(), "no \\data\\"),
        (BIGRAM.replace("ngram 2=3", "ngram 2=4"), "3 2-grams where"),
        (BIGRAM.replace("ngram 2=3", "ngram 2=2"), "more 2-grams"),
        (
            BIGRAM.replace("-0.4\ta b", "-0.4\ta c"),
            "\"c\" is not among",
        ),
        (BIGRAM.replace("\\end\\\n", ""), "ends inside the 2-grams"),
        (BIGRAM.replace("-0.9\tb", "oops\tb"), "log10 number"),
        (BIGRAM.replace("-0.9\tb", "NaN\tb"), "log10 value NaN"),
        (BIGRAM.replace("-0.9\tb", "-1e9\tb"), "out of range"),
        (BIGRAM.replace("-0.3\tb </s>", "-0.3\tb"), "needs 2 words"),
        (BIGRAM.replace("-0.7\t</s>", "-0.7\ta"), "listed twice"),
        (BIGRAM.replace("ngram 2=3", "ngram 3=3"), "orders must be"),
        (
            BIGRAM.replace("\\2-grams:", "\\3-grams:"),
            "expected \\2-grams:",
        ),
    ];
    for (text, want) in cases {
        let err = read(&text).unwrap_err();
        assert!(err.contains(want), "{want:?} not in {err:?}");
    }
    let err = read(&BIGRAM.replace("-0.9\tb", "-0.9 b -0.2 extra")).unwrap_err();
    assert!(err.starts_with("line 11:"), "{err}");
}

#[test]
fn huge_inputs_are_refused_without_allocating_them() {
    // A header announcing a trillion n-grams is not believed: the table grows with the lines read.
    let lying = BIGRAM.replace("ngram 2=3", "ngram 2=1000000000000");
    assert!(read(&lying).unwrap_err().contains("3 2-grams where"));
    let words = BIGRAM.replace("ngram 1=4", &format!("ngram 1={}", MAX_WORDS + 1));
    assert!(read(&words).unwrap_err().contains("at most"));
    let long = format!("\\data\\\n{}\n", "x".repeat(MAX_LINE_BYTES + 10));
    assert!(read(&long).unwrap_err().contains("longer than"));
    let seven = (1..=7)
        .map(|n| format!("ngram {n}=1\n"))
        .collect::<String>();
    assert!(read(&format!("\\data\\\n{seven}"))
        .unwrap_err()
        .contains("up to 6"));
}
