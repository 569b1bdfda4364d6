use super::*;

const GRAMMAR: &str = "\
# a comment
$room = kitchen | living room | bedroom
$onoff = turn on | turn off
$num = one | two | twenty one

$onoff the $room light
set the $room temperature to $num degrees
What  time is it
";

fn walk(w: &mut Walker, text: &str) -> Option<StateId> {
    text.chars().try_fold(w.start(), |s, c| w.step(s, c))
}

fn accepts(g: &Grammar, text: &str) -> bool {
    let mut w = Walker::new(g);
    walk(&mut w, text).is_some_and(|s| w.accepts(s))
}

#[test]
fn grammar_accepts_exactly_its_sentences() {
    let g = Grammar::parse(GRAMMAR).unwrap();
    assert_eq!(g.templates(), 3);
    assert_eq!(g.sentences(), 2.0 * 3.0 + 3.0 * 3.0 + 1.0);
    for yes in [
        "turn on the kitchen light",
        "turn off the living room light",
        "set the bedroom temperature to twenty one degrees",
        "what time is it",
    ] {
        assert!(accepts(&g, yes), "{yes}");
    }
    for no in [
        "turn on the kitchen",              // a prefix only
        "turn on the garage light",         // not a room
        "turn on the kitchen light please", // a longer sentence
        "turn on  the kitchen light",       // two spaces
        "set the kitchen temperature to twenty degrees",
        "",
    ] {
        assert!(!accepts(&g, no), "{no}");
    }
}

#[test]
fn prefixes_shared_by_alternatives_stay_open_together() {
    let g = Grammar::parse(GRAMMAR).unwrap();
    let mut w = Walker::new(&g);
    // "twenty one" and "two" share "tw"; after "tw" both are possible.
    let s = walk(&mut w, "set the kitchen temperature to tw").unwrap();
    assert!(w.step(s, 'o').is_some() && w.step(s, 'e').is_some());
    assert!(w.step(s, 'x').is_none());
    // Steps are cached: asking again builds no state.
    let built = w.states_built();
    assert!(w.step(s, 'o').is_some());
    assert_eq!(w.states_built(), built);
}

#[test]
fn astronomically_large_grammar_is_never_expanded() {
    // 40 slots of 10 digits each: 10^40 sentences, a few hundred bytes of grammar.
    let mut text =
        String::from("$d = zero | one | two | three | four | five | six | seven | eight | nine\n");
    text.push_str(&vec!["$d"; 40].join(" "));
    let g = Grammar::parse(&text).unwrap();
    assert!(g.sentences() > 9.9e39);
    let digits = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero",
    ];
    let sentence: Vec<&str> = (0..40).map(|i| digits[(i * 7) % 10]).collect();
    let started = std::time::Instant::now();
    let mut w = Walker::new(&g);
    let s = walk(&mut w, &sentence.join(" ")).unwrap();
    assert!(w.accepts(s));
    assert!(!accepts(&g, &sentence[..39].join(" ")));
    // Only the states along one path were built, each a handful of positions.
    assert!(w.states_built() < 400, "{} states", w.states_built());
    assert!(started.elapsed().as_secs() < 2);
}

#[test]
fn phrase_lists_are_literal_and_normalised() {
    let g = Grammar::from_phrases(&["Open the  GATE", "$not a slot"]).unwrap();
    assert!(accepts(&g, "open the gate"));
    assert!(accepts(&g, "$not a slot"));
    assert!(!accepts(&g, "open the"));
    assert!(Grammar::from_phrases::<&str>(&[]).is_err());
    assert!(Grammar::from_phrases(&["  "])
        .unwrap_err()
        .contains("phrase 1"));
}

#[test]
fn malformed_grammars_are_errors_naming_the_line() {
    for (text, want) in [
        (
            "turn on the $room light\n",
            "line 1: slot $room is used before",
        ),
        (
            "$a = x | | y\nx\n",
            "line 1: slot $a has an empty alternative",
        ),
        ("# only a comment\n", "no phrase or template"),
    ] {
        let err = Grammar::parse(text).unwrap_err();
        assert!(err.contains(want), "{want:?} not in {err:?}");
    }
    let huge = "a ".repeat(MAX_GRAMMAR_BYTES);
    assert!(Grammar::parse(&huge).unwrap_err().contains("larger than"));
    let long_run = "ab ".repeat(MAX_RUN_CHARS);
    assert!(Grammar::parse(&long_run)
        .unwrap_err()
        .contains("run of over"));
    let many = "x\n".repeat(MAX_TEMPLATES + 1);
    assert!(Grammar::parse(&many).unwrap_err().contains("templates"));
}
