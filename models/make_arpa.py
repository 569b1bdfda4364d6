#!/usr/bin/env python3
"""Build a word n-gram language model in ARPA format from sentences, without KenLM.

Interpolated Kneser-Ney with one absolute discount per order (D = n1 / (n1 + 2 n2) from the counts
of counts), written as a back-off model the way KenLM's `lmplz` writes interpolated ones: an
n-gram's probability is the interpolated one, a context's back-off weight is its interpolation
weight. Lower orders use continuation counts (how many distinct words precede), except n-grams that
start with <s>, which have no left context. Standard library only.

    # sentences from a text file (one a line), 3-gram
    python3 models/make_arpa.py sentences.txt -o lm.arpa
    # the training sentences of a corpus grammar (held-out sentences left out), gzip
    python3 models/make_arpa.py --corpus-lang eng --train-only -o eng.arpa.gz
"""

import argparse
import gzip
import math
import sys
from collections import defaultdict
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def sentences_from(args):
    for path in args.text:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.split():
                    yield line.split()
    if args.corpus_lang:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import corpus  # noqa: E402  (models/corpus.py: the grammar expander)

        corpus_dir = Path(args.corpus) if args.corpus else corpus.DEFAULT_CORPUS_DIR
        for group in corpus.load_language(args.corpus_lang, corpus_dir):
            for s in group:
                if not (args.train_only and corpus.is_held_out(s)):
                    yield s.split()


def count(sentences, order):
    """Raw counts of every n-gram up to `order` (none ends in <s>)."""
    raw = [defaultdict(int) for _ in range(order + 1)]
    for words in sentences:
        toks = [BOS] + words + [EOS]
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                gram = tuple(toks[i:i + n])
                if gram[-1] != BOS:
                    raw[n][gram] += 1
    return raw


def adjusted(raw, order):
    """Kneser-Ney counts: raw for the top order and for n-grams starting with <s>, else the number
    of distinct words seen before the n-gram."""
    adj = [dict() for _ in range(order + 1)]
    adj[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        left = defaultdict(int)
        for gram in raw[n + 1]:
            left[gram[1:]] += 1
        for gram, c in raw[n].items():
            adj[n][gram] = c if gram[0] == BOS else left.get(gram, 0) or c
    return adj


def discount(counts):
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0 or n2 == 0:
        return 0.5
    return n1 / (n1 + 2 * n2)


def build(sentences, order):
    raw = count(sentences, order)
    adj = adjusted(raw, order)
    vocab = {g[0] for g in raw[1]} | {EOS, UNK}
    probs = [dict() for _ in range(order + 1)]
    backoff = [dict() for _ in range(order + 1)]
    for n in range(1, order + 1):
        d = discount(adj[n])
        total = defaultdict(int)  # context -> sum of counts
        types = defaultdict(int)  # context -> distinct following words
        for gram, c in adj[n].items():
            total[gram[:-1]] += c
            types[gram[:-1]] += 1
        if n > 1:
            for ctx in total:
                backoff[n - 1][ctx] = d * types[ctx] / total[ctx]
        for gram, c in adj[n].items():
            ctx = gram[:-1]
            gamma = d * types[ctx] / total[ctx]
            lower = 1.0 / len(vocab) if n == 1 else probs[n - 1][gram[1:]]
            probs[n][gram] = max(c - d, 0) / total[ctx] + gamma * lower
        if n == 1:
            gamma = d * types[()] / total[()]
            probs[1][(UNK,)] = gamma / len(vocab)
    return probs, backoff


def write(probs, backoff, order, out):
    def log10(p):
        return math.log10(p) if p > 0 else -99.0

    unigrams = dict(probs[1])
    unigrams[(BOS,)] = 0.0  # never predicted: written as -99
    grams = [None, unigrams] + probs[2:]
    out.write("\\data\\\n")
    for n in range(1, order + 1):
        out.write(f"ngram {n}={len(grams[n])}\n")
    for n in range(1, order + 1):
        out.write(f"\n\\{n}-grams:\n")
        for gram in sorted(grams[n]):
            line = f"{log10(grams[n][gram]):.6f}\t{' '.join(gram)}"
            if n < order and gram in backoff[n]:
                line += f"\t{math.log10(backoff[n][gram]):.6f}"
            out.write(line + "\n")
    out.write("\n\\end\\\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("text", nargs="*", help="text files, one sentence a line")
    ap.add_argument("--corpus-lang", help="also the sentences of ../shared/corpus/<LANG>.txt")
    ap.add_argument("--corpus", help="corpus directory (default: ../shared/corpus beside the repository)")
    ap.add_argument("--train-only", action="store_true", help="leave out the corpus's held-out sentences")
    ap.add_argument("--order", type=int, default=3, choices=range(1, 7))
    ap.add_argument("-o", "--output", required=True, help="ARPA file to write (.gz: gzip)")
    args = ap.parse_args()
    if not args.text and not args.corpus_lang:
        ap.error("give text files or --corpus-lang")
    sentences = list(sentences_from(args))
    if not sentences:
        ap.error("no sentences")
    probs, backoff = build(sentences, args.order)
    opener = gzip.open if args.output.endswith(".gz") else open
    with opener(args.output, "wt", encoding="utf-8") as out:
        write(probs, backoff, args.order, out)
    print(f"{args.output}: {len(sentences)} sentences, "
          + ", ".join(f"{len(p)} {n}-grams" for n, p in enumerate(probs) if n), file=sys.stderr)


if __name__ == "__main__":
    main()
