//! Phrase mode's automaton: the sentences of a phrase list or of a command grammar (the
//! `../shared/corpus/` format: `$slot = a | b` lines and templates such as `set the $room
//! temperature to $num degrees`), as a character-level automaton that the beam search walks.
//!
//! Nothing is expanded: a template is a chain of literal runs and slot references, and a position in
//! it is (template, item, alternative, character). A state of the automaton is the set of positions a
//! prefix can be at, built lazily while decoding (only the states the beam reaches exist), so a
//! grammar whose sentences number 10^30 costs what its text costs.

use std::collections::HashMap;

/// Grammar text read at most.
pub const MAX_GRAMMAR_BYTES: usize = 1 << 20;
/// Templates (or phrases) at most, and slots at most.
pub const MAX_TEMPLATES: usize = 20_000;
pub const MAX_SLOTS: usize = 1_000;
/// Characters in one literal run or slot alternative.
pub const MAX_RUN_CHARS: usize = 1_000;

#[derive(Debug, Clone)]
enum Item {
    /// Literal characters, spaces included (never empty).
    Chars(Vec<char>),
    /// A slot: one of its alternatives.
    Slot(u32),
}

/// A compiled phrase list or grammar.
#[derive(Debug, Clone)]
pub struct Grammar {
    slots: Vec<Vec<Vec<char>>>,
    templates: Vec<Vec<Item>>,
}

/// Where a prefix can be: `item == template length` is the end of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Pos {
    template: u32,
    item: u32,
    alt: u32,
    offset: u32,
}

impl Grammar {
    /// Parses the corpus grammar format (a phrase list is a grammar without slots). Text is lower
    /// cased and spaces collapsed, as the model prints it.
    pub fn parse(text: &str) -> Result<Grammar, String> {
        if text.len() > MAX_GRAMMAR_BYTES {
            return Err(format!("larger than {MAX_GRAMMAR_BYTES} bytes"));
        }
        let mut names: HashMap<String, u32> = HashMap::new();
        let mut grammar = Grammar {
            slots: Vec::new(),
            templates: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let at = |e: String| format!("line {}: {e}", i + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((name, alts)) = slot_definition(line) {
                if names.len() >= MAX_SLOTS {
                    return Err(at(format!("more than {MAX_SLOTS} slots")));
                }
                let alts: Vec<Vec<char>> = alts.split('|').map(normalise).collect();
                if alts.iter().any(|a| a.is_empty() || a.len() > MAX_RUN_CHARS) {
                    return Err(at(format!(
                        "slot ${name} has an empty alternative or one over {MAX_RUN_CHARS} characters"
                    )));
                }
                names.insert(name.to_string(), grammar.slots.len() as u32);
                grammar.slots.push(alts);
                continue;
            }
            let mut items = Vec::new();
            let mut run: Vec<char> = Vec::new();
            for (k, word) in line.split_whitespace().enumerate() {
                if k > 0 {
                    run.push(' ');
                }
                match word.strip_prefix('$') {
                    Some(name) => {
                        let slot = names.get(name).ok_or_else(|| {
                            at(format!("slot ${name} is used before it is defined"))
                        })?;
                        if !run.is_empty() {
                            items.push(Item::Chars(std::mem::take(&mut run)));
                        }
                        items.push(Item::Slot(*slot));
                    }
                    None => run.extend(word.chars().flat_map(char::to_lowercase)),
                }
                if run.len() > MAX_RUN_CHARS {
                    return Err(at(format!("a run of over {MAX_RUN_CHARS} characters")));
                }
            }
            if !run.is_empty() {
                items.push(Item::Chars(run));
            }
            grammar.push(items).map_err(at)?;
        }
        if grammar.templates.is_empty() {
            return Err("no phrase or template".into());
        }
        Ok(grammar)
    }

    /// A plain list of phrases, taken literally (`$` is not special).
    pub fn from_phrases<S: AsRef<str>>(phrases: &[S]) -> Result<Grammar, String> {
        let mut grammar = Grammar {
            slots: Vec::new(),
            templates: Vec::new(),
        };
        for (i, p) in phrases.iter().enumerate() {
            let chars = normalise(p.as_ref());
            if chars.is_empty() || chars.len() > MAX_RUN_CHARS {
                return Err(format!(
                    "phrase {}: empty or over {MAX_RUN_CHARS} characters",
                    i + 1
                ));
            }
            grammar.push(vec![Item::Chars(chars)])?;
        }
        if grammar.templates.is_empty() {
            return Err("no phrase".into());
        }
        Ok(grammar)
    }

    fn push(&mut self, items: Vec<Item>) -> Result<(), String> {
        if self.templates.len() >= MAX_TEMPLATES {
            return Err(format!("more than {MAX_TEMPLATES} templates"));
        }
        self.templates.push(items);
        Ok(())
    }

    pub fn templates(&self) -> usize {
        self.templates.len()
    }

    /// How many sentences the grammar stands for (counting duplicates), as a float: it may be
    /// astronomically large, which costs nothing here.
    pub fn sentences(&self) -> f64 {
        self.templates
            .iter()
            .map(|items| {
                items
                    .iter()
                    .map(|it| match it {
                        Item::Chars(_) => 1.0,
                        Item::Slot(s) => self.slots[*s as usize].len() as f64,
                    })
                    .product::<f64>()
            })
            .sum()
    }

    fn chars(&self, p: &Pos) -> &[char] {
        match &self.templates[p.template as usize][p.item as usize] {
            Item::Chars(c) => c,
            Item::Slot(s) => &self.slots[*s as usize][p.alt as usize],
        }
    }

    /// The positions at the start of `item` of `template` (every alternative of a slot).
    fn enter(&self, template: u32, item: u32, out: &mut Vec<Pos>) {
        let at = |alt| Pos {
            template,
            item,
            alt,
            offset: 0,
        };
        match self.templates[template as usize].get(item as usize) {
            None | Some(Item::Chars(_)) => out.push(at(0)),
            Some(Item::Slot(s)) => {
                out.extend((0..self.slots[*s as usize].len() as u32).map(at));
            }
        }
    }

    fn is_end(&self, p: &Pos) -> bool {
        p.item as usize == self.templates[p.template as usize].len()
    }

    /// Where `p` goes on `c`, if anywhere.
    fn step(&self, p: &Pos, c: char, out: &mut Vec<Pos>) {
        if self.is_end(p) {
            return;
        }
        let chars = self.chars(p);
        if chars.get(p.offset as usize) != Some(&c) {
            return;
        }
        if p.offset as usize + 1 < chars.len() {
            out.push(Pos {
                offset: p.offset + 1,
                ..*p
            });
        } else {
            // Literal runs and alternatives are never empty, so entering the next item ends here.
            self.enter(p.template, p.item + 1, out);
        }
    }
}

fn slot_definition(line: &str) -> Option<(&str, &str)> {
    let (name, alts) = line.strip_prefix('$')?.split_once('=')?;
    let name = name.trim();
    let word = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    word.then_some((name, alts))
}

fn normalise(text: &str) -> Vec<char> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    words.join(" ").chars().collect()
}

/// A state of the automaton, valid in the [`Walker`] that made it.
pub type StateId = u32;

/// The automaton's states reached while decoding one utterance, built on demand and cached.
#[derive(Debug)]
pub struct Walker<'g> {
    grammar: &'g Grammar,
    states: Vec<Vec<Pos>>,
    ids: HashMap<Vec<Pos>, StateId>,
    steps: HashMap<(StateId, char), Option<StateId>>,
}

impl<'g> Walker<'g> {
    pub fn new(grammar: &'g Grammar) -> Walker<'g> {
        let mut start = Vec::new();
        for t in 0..grammar.templates.len() as u32 {
            grammar.enter(t, 0, &mut start);
        }
        let mut w = Walker {
            grammar,
            states: Vec::new(),
            ids: HashMap::new(),
            steps: HashMap::new(),
        };
        w.intern(start);
        w
    }

    pub fn start(&self) -> StateId {
        0
    }

    /// The state after `c` (a space between words), or `None` when no sentence continues so.
    pub fn step(&mut self, state: StateId, c: char) -> Option<StateId> {
        if let Some(&next) = self.steps.get(&(state, c)) {
            return next;
        }
        let mut out = Vec::new();
        for p in &self.states[state as usize] {
            self.grammar.step(p, c, &mut out);
        }
        let next = (!out.is_empty()).then(|| self.intern(out));
        self.steps.insert((state, c), next);
        next
    }

    /// Whether a whole sentence ends here.
    pub fn accepts(&self, state: StateId) -> bool {
        self.states[state as usize]
            .iter()
            .any(|p| self.grammar.is_end(p))
    }

    /// States built so far (for tests and statistics).
    pub fn states_built(&self) -> usize {
        self.states.len()
    }

    fn intern(&mut self, mut positions: Vec<Pos>) -> StateId {
        positions.sort_unstable();
        positions.dedup();
        if let Some(&id) = self.ids.get(&positions) {
            return id;
        }
        let id = self.states.len() as StateId;
        self.ids.insert(positions.clone(), id);
        self.states.push(positions);
        id
    }
}

#[cfg(test)]
#[path = "phrases_tests.rs"]
mod tests;
