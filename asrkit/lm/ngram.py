"""Word n-gram language models from ARPA files, fused into a search over characters or pieces.

`ArpaLM` reads the ARPA text format (what KenLM's `lmplz`, SRILM and MITLM write, also
gzipped) and scores a word given its history with Katz back-off: log P(w | h) is the longest
listed n-gram's probability plus the back-off weights of the shorter histories passed over.

`asrkit.lm.word_fusion.WordFusion` makes it a `LanguageModel` of the acoustic model's units
(with lexicon look-ahead), so beam search fuses it like a neural LM.

Example:
    >>> arpa = ArpaLM.from_text("\\\\data\\\\\\nngram 1=3\\n\\n\\\\1-grams:\\n-1.0 <s>\\n"
    ...                         "-0.5 A\\n-0.5 </s>\\n\\n\\\\end\\\\\\n", "inline")
    >>> round(arpa.score(("<s>",), "A"), 4)  # log 10 ** -0.5
    -1.1513
"""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

from asrkit.io import UserError, require_file

LN10 = math.log(10.0)
_COUNT = re.compile(r"^ngram (\d+)=(\d+)$")
_SECTION = re.compile(r"^\\(\d+)-grams:$")


class ArpaLM:
    """An ARPA back-off model: n-gram -> (log prob, back-off), natural logs."""

    def __init__(self, grams: dict[tuple[str, ...], tuple[float, float]], order: int) -> None:
        self.grams, self.order = grams, order
        self.unk = grams.get(("<unk>",), (-100.0, 0.0))[0]  # an unlisted word without <unk>

    @classmethod
    def load(cls, path: Path) -> ArpaLM:
        """Read a .arpa or .arpa.gz file.

        Raises:
            UserError: naming the line that does not parse, or the file missing / not text.
        """
        path = require_file(Path(path), "ARPA file")
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as handle:
                return cls.from_text(handle.read(), str(path))
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not a readable ARPA text file ({exc})") from exc

    @classmethod
    def from_text(cls, text: str, where: str) -> ArpaLM:
        grams: dict[tuple[str, ...], tuple[float, float]] = {}
        counts: dict[int, int] = {}
        section, seen_data = 0, False
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line:
                continue
            if line == "\\data\\":
                seen_data = True
            elif line == "\\end\\":
                break
            elif match := _COUNT.match(line):
                counts[int(match.group(1))] = int(match.group(2))
            elif match := _SECTION.match(line):
                section = int(match.group(1))
                if section not in counts:
                    raise UserError(
                        f"{where}:{number}: {line} without its 'ngram {section}=' count"
                    )
            elif section and seen_data:
                grams.update([_entry(line, section, f"{where}:{number}")])
            else:
                raise UserError(
                    f"{where}:{number}: not ARPA (expected \\data\\ and n-gram sections)"
                )
        if not seen_data or not grams:
            raise UserError(f"{where}: not an ARPA file (no \\data\\ section or no n-grams)")
        for order, count in counts.items():
            found = sum(1 for key in grams if len(key) == order)
            if found != count:
                raise UserError(f"{where}: {count} {order}-grams announced, {found} listed")
        return cls(grams, max(counts))

    def context(self, history: tuple[str, ...]) -> tuple[str, ...]:
        """The part of `history` (earlier words, oldest first) the model conditions on: its
        last order - 1 words."""
        return history[-(self.order - 1) :] if self.order > 1 else ()

    def score(self, history: tuple[str, ...], word: str) -> float:
        """Natural-log P(word | history) with back-off (history: earlier words, oldest first)."""
        history = self.context(history)
        backoff = 0.0
        for start in range(len(history) + 1):
            context = history[start:]
            entry = self.grams.get((*context, word))
            if entry is not None:
                return backoff + entry[0]
            backoff += self.grams.get(context, (0.0, 0.0))[1] if context else 0.0
        return backoff + self.unk

    def sentence_score(self, text: str) -> float:
        """log P(text) word by word, </s> included: what fusion sums over a hypothesis."""
        words: tuple[str, ...] = ("<s>",)
        total = 0.0
        for word in text.split():
            total += self.score(words, word)
            words = (*words, word)
        return total + self.score(words, "</s>")


def _entry(line: str, order: int, where: str) -> tuple[tuple[str, ...], tuple[float, float]]:
    fields = line.split()
    if len(fields) not in (order + 1, order + 2):
        raise UserError(f"{where}: expected 'log10-prob {order} word(s) [back-off]', got {line!r}")
    try:
        prob = float(fields[0])
        backoff = float(fields[order + 1]) if len(fields) == order + 2 else 0.0
    except ValueError as exc:
        raise UserError(f"{where}: not a number in {line!r}") from exc
    if not (math.isfinite(prob) or prob == -math.inf) or not math.isfinite(backoff):
        raise UserError(f"{where}: not a finite log-probability in {line!r}")
    return tuple(fields[1 : order + 1]), (prob * LN10, backoff * LN10)


def build_arpa(sentences: list[str], order: int, discount: float = 0.75) -> str:
    """An ARPA back-off model of `sentences` (words split on spaces) by interpolated absolute
    discounting (Ney et al. 1994): P(w | h) = max(c(h w) - D, 0) / c(h) + g(h) P(w | h'), with
    g(h) = D * (distinct words after h) / c(h), the lower order ending with a uniform
    distribution over the vocabulary and <unk>. Written as a back-off model, g(h) is exactly
    the back-off weight of h, so every distribution sums to 1.

    Raises:
        UserError: no sentence, an order below 1, a discount outside (0, 1).
    """
    if order < 1 or not 0.0 < discount < 1.0:
        raise UserError(f"an n-gram needs order >= 1 and 0 < discount < 1, got {order}, {discount}")
    counts: list[dict[tuple[str, ...], int]] = [{} for _ in range(order + 1)]
    for sentence in sentences:
        words = ["<s>", *sentence.split(), "</s>"]
        for n in range(1, order + 1):
            for end in range(max(n, 2) if n > 1 else 1, len(words) + 1):
                gram = tuple(words[end - n : end])
                if gram != ("<s>",):
                    counts[n][gram] = counts[n].get(gram, 0) + 1
    if not counts[1]:
        raise UserError("no sentence to build an n-gram from")
    vocabulary = {w for (w,) in counts[1]} | {"<unk>"}
    probs: dict[tuple[str, ...], float] = {}
    total = sum(counts[1].values())
    floor = discount * len(counts[1]) / total  # mass left for the uniform distribution
    for (word,), c in counts[1].items():
        probs[(word,)] = max(c - discount, 0) / total + floor / len(vocabulary)
    probs[("<unk>",)] = probs.get(("<unk>",), 0.0) + floor / len(vocabulary)
    backoffs: dict[tuple[str, ...], float] = {}
    for n in range(2, order + 1):
        context_total: dict[tuple[str, ...], int] = {}
        followers: dict[tuple[str, ...], int] = {}
        for gram, c in counts[n].items():
            context_total[gram[:-1]] = context_total.get(gram[:-1], 0) + c
            followers[gram[:-1]] = followers.get(gram[:-1], 0) + 1
        for context, c_h in context_total.items():
            backoffs[context] = discount * followers[context] / c_h
        for gram, c in counts[n].items():
            lower = _interpolated(probs, backoffs, gram[1:])
            probs[gram] = (
                max(c - discount, 0) / context_total[gram[:-1]] + backoffs[gram[:-1]] * lower
            )
    return _write_arpa(probs, backoffs, order)


def _interpolated(probs: dict, backoffs: dict, gram: tuple[str, ...]) -> float:
    """P(gram[-1] | gram[:-1]) of the orders built so far (back-off to shorter contexts)."""
    if gram in probs:
        return probs[gram]
    if len(gram) == 1:
        return probs[("<unk>",)]
    return backoffs.get(gram[:-1], 1.0) * _interpolated(probs, backoffs, gram[1:])


def _write_arpa(probs: dict, backoffs: dict, order: int) -> str:
    by_order: list[list[tuple[str, ...]]] = [[] for _ in range(order + 1)]
    for gram in probs:
        by_order[len(gram)].append(gram)
    by_order[1].append(("<s>",))  # a context only: ARPA's convention, log10 prob -99
    lines = ["\\data\\", *(f"ngram {n}={len(by_order[n])}" for n in range(1, order + 1)), ""]
    for n in range(1, order + 1):
        lines.append(f"\\{n}-grams:")
        for gram in sorted(by_order[n]):
            prob = -99.0 if gram == ("<s>",) else math.log10(probs[gram])
            bow = backoffs.get(gram)
            tail = f" {math.log10(bow):.6f}" if bow is not None and n < order else ""
            lines.append(f"{prob:.6f} {' '.join(gram)}{tail}")
        lines.append("")
    return "\n".join([*lines, "\\end\\", ""])
