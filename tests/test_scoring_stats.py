"""Significance tests and bootstrap on cases whose answer is known."""

from __future__ import annotations

import math

import pytest

from asrkit.scoring import align_words
from asrkit.scoring.stats import (
    bootstrap_wer,
    mapsswe,
    mapsswe_segments,
    mcnemar,
    paired_bootstrap,
)


def al(ref: str, hyp: str):
    return align_words(ref.split(), hyp.split())


def test_mcnemar_exact_binomial() -> None:
    # 5 utterances only a gets right, none only b: p = 2 * 0.5**5
    result = mcnemar([True] * 5 + [False, True], [False] * 5 + [False, True])
    assert (result.a_only_correct, result.b_only_correct) == (5, 0)
    assert result.p_value == pytest.approx(2 / 32) and not result.significant
    result = mcnemar([True] * 6, [False] * 6)
    assert result.p_value == pytest.approx(2 / 64) and result.significant
    assert mcnemar([True, False], [False, True]).p_value == 1.0


def test_mapsswe_segments_cut_at_two_good_words() -> None:
    ref = "a b c d e f g h"
    # a errs at word 1 and word 6; b errs at word 2; words 4-5 are good in both -> 2 segments
    a = al(ref, "a X c d e f Y h")
    b = al(ref, "a b Z d e f g h")
    assert mapsswe_segments(a, b) == [(1, 1), (1, 0)]
    # one good word between errors does not separate them
    assert mapsswe_segments(al("a b c", "X b Y"), al("a b c", "a b c")) == [(2, 0)]
    # an insertion inside a good run breaks the run
    segs = mapsswe_segments(al("a b c d", "a b NEW c d"), al("a b c d", "a b c d"), min_good=2)
    assert segs == [(1, 0)]
    assert mapsswe_segments(al("a b", "a b"), al("a b", "a b")) == []


def test_mapsswe_statistic_known_values() -> None:
    ref = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10"
    perfect = al(ref, ref)
    one_error = al(ref, "w1 w2 w3 w4 w5 w6 w7 w8 w9 XX")
    two_errors = al(ref, "w1 w2 w3 w4 w5 w6 w7 w8 XX YY")
    # Z = [-1, -1, -2, 0 (b errs too: same)] -> segments where a is perfect and b errs
    pairs = [(perfect, one_error), (perfect, one_error), (perfect, two_errors)]
    result = mapsswe(pairs)
    z = [-1.0, -1.0, -2.0]
    mean = sum(z) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in z) / 2)
    assert result.segments == 3
    assert result.mean == pytest.approx(mean) and result.std == pytest.approx(sd)
    assert result.z == pytest.approx(mean / (sd / math.sqrt(3)))
    assert result.p_value == pytest.approx(math.erfc(abs(result.z) / math.sqrt(2)))
    same = mapsswe([(one_error, one_error)] * 4)
    assert same.segments == 4 and same.z is None and not same.significant and same.p_value == 1.0


def test_bootstrap_is_seeded_and_sane() -> None:
    errors = [0, 1, 2, 0, 3, 1, 0, 0, 2, 1]
    words = [10] * 10
    first = bootstrap_wer(errors, words, replications=500, seed=1)
    assert first == bootstrap_wer(errors, words, replications=500, seed=1)
    assert first.unit == "utterance" and first.wer == pytest.approx(0.1)
    assert first.low <= first.wer <= first.high
    speakers = bootstrap_wer(errors, words, ["a", "b"] * 5, replications=500, seed=1)
    assert speakers.unit == "speaker" and speakers.blocks == 2


def test_paired_bootstrap_direction() -> None:
    words = [10] * 40
    better = [0] * 40
    worse = [2] * 40
    result = paired_bootstrap(better, worse, words, replications=300, seed=0)
    assert result.delta == pytest.approx(-0.2) and result.prob_a_better == 1.0
    assert result.high < 0
    same = paired_bootstrap(worse, worse, words, replications=300, seed=0)
    assert same.delta == 0.0 and same.prob_a_better == 0.0 and same.low == same.high == 0.0
