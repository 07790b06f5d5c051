"""Language-model text for the mini recipe, from what exists on this machine.

Writes two files under DATA_DIR/lm/:
  - transcripts.txt: the mini training transcripts (the shared LibriSpeech outside the dev
    speakers 2412 and 2078), minus any sentence that also occurs in the dev manifest;
  - words.txt (with --words N > 0): pseudo-sentences of the N most frequent English words of
    the `wordfreq` package (Apache-2.0 code; its word lists are CC BY-SA 4.0, from Wikipedia,
    subtitles, books, news and the web), each word drawn by its frequency, 8 to 16 words a
    line. They teach a character LM how real words are spelled (the mini model's main error
    is words that do not exist), not how sentences go on.

Usage (from the repo root):
    python recipes/mini/local/make_lm_text.py data/mini --words 50000 --sentences 25000
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

from asrkit.data.manifest import read_manifest
from asrkit.io import UserError, atomic_write_text
from asrkit.scoring.normalize import normalize_librispeech

_WORD = re.compile(r"^[A-Z]+(?:'[A-Z]+)?$")  # what a LibriSpeech transcript word looks like


def transcripts(data: Path) -> list[str]:
    """Training transcripts, without any sentence of the dev manifest."""
    dev = {u.text for u in read_manifest(data / "mini_dev.jsonl")}
    return [u.text for u in read_manifest(data / "mini_train.jsonl") if u.text not in dev]


def word_sentences(words: int, sentences: int, seed: int) -> list[str]:
    """`sentences` lines of words drawn by frequency from wordfreq's `words` most frequent."""
    try:
        import wordfreq
    except ImportError as exc:
        raise UserError("--words needs the wordfreq package (pip install wordfreq)") from exc
    vocabulary, weights = [], []
    for word in wordfreq.top_n_list("en", words):
        normal = normalize_librispeech(word)
        if _WORD.match(normal):
            vocabulary.append(normal)
            weights.append(wordfreq.word_frequency(word, "en"))
    rng = random.Random(seed)
    return [
        " ".join(rng.choices(vocabulary, weights, k=rng.randint(8, 16))) for _ in range(sentences)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="DATA_DIR holding mini_train.jsonl, mini_dev.jsonl")
    parser.add_argument("--words", type=int, default=50000, help="0 = transcripts only")
    parser.add_argument("--sentences", type=int, default=25000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        out = args.data / "lm"
        lines = transcripts(args.data)
        atomic_write_text(out / "transcripts.txt", "\n".join(lines) + "\n")
        print(f"{out / 'transcripts.txt'}: {len(lines)} sentences")
        if args.words > 0:
            made = word_sentences(args.words, args.sentences, args.seed)
            atomic_write_text(out / "words.txt", "\n".join(made) + "\n")
            print(f"{out / 'words.txt'}: {len(made)} sentences")
    except UserError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
