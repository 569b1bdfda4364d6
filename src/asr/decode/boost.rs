//! Boosted words and phrases (rooms, devices, names): an Aho-Corasick automaton over characters. Every
//! character that extends a partial match earns a bonus; when the match fails, the bonus of the
//! characters not yet confirmed by a whole phrase is taken back, so a hypothesis gains only for the
//! phrases it really spells (the context graph sherpa-onnx uses for transducers, at character level).

use std::collections::{HashMap, VecDeque};

/// Phrases at most, and characters in one.
pub const MAX_PHRASES: usize = 10_000;
pub const MAX_PHRASE_CHARS: usize = 200;

pub type BoostState = u32;

#[derive(Debug, Clone)]
pub struct Boost {
    goto: HashMap<(BoostState, char), BoostState>,
    fail: Vec<BoostState>,
    depth: Vec<u32>,
    /// Characters of the current partial match not yet part of a whole phrase on this path.
    held: Vec<u32>,
    bonus_per_char: f32,
}

impl Boost {
    /// `bonus_per_char` is in nats (natural log units), like the acoustic scores.
    pub fn new<S: AsRef<str>>(phrases: &[S], bonus_per_char: f32) -> Result<Boost, String> {
        if phrases.len() > MAX_PHRASES {
            return Err(format!("more than {MAX_PHRASES} boosted phrases"));
        }
        let mut goto = HashMap::new();
        let mut depth = vec![0u32];
        let mut end = vec![false];
        for (i, p) in phrases.iter().enumerate() {
            let words: Vec<String> = p
                .as_ref()
                .split_whitespace()
                .map(str::to_lowercase)
                .collect();
            let text = words.join(" ");
            let n = text.chars().count();
            if n == 0 || n > MAX_PHRASE_CHARS {
                return Err(format!(
                    "boosted phrase {}: empty or over {MAX_PHRASE_CHARS} characters",
                    i + 1
                ));
            }
            let mut node = 0;
            for c in text.chars() {
                let next = depth.len() as BoostState;
                node = *goto.entry((node, c)).or_insert(next);
                if node == next {
                    depth.push(0); // set breadth-first below
                    end.push(false);
                }
            }
            end[node as usize] = true;
        }
        // Depths, `held` and failure links, breadth-first (a failure link points to a shallower node).
        let nodes = depth.len();
        let mut children: Vec<Vec<(char, BoostState)>> = vec![Vec::new(); nodes];
        for (&(from, c), &to) in &goto {
            children[from as usize].push((c, to));
        }
        for list in &mut children {
            list.sort_unstable();
        }
        let mut fail = vec![0; nodes];
        let mut held = vec![0u32; nodes];
        let mut queue = VecDeque::from([0u32]);
        while let Some(node) = queue.pop_front() {
            for &(c, child) in &children[node as usize] {
                let (n, ch) = (node as usize, child as usize);
                depth[ch] = depth[n] + 1;
                held[ch] = if end[ch] { 0 } else { held[n] + 1 };
                fail[ch] = if node == 0 {
                    0
                } else {
                    let mut f = fail[n];
                    loop {
                        if let Some(&t) = goto.get(&(f, c)) {
                            break t;
                        }
                        if f == 0 {
                            break 0;
                        }
                        f = fail[f as usize];
                    }
                };
                queue.push_back(child);
            }
        }
        Ok(Boost {
            goto,
            fail,
            depth,
            held,
            bonus_per_char,
        })
    }

    pub fn root(&self) -> BoostState {
        0
    }

    /// The state after `c`, and the score change: `+bonus` for a character that extends the match;
    /// on a failed match, the unconfirmed characters' bonus taken back and the new (shorter) match
    /// credited.
    pub fn step(&self, state: BoostState, c: char) -> (BoostState, f32) {
        if let Some(&next) = self.goto.get(&(state, c)) {
            return (next, self.bonus_per_char);
        }
        let mut f = state;
        let next = loop {
            if f == 0 {
                break self.goto.get(&(0, c)).copied().unwrap_or(0);
            }
            f = self.fail[f as usize];
            if let Some(&t) = self.goto.get(&(f, c)) {
                break t;
            }
        };
        let taken = self.held[state as usize] as f32;
        let credited = self.depth[next as usize] as f32;
        (next, self.bonus_per_char * (credited - taken))
    }

    /// What is taken back when the utterance ends inside a partial match.
    pub fn take_back(&self, state: BoostState) -> f32 {
        -self.bonus_per_char * self.held[state as usize] as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Total score of spelling `text` from the root, take-back at the end included.
    fn spell(b: &Boost, text: &str) -> f32 {
        let (state, sum) = text.chars().fold((b.root(), 0.0), |(s, acc), c| {
            let (n, d) = b.step(s, c);
            (n, acc + d)
        });
        sum + b.take_back(state)
    }

    #[test]
    fn whole_phrases_earn_a_bonus_per_character() {
        let b = Boost::new(&["Kitchen", "living room"], 0.5).unwrap();
        assert!((spell(&b, "kitchen") - 3.5).abs() < 1e-6);
        assert!((spell(&b, "the living room light") - 5.5).abs() < 1e-6);
        assert!((spell(&b, "the kitchen and the living room") - 9.0).abs() < 1e-6);
        assert_eq!(spell(&b, "bedroom"), 0.0);
    }

    #[test]
    fn partial_matches_are_taken_back() {
        let b = Boost::new(&["kitchen"], 1.0).unwrap();
        // "kitch" then a failure: the five characters earned nothing in the end.
        assert_eq!(spell(&b, "kitch light"), 0.0);
        // Ending inside a match takes it back too.
        assert_eq!(spell(&b, "the kitche"), 0.0);
        // While the match grows the bonus is there (what lets the beam keep it alive).
        let (s, d1) = b.step(b.root(), 'k');
        let (_, d2) = b.step(s, 'i');
        assert_eq!((d1, d2), (1.0, 1.0));
    }

    #[test]
    fn a_failed_match_can_restart_inside_itself() {
        // "aab": after "aa" fails on "a" ("aaa"), the suffix "aa" is a live partial match again.
        let b = Boost::new(&["aab"], 1.0).unwrap();
        assert_eq!(spell(&b, "aaab"), 3.0);
        assert_eq!(spell(&b, "aaa"), 0.0);
        // A phrase inside a longer one stays confirmed when the longer one fails.
        let b = Boost::new(&["fan", "fan heater"], 1.0).unwrap();
        assert_eq!(spell(&b, "fan"), 3.0);
        assert_eq!(spell(&b, "fan heat"), 3.0);
        assert_eq!(spell(&b, "fan heater"), 10.0);
    }

    #[test]
    fn limits_are_errors() {
        assert!(Boost::new(&[""], 1.0).is_err());
        assert!(Boost::new(&["x".repeat(MAX_PHRASE_CHARS + 1)], 1.0).is_err());
        assert!(Boost::new(&vec!["x"; MAX_PHRASES + 1], 1.0).is_err());
    }
}
