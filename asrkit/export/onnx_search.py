"""The search rules of `asrkit.decoding` in NumPy, for the ONNX Runtime decoder (no torch).

`allowed` is `asrkit.decoding.constraints.constrain` for one row; `beam_search` is
`asrkit.decoding.beam.beam_search` for one utterance, with joint CTC prefix scoring over every
frame (`CTCScorer`, ctc_window 0) or without, and without an LM: K rows scored in one
decoder-step call per output token, the best 2K (row, token) extensions per step, the first K
that are not <eos> continue, an <eos> ranked above the K-th continuation finishes a hypothesis
ranked by score / (tokens + 1) ** length_penalty, and the search ends with K finished ones (or
no live row). Scores are float64 as there, so the same hypothesis wins (tested against PyTorch);
K = 1 is greedy search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# One decoder step: previous tokens (N,) and the rows' states -> logits (N, V), new states.
StepFn = Callable[[np.ndarray, dict[str, np.ndarray]], tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass(frozen=True)
class SearchRules:
    """The decoding rules `model.json` carries (`asrkit.decoding.options.DecodeOptions`)."""

    blank_id: int
    eos_id: int
    eos_threshold: float
    repeat_ngram: int
    repeat_copies: int
    length_penalty: float = 1.0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def blocked(tokens: list[int], rules: SearchRules) -> list[int]:
    """Tokens that would complete the `repeat_copies`-th back-to-back copy of a cycle of up to
    `repeat_ngram` tokens (the loop guard of `constraints.repeat_blocked`)."""
    copies, out, t = rules.repeat_copies, [], len(tokens)
    for n in range(1, rules.repeat_ngram + 1):
        if copies * n - 1 > t:
            break
        need = (copies - 1) * n - 1
        run = 0
        while run < need and tokens[t - 1 - run] == tokens[t - 1 - run - n]:
            run += 1
        if run >= need:
            out.append(tokens[t - n])
    return out


def allowed(
    log_probs: np.ndarray, tokens: list[int], min_len: int, max_len: int, rules: SearchRules
) -> np.ndarray:
    """One row's (V,) log-probs with -inf where `constrain` forbids a token."""
    step = len(tokens)
    if step >= max_len:  # at the maximum length only <eos>, whatever it scored
        forced = np.full_like(log_probs, -np.inf)
        forced[rules.eos_id] = log_probs[rules.eos_id]
        return forced
    out = log_probs.copy()
    out[rules.blank_id] = -np.inf
    for token in blocked(tokens, rules):
        out[token] = -np.inf
    if not (out[rules.eos_id] >= out.max() - rules.eos_threshold and step >= min_len):
        out[rules.eos_id] = -np.inf
    return out


LOG_ZERO = -1e10  # as asrkit.decoding.ctc_prefix: a finite log 0


@dataclass(frozen=True)
class CTCPrefixes:
    """Forward variables of N prefixes over all T frames (`ctc_prefix.CTCPrefixState`)."""

    r_n: np.ndarray  # (N, T) log prob of paths ending in the prefix's last label
    r_b: np.ndarray  # (N, T) log prob of paths ending in blank
    log_psi: np.ndarray  # (N,) log prefix probability
    last: np.ndarray  # (N,) last label, -1 for the empty prefix
    length: int  # labels in every prefix


class CTCScorer:
    """CTC prefix scores of candidate extensions over every frame (ctc_window 0), one
    utterance (Watanabe et al. 2017; `asrkit.decoding.ctc_prefix.CTCPrefixScorer`).

    Args:
        log_probs: (T, V) CTC log-softmax outputs.
        blank_id, eos_id: the blank and <eos> ids (<eos> scores the prefix as a whole).
    """

    def __init__(self, log_probs: np.ndarray, blank_id: int, eos_id: int) -> None:
        self.x = log_probs.astype(np.float64)
        self.blank = self.x[:, blank_id]
        self.blank_id, self.eos_id = blank_id, eos_id

    def initial(self, rows: int) -> CTCPrefixes:
        frames = self.x.shape[0]
        blanks = np.tile(np.cumsum(self.blank), (rows, 1))  # the empty prefix: all blank
        zero = np.full((rows, frames), LOG_ZERO)
        return CTCPrefixes(zero, blanks, np.zeros(rows), np.full(rows, -1), 0)

    def score(
        self, state: CTCPrefixes, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Increments log psi(g + c) - log psi(g) (N, C) of candidates (N, C), and the
        extensions' forward variables r^n, r^b (T, N, C) for `select`."""
        frames = self.x.shape[0]
        xs = self.x[:, candidates]  # (T, N, C)
        r_sum = np.logaddexp(state.r_n, state.r_b)  # (N, T)
        repeat = (candidates == state.last[:, None])[:, :, None]  # a repeat needs a blank first
        phi = np.where(repeat, state.r_b[:, None, :], r_sum[:, None, :]).transpose(2, 0, 1)
        r_n = np.full(xs.shape, LOG_ZERO)
        r_b = np.full(xs.shape, LOG_ZERO)
        if state.length == 0:
            r_n[0] = xs[0]
        for t in range(1, frames):
            r_n[t] = np.logaddexp(r_n[t - 1], phi[t - 1]) + xs[t]
            r_b[t] = np.logaddexp(r_n[t - 1], r_b[t - 1]) + self.blank[t]
        terms = np.concatenate([r_n[:1], phi[:-1] + xs[1:]])  # first emission at each frame
        top = terms.max(axis=0)
        log_psi = top + np.log(np.exp(np.maximum(terms - top, -80.0)).sum(axis=0))
        whole = np.logaddexp(state.r_n[:, -1], state.r_b[:, -1])[:, None]
        log_psi = np.where(candidates == self.eos_id, whole, log_psi)
        log_psi = np.where(candidates == self.blank_id, LOG_ZERO, log_psi)
        return log_psi - state.log_psi[:, None], r_n, r_b

    def select(
        self,
        state: CTCPrefixes,
        increments: np.ndarray,
        extended: tuple[np.ndarray, np.ndarray],
        rows: np.ndarray,
        cols: np.ndarray,
        labels: np.ndarray,
    ) -> CTCPrefixes:
        """The prefixes of the chosen extensions (parent row, candidate column, label)."""
        r_n, r_b = extended
        return CTCPrefixes(
            r_n[:, rows, cols].T,
            r_b[:, rows, cols].T,
            state.log_psi[rows] + increments[rows, cols],
            labels,
            state.length + 1,
        )


@dataclass(frozen=True)
class Finished:
    rank: float  # score / (tokens + 1) ** length_penalty
    score: float
    tokens: list[int]


@dataclass(frozen=True)
class JointCTC:
    """Joint CTC/attention scoring for `beam_search`: `weight` on the CTC prefix increments
    of the `candidates` best tokens of each row by attention."""

    scorer: CTCScorer
    weight: float
    candidates: int


def beam_search(
    step: StepFn,
    state: dict[str, np.ndarray],
    beam: int,
    min_len: int,
    max_len: int,
    rules: SearchRules,
    ctc: JointCTC | None = None,
) -> list[int]:
    """Token ids (without <eos>) of the best finished hypothesis; [] when every row was blocked.

    Args:
        step: the decoder step over K rows.
        state: the initial state, one row (it is repeated K times).
        ctc: joint CTC scoring, or None (attention alone).
    """
    k = beam
    if ctc is not None:  # CTC emits at most one label per frame
        max_len = min(max_len, ctc.scorer.x.shape[0])
        min_len = min(min_len, max_len)
    prefixes = ctc.scorer.initial(k) if ctc is not None else None
    state = {name: np.repeat(value, k, axis=0) for name, value in state.items()}
    scores = np.full(k, -np.inf)
    scores[0] = 0.0  # one live row at the start, so the K expansions differ
    rows: list[list[int]] = [[] for _ in range(k)]
    prev = np.full(k, rules.eos_id, dtype=np.int64)  # <eos> doubles as <sos>
    ended: list[Finished] = []
    for length in range(max_len + 1):  # the last step may only end
        logits, new_state = step(prev, state)
        log_probs = log_softmax(logits)
        joint = np.stack(
            [allowed(log_probs[r], rows[r], min_len, max_len, rules) for r in range(k)]
        )
        tokens_of = None
        if ctc is not None and prefixes is not None:
            tokens_of = np.argsort(-joint, axis=1, kind="stable")[:, : ctc.candidates]
            att = np.take_along_axis(joint, tokens_of, axis=1)
            increments, r_n, r_b = ctc.scorer.score(prefixes, tokens_of)
            joint = (1 - ctc.weight) * att + ctc.weight * increments
            joint[(att == -np.inf) | (increments <= LOG_ZERO / 2)] = -np.inf
        total = (scores[:, None] + joint).reshape(-1)
        order = np.argsort(-total, kind="stable")[: 2 * k]  # best first, ties by position
        parents, cols, kept = [], [], []
        for index in order:
            row, col = divmod(int(index), joint.shape[1])
            token = col if tokens_of is None else int(tokens_of[row, col])
            score = float(total[index])
            if len(kept) == k:
                break
            if token != rules.eos_id:
                parents.append(row)
                cols.append(col)
                kept.append(score)
            elif np.isfinite(score):
                rank = score / (length + 1) ** rules.length_penalty
                ended.append(Finished(rank, score, rows[row]))
        if len(ended) >= k or not np.isfinite(kept).any():
            break
        index, columns = np.array(parents), np.array(cols)
        tokens = columns if tokens_of is None else tokens_of[index, columns]
        if ctc is not None and prefixes is not None:
            prefixes = ctc.scorer.select(prefixes, increments, (r_n, r_b), index, columns, tokens)
        rows = [rows[p] + [int(t)] for p, t in zip(parents, tokens, strict=True)]
        scores = np.array(kept)
        state = {name: value[index] for name, value in new_state.items()}
        prev = tokens.astype(np.int64)
    if not ended:
        return []
    return max(ended, key=lambda e: e.rank).tokens  # first of equals: the earliest finished
