"""Confidence intervals and significance tests for word error rates.

- `bootstrap_wer`: percentile bootstrap CI of a corpus WER (Bisani & Ney, ICASSP 2004),
  resampling speakers as blocks when they are known, because utterances of one speaker are
  correlated (Liu & Peng, Interspeech 2020); otherwise utterances.
- `paired_bootstrap`: the same draws applied to two systems: CI of the WER difference and the
  probability of improvement (Kaldi `compute-wer-bootci`).
- `mapsswe`: matched-pair sentence-segment word error test (Gillick & Cox 1989; sclite
  `mtchprs.c` with `min_good` = 2).
- `mcnemar`: exact McNemar test on sentence correctness (sclite `sentmcn.c`).

All functions are pure (numpy only) and seeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from asrkit.scoring.align import Alignment


@dataclass(frozen=True)
class BootstrapCI:
    wer: float  # the observed corpus WER (fraction), not the bootstrap mean
    low: float  # 2.5th percentile of the bootstrap WERs
    high: float  # 97.5th percentile
    replications: int
    seed: int
    unit: str  # "speaker" (block bootstrap) or "utterance"
    blocks: int  # number of resampled units

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedBootstrap:
    delta: float  # WER(a) - WER(b), observed; negative = a is better
    low: float
    high: float
    prob_a_better: float  # share of replications where a has fewer errors than b
    replications: int
    seed: int
    unit: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MapssweResult:
    segments: int
    mean: float  # mean of Z_j = errors_a - errors_b over segments; negative = a is better
    std: float
    z: float | None  # W = mean / (std / sqrt(m)); None when the std is 0
    p_value: float  # two-sided, normal approximation
    significant: bool  # at the 95 % level
    min_good: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class McNemarResult:
    a_only_correct: int  # utterances a gets right and b gets wrong
    b_only_correct: int
    p_value: float  # exact two-sided binomial
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _block_sums(
    values: Sequence[Sequence[float]], groups: Sequence[str] | None
) -> tuple[np.ndarray, str]:
    """Sum each per-utterance series per block: (n_series, n_blocks), and the unit name."""
    data = np.asarray(values, dtype=np.float64)  # (n_series, n_utts)
    if groups is None or len(set(groups)) < 2:
        return data, "utterance"
    names = sorted(set(groups))
    index = np.array([names.index(g) for g in groups])
    sums = np.zeros((data.shape[0], len(names)))
    for series in range(data.shape[0]):
        np.add.at(sums[series], index, data[series])
    return sums, "speaker"


def _draws(n_blocks: int, replications: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_blocks, size=(replications, n_blocks))  # (B, n_blocks)


def bootstrap_wer(
    errors: Sequence[int],
    ref_words: Sequence[int],
    groups: Sequence[str] | None = None,
    replications: int = 1000,
    seed: int = 0,
) -> BootstrapCI:
    """Percentile bootstrap 95 % CI of sum(errors) / sum(ref_words).

    Args:
        errors: per-utterance word errors (S + D + I), length n.
        ref_words: per-utterance reference word counts, length n.
        groups: per-utterance speaker; resample whole speakers when given (>= 2 speakers).
        replications: number of bootstrap samples B.
        seed: seed of numpy's default generator.
    """
    (err, ref), unit = _block_sums([errors, ref_words], groups)
    wer = float(err.sum() / max(ref.sum(), 1))
    idx = _draws(len(err), replications, seed)
    # A draw of only empty-reference blocks has no WER: it is left out (NaN), not scored.
    with np.errstate(divide="ignore", invalid="ignore"):
        samples = err[idx].sum(1) / ref[idx].sum(1)  # (B,)
    samples[~np.isfinite(samples)] = np.nan
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return BootstrapCI(wer, float(low), float(high), replications, seed, unit, len(err))


def paired_bootstrap(
    errors_a: Sequence[int],
    errors_b: Sequence[int],
    ref_words: Sequence[int],
    groups: Sequence[str] | None = None,
    replications: int = 1000,
    seed: int = 0,
) -> PairedBootstrap:
    """Paired bootstrap of WER(a) - WER(b) on one test set (same draws for both systems)."""
    (err_a, err_b, ref), unit = _block_sums([errors_a, errors_b, ref_words], groups)
    delta = float((err_a.sum() - err_b.sum()) / max(ref.sum(), 1))
    idx = _draws(len(ref), replications, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = (err_a[idx].sum(1) - err_b[idx].sum(1)) / ref[idx].sum(1)  # (B,)
    diff = diff[np.isfinite(diff)]
    low, high = np.percentile(diff, [2.5, 97.5])
    prob = float(np.mean(diff < 0))
    return PairedBootstrap(delta, float(low), float(high), prob, replications, seed, unit)


def _positions(alignment: Alignment) -> tuple[list[int], list[int]]:
    """Errors per reference word (S or D) and insertions per gap (n words -> n + 1 gaps)."""
    word_errors: list[int] = []
    gap_insertions = [0]
    for op in alignment.ops:
        if op.kind == "I":
            gap_insertions[-1] += 1
        else:
            word_errors.append(int(op.kind != "C"))
            gap_insertions.append(0)
    return word_errors, gap_insertions


def mapsswe_segments(a: Alignment, b: Alignment, min_good: int = 2) -> list[tuple[int, int]]:
    """Cut one utterance into segments; returns (errors_a, errors_b) per segment with errors.

    A reference word is *good* when both systems get it right. Runs of at least `min_good`
    good words, with no insertion by either system inside the run, separate the segments;
    everything between two such runs is one segment.
    """
    words_a, gaps_a = _positions(a)
    words_b, gaps_b = _positions(b)
    if len(words_a) != len(words_b):
        raise ValueError("the two alignments have different reference lengths")
    n = len(words_a)
    good = [words_a[i] == 0 and words_b[i] == 0 for i in range(n)]
    # separator[i]: word i lies in a long enough clean run (the gaps inside the run are clean).
    separator = [False] * n
    start = 0
    while start < n:
        end = start
        while end < n and good[end] and (end == start or gaps_a[end] + gaps_b[end] == 0):
            end += 1
        if end - start >= min_good:
            separator[start:end] = [True] * (end - start)
        start = max(end, start + 1)
    segments: list[tuple[int, int]] = []
    err_a = err_b = 0
    for i in range(n + 1):
        # Gap i lies before word i. A gap inside a run is clean by construction; a dirty
        # gap between two runs is a segment of its own (only insertions).
        err_a, err_b = err_a + gaps_a[i], err_b + gaps_b[i]
        if i < n and not separator[i]:
            err_a, err_b = err_a + words_a[i], err_b + words_b[i]
        if (i == n or separator[i]) and (err_a or err_b):
            segments.append((err_a, err_b))
            err_a = err_b = 0
    return segments


def _normal_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def mapsswe(pairs: Sequence[tuple[Alignment, Alignment]], min_good: int = 2) -> MapssweResult:
    """MAPSSWE test over utterances given as (alignment of a, alignment of b) pairs."""
    z_values = [ea - eb for a, b in pairs for ea, eb in mapsswe_segments(a, b, min_good=min_good)]
    m = len(z_values)
    if m < 2:
        return MapssweResult(m, float(sum(z_values)), 0.0, 0.0, 1.0, False, min_good)
    z = np.asarray(z_values, dtype=np.float64)
    mean, std = float(z.mean()), float(z.std(ddof=1))
    if std == 0.0:
        # Every segment differs by the same amount: W is undefined (None); a non-zero mean is
        # then a difference without any variance, which we call significant (p = 0).
        p_value = 1.0 if mean == 0 else 0.0
        return MapssweResult(m, mean, std, None, p_value, mean != 0, min_good)
    stat = mean / (std / math.sqrt(m))
    return MapssweResult(m, mean, std, stat, _normal_two_sided(stat), abs(stat) > 1.96, min_good)


def _binomial_two_sided(k: int, n: int) -> float:
    """2 * P(X <= k) for X ~ Bin(n, 1/2), capped at 1 (sclite's exact sign/McNemar p)."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """Exact McNemar test on per-utterance correctness (an utterance is correct with 0 errors)."""
    a_only = sum(a and not b for a, b in zip(correct_a, correct_b, strict=True))
    b_only = sum(b and not a for a, b in zip(correct_a, correct_b, strict=True))
    p_value = _binomial_two_sided(min(a_only, b_only), a_only + b_only)
    return McNemarResult(a_only, b_only, p_value, p_value < 0.05)
