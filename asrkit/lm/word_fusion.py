"""A word n-gram fused into a search over characters or word pieces, with lexicon look-ahead.

Scoring a word only where it ends leaves the search blind inside it: every prefix costs 0 until
the word is complete, so a misspelling survives the beam and is punished too late (at weight
0.3 and above the session-32 search collapsed). Look-ahead (Hori et al. 2018, "End-to-end
speech recognition with word-based RNN language models") charges each unit the change of the
prefix's mass instead,

    L(q | h) = sum of P(w | h) over the vocabulary words w that start with q,   L("" | h) = 1

so a unit extending prefix p to q scores log L(q | h) - log L(p | h), the unit that ends the
word log P(p | h) - log L(p | h), and the unit where the prefix leaves every vocabulary word
log P(<unlisted> | h) - log L(p | h) (nothing more until the word ends). The charges of a word
telescope to log P(word | h) exactly, so a hypothesis's fused LM score is still its sentence's
n-gram log-probability, </s> included (tested), only spent earlier.

L is computed from the back-off structure, not by summing the vocabulary: with F(h) the words
listed after h and b(h) its back-off weight,

    L(q | h) = sum over w in F(h) starting with q of [P(w | h) - b(h) P(w | h')] + b(h) L(q | h')

where h' drops the oldest word; each term is a range of the sorted followers (one bisection).

Example:
    >>> from asrkit.lm.ngram import ArpaLM
    >>> arpa = ArpaLM.from_text("\\\\data\\\\\\nngram 1=4\\n\\n\\\\1-grams:\\n-99 <s>\\n"
    ...                         "-0.3 AB\\n-0.6 AC\\n-0.5 </s>\\n\\n\\\\end\\\\\\n", "inline")
    >>> mass = PrefixMass(arpa)
    >>> round(mass.of(("<s>",), "A"), 4)  # 10 ** -0.3 + 10 ** -0.6
    0.7524
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections.abc import Iterable

import torch
from torch import Tensor

from asrkit.io import UserError
from asrkit.lm.model import LanguageModel
from asrkit.lm.ngram import ArpaLM
from asrkit.model.attention.base import State
from asrkit.tokenizer import EOS_ID, SPACE, SPECIALS, Tokenizer

_NOT_WORDS = {"<s>", "</s>", "<unk>"}
_UNLISTED = "\x00"  # never an ARPA word: its score is the back-off to <unk>
_LAST = "\U0010ffff"  # sorts after every continuation of a prefix
_TINY = 1e-300  # a prefix mass that rounding took to 0 or below (telescoping stays exact)

History = tuple[str, ...]
Row = tuple[History, str, bool]  # (last order - 1 words, word so far, word left the vocabulary)


class PrefixMass:
    """L(q | h) of an `ArpaLM`, memoised per (history, prefix)."""

    def __init__(self, arpa: ArpaLM) -> None:
        self.arpa = arpa
        unigrams = {g[0]: lp for g, (lp, _) in arpa.grams.items() if len(g) == 1}
        self.words = sorted(w for w in unigrams if w not in _NOT_WORDS)
        self.prefixes = {w[:i] for w in self.words for i in range(1, len(w) + 1)}
        self.followers: dict[History, list[str]] = {}
        for gram in arpa.grams:
            if len(gram) > 1 and gram[-1] in unigrams and gram[-1] not in _NOT_WORDS:
                self.followers.setdefault(gram[:-1], []).append(gram[-1])
        self._tables: dict[History, tuple[list[str], list[float]]] = {
            (): (self.words, _cumulative(math.exp(unigrams[w]) for w in self.words))
        }
        self._memo: dict[tuple[History, str], float] = {}

    def of(self, history: History, prefix: str) -> float:
        """L(prefix | history) (history: earlier words, oldest first)."""
        if not prefix:
            return 1.0
        history = self.arpa.context(history)
        key = (history, prefix)
        if key not in self._memo:
            words, sums = self._table(history)
            lo, hi = bisect_left(words, prefix), bisect_left(words, prefix + _LAST)
            listed = sums[hi] - sums[lo]
            if history:
                listed += self._backoff(history) * self.of(history[1:], prefix)
            self._memo[key] = listed
        return self._memo[key]

    def _backoff(self, history: History) -> float:
        return math.exp(self.arpa.grams.get(history, (0.0, 0.0))[1])

    def _table(self, history: History) -> tuple[list[str], list[float]]:
        """The words listed after `history`, sorted, and prefix sums of what each adds to the
        backed-off distribution: P(w | h) - b(h) P(w | h')."""
        if history not in self._tables:
            words = sorted(self.followers.get(history, []))
            backoff = self._backoff(history)
            gains = (
                math.exp(self.arpa.grams[(*history, w)][0])
                - backoff * math.exp(self.arpa.score(history[1:], w))
                for w in words
            )
            self._tables[history] = (words, _cumulative(gains))
        return self._tables[history]


def _cumulative(values: Iterable[float]) -> list[float]:
    """Prefix sums with a leading 0: sums[j] - sums[i] adds values i .. j - 1."""
    return [0.0, *itertools.accumulate(values)]


class WordFusion(LanguageModel):
    """An `ArpaLM` seen through the acoustic model's units with lexicon look-ahead (decoding
    only, no parameters). The per-row (history, word so far) is Python data; the search's
    state holds a handle (N,) into it, which the search reorders like any state."""

    def __init__(self, arpa: ArpaLM, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.arpa, self.mass = arpa, PrefixMass(arpa)
        self.vocab_size, self.pieces = tokenizer.vocab_size, list(tokenizer.pieces)
        words = range(len(SPECIALS), len(self.pieces))
        self.starters = [i for i in words if self.pieces[i].startswith(SPACE)]
        self.inner = [i for i in words if not self.pieces[i].startswith(SPACE)]
        self.rows: list[Row] = []
        self._scored: dict[Row, list[float]] = {}

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        raise UserError("an n-gram LM scores words at decoding time only (no training pass)")

    def initial_state(self, rows: int, device: torch.device) -> State:
        self.rows, self._scored = [(self._history((), "<s>"), "", False)], {}
        return {"handle": torch.zeros(rows, dtype=torch.long, device=device)}

    def step(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        handles = []
        for handle, unit in zip(state["handle"].tolist(), prev.tolist(), strict=True):
            self.rows.append(self._advance(self.rows[handle], unit))
            handles.append(len(self.rows) - 1)
        scores = [self._row_scores(self.rows[h]) for h in handles]
        new = torch.tensor(handles, dtype=torch.long, device=prev.device)
        out = torch.tensor(scores, dtype=torch.float64).reshape(len(handles), self.vocab_size)
        return out.to(prev.device), {"handle": new}

    def log_probs(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        return self.step(prev, state)  # already log-probability increments

    def _history(self, history: History, word: str) -> History:
        return self.arpa.context((*history, word))

    def _advance(self, row: Row, unit: int) -> Row:
        """The row after appending `unit` (<eos> as the first input starts the sentence)."""
        history, word, left = row
        if unit < len(SPECIALS):
            return row
        piece = self.pieces[unit]
        if piece.startswith(SPACE):
            rest = piece[len(SPACE) :]
            history = self._history(history, word) if word else history
            return history, rest, bool(rest) and rest not in self.mass.prefixes
        grown = word + piece
        return history, grown, left or grown not in self.mass.prefixes

    def _row_scores(self, row: Row) -> list[float]:
        """The (V,) look-ahead increments of every next unit after `row`; specials but <eos>
        score 0 (the search never emits them)."""
        if row not in self._scored:
            history, word, left = row
            out = [0.0] * self.vocab_size
            here = 0.0 if left else _log(self.mass.of(history, word))
            if not left:
                leave = self.arpa.score(history, _UNLISTED) - here
                for v in self.inner:
                    grown = word + self.pieces[v]
                    inside = grown in self.mass.prefixes
                    out[v] = _log(self.mass.of(history, grown)) - here if inside else leave
            ending, after = self._complete(row, here)
            out[EOS_ID] = ending + self.arpa.score(after, "</s>")
            for v in self.starters:
                out[v] = ending + self._begin(after, self.pieces[v][len(SPACE) :])
            self._scored[row] = out
        return self._scored[row]

    def _complete(self, row: Row, here: float) -> tuple[float, History]:
        """What ending the current word scores (its probability less the mass already
        charged) and the history after it."""
        history, word, left = row
        if not word:
            return 0.0, history
        ending = 0.0 if left else self.arpa.score(history, word) - here
        return ending, self._history(history, word)

    def _begin(self, history: History, start: str) -> float:
        """A new word's first charge: L(start | h), or all of an unlisted word's probability."""
        if not start:
            return 0.0
        if start in self.mass.prefixes:
            return _log(self.mass.of(history, start))
        return self.arpa.score(history, _UNLISTED)


def _log(mass: float) -> float:
    return math.log(max(mass, _TINY))
