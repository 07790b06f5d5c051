"""Attention-health flags on hand-made weight matrices."""

from __future__ import annotations

import numpy as np
import torch

from asrkit.scoring.health import attention_health, repeated_ngram


def diagonal(steps: int, frames: int) -> np.ndarray:
    weights = np.zeros((steps, frames))
    for u in range(steps):
        weights[u, round(u * (frames - 1) / max(steps - 1, 1))] = 1.0
    return weights


def test_diagonal_is_healthy() -> None:
    flags = attention_health(diagonal(20, 40), list(range(3, 22)))
    assert flags.healthy and flags.names() == []
    assert flags.end_ratio == 1.0 and flags.max_backward_jump == 0


def test_accepts_torch_tensor() -> None:
    assert attention_health(torch.tensor(diagonal(5, 10)), [3, 4, 5, 6]).healthy


def test_stalling() -> None:
    weights = diagonal(20, 40)
    weights[5:15] = 0.0
    weights[5:15, 10] = 1.0
    flags = attention_health(weights, list(range(3, 22)))
    assert flags.stalling and flags.longest_stall >= 10


def test_looping_by_backward_jump_and_by_ngram() -> None:
    weights = np.concatenate([diagonal(10, 40)[:, :], diagonal(10, 40)])  # reads twice
    weights[-1, -1] = 2.0
    assert attention_health(weights, list(range(3, 22))).looping
    tokens = [5, 6, 7] + [8, 9] * 5
    assert repeated_ngram(tokens, 4) == 5
    assert attention_health(diagonal(len(tokens) + 1, 60), tokens).looping


def test_a_return_from_the_last_frame_sink_is_counted_but_not_a_loop() -> None:
    weights = diagonal(20, 40)
    weights[8] = 0.0
    weights[8, 39] = 1.0  # one stray step parks on the final frame, then reading resumes
    flags = attention_health(weights, list(range(3, 22)))
    assert not flags.looping and flags.sink_returns == 1 and flags.max_backward_jump == 0
    weights[8, 39], weights[8, 30] = 0.0, 1.0  # the same jump from inside the audio is a loop
    flags = attention_health(weights, list(range(3, 22)))
    assert flags.looping and flags.sink_returns == 0 and flags.max_backward_jump > 10


def test_ending_early() -> None:
    weights = np.zeros((6, 50))
    weights[np.arange(6), np.arange(6) * 4] = 1.0  # last peak at frame 20 of 50
    flags = attention_health(weights, [3, 4, 5, 6, 7])
    assert flags.ending_early and flags.end_ratio == 21 / 50


def test_steps_that_attend_nowhere_are_not_jumps_back() -> None:
    # Hard monotonic attention: one-hot rows marching forward, then the eos step ran off the
    # end and attends nowhere (a zero row); that is not a jump back to frame 0.
    weights = np.zeros((6, 12))
    for step, frame in enumerate([1, 3, 5, 7, 10]):
        weights[step, frame] = 1.0
    flags = attention_health(weights, [4, 5, 6, 7, 8])
    assert not flags.looping and flags.max_backward_jump == 0
    assert flags.end_ratio == 1.0  # the eos step's scan ran off the end: everything was read
    weights[2:5] = 0.0  # a scan that stopped at frame 3 and never moved again
    weights[2, 3] = weights[3, 3] = weights[4, 3] = 1.0
    weights[5, 3] = 1.0
    assert attention_health(weights, [4, 5, 6, 7, 8]).ending_early
    nowhere = attention_health(np.zeros((3, 12)), [4, 5])
    assert nowhere.ending_early and not nowhere.looping
    assert nowhere.blind_steps == 2 and nowhere.skipping  # two tokens emitted attending nothing
    eos_only = attention_health(np.zeros((1, 12)), [])
    assert eos_only.blind_steps == 0 and not eos_only.skipping


def test_skipping_by_forward_jump_and_by_blind_steps() -> None:
    """A jump over a third of the audio, or tokens emitted after a hard scan ran off the end,
    is skipping; the eos step alone attending nowhere is not, nor is a step into the sink."""
    weights = diagonal(20, 120)  # ~6 frames per step
    assert not attention_health(weights, list(range(3, 22))).skipping
    weights[10:] = np.roll(weights[10:], 45, axis=1)  # from frame ~62 on, 45 frames further
    weights[10:, :45] = 0.0
    flags = attention_health(weights, list(range(3, 22)))
    assert flags.skipping and flags.max_forward_jump > 45 and flags.names() == ["skipping"]
    sink = diagonal(20, 120)
    sink[5] = 0.0
    sink[5, 119] = 1.0  # one stray step parks on the final frame: a sink visit, not a skip
    assert not attention_health(sink, list(range(3, 22))).skipping
    hard = np.zeros((10, 60))
    hard[np.arange(5), [2, 5, 8, 11, 14]] = 1.0  # the scan ran off after 5 of 9 tokens
    flags = attention_health(hard, list(range(3, 12)))
    assert flags.skipping and flags.blind_steps == 4 and not flags.ending_early
    hard[5:9, [17, 20, 23, 26]] = 0.0
    hard[np.arange(5, 9), [17, 20, 23, 26]] = 1.0  # only the eos step attends nowhere
    flags = attention_health(hard, list(range(3, 12)))
    assert not flags.skipping and flags.blind_steps == 0 and flags.healthy


def test_word_units_with_long_pauses_are_not_skipping() -> None:
    """Hard attention on word units steps from word onset to word onset (a word and a pause,
    here 32 frames of 150): only a jump several times that is skipping."""
    weights = np.zeros((5, 150))
    weights[np.arange(5), [5, 37, 69, 101, 101]] = 1.0  # 4 words, eos on the last
    assert not attention_health(weights, [3, 4, 5, 6]).skipping
    weights[3], weights[3, 140] = 0.0, 1.0  # the fourth word 71 frames on: still not 4x
    assert not attention_health(weights, [3, 4, 5, 6]).skipping
    long = np.zeros((8, 400))
    long[np.arange(8), [5, 37, 69, 101, 133, 300, 332, 332]] = 1.0  # a 167-frame jump
    assert attention_health(long, [3, 4, 5, 6, 7, 8, 9]).skipping
