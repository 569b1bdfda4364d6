"""Command-grammar corpus: parse `../shared/corpus/<lang>.txt` (relative to the repository root) and
expand it into sentences.

Format (see the corpus README): `$slot = a | b | c` defines a slot, every other non-comment line is a
template whose expansion is the cartesian product of its slots' alternatives.
"""

import itertools
import re
import zlib
from pathlib import Path

LANGS = ("eng", "fra", "deu", "spa")
# The shared corpus sits beside the repository: <repo>/models/corpus.py -> <repo>/../shared/corpus.
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"

_SLOT_DEF = re.compile(r"^\$(\w+)\s*=\s*(.*)$")


def normalise(text: str) -> str:
    """Single spaces, no leading/trailing space: the form the held-out rule hashes."""
    return " ".join(text.split())


def is_held_out(sentence: str) -> bool:
    """The corpus-wide held-out rule; held-out sentences are never trained on."""
    return zlib.crc32(sentence.encode("utf-8")) % 10 == 0


def parse_grammar(path: Path) -> list[list[list[str]]]:
    """Return the templates of a grammar file, each as a list of choice lists.

    A literal word becomes a one-element choice list, a `$slot` its alternatives, so a template's
    sentences are simply `itertools.product(*template)`.
    """
    slots: dict[str, list[str]] = {}
    templates = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SLOT_DEF.match(line)
        if m:
            slots[m.group(1)] = [normalise(a) for a in m.group(2).split("|")]
            continue
        template = []
        for word in line.split():
            if word.startswith("$"):
                if word[1:] not in slots:
                    raise ValueError(f"{path}: slot {word} used before it is defined")
                template.append(slots[word[1:]])
            else:
                template.append([word])
        templates.append(template)
    return templates


def expand(template: list[list[str]]) -> list[str]:
    return [normalise(" ".join(choice)) for choice in itertools.product(*template)]


def load_language(lang: str, corpus_dir: Path = DEFAULT_CORPUS_DIR) -> list[list[str]]:
    """All sentences of a language, grouped by template (duplicates across templates removed)."""
    seen: set[str] = set()
    groups = []
    for template in parse_grammar(corpus_dir / f"{lang}.txt"):
        group = [s for s in expand(template) if s not in seen]
        seen.update(group)
        if group:
            groups.append(group)
    return groups


def alphabet(groups: list[list[str]]) -> list[str]:
    """Sorted characters (letters and apostrophe) used by a language, without the space."""
    return sorted({c for group in groups for s in group for c in s} - {" "})


if __name__ == "__main__":
    for lang in LANGS:
        groups = load_language(lang)
        sentences = [s for g in groups for s in g]
        held = sum(is_held_out(s) for s in sentences)
        print(f"{lang}: {len(groups)} templates, {len(sentences)} sentences, {held} held out, "
              f"alphabet {''.join(alphabet(groups))!r}")
