"""Attention-health flags of one decoded hypothesis: looping, stalling, ending early, skipping.

The three classic failure modes of attention-based recognisers (Chorowski et al. 2015;
Chiu & Raffel 2018) leave a visible trace in the (output step x encoder frame) weight matrix:

- *looping*: the output repeats itself (an n-gram repeated back to back) or the attention
  jumps back to frames it has already read. A jump back out of the last frames does not
  count: location attention parks stray steps on the final frame (the end-of-audio sink)
  and resumes where it was, which is a visible but different defect (`sink_returns`);
- *stalling*: the attention peak stays on one frame while many tokens are emitted;
- *ending early*: the hypothesis ends (eos) while the attention is still well before the
  end of the speech, i.e. the tail of the utterance was never read;
- *skipping*: the attention jumps forward over a large stretch of audio in one step (much
  longer than its usual step, which for word units spans a word and a pause), or
  tokens are emitted after a hard scan ran off the end (steps before eos attending nowhere):
  audio passed over without output, or output made without audio.

Steps that attend nowhere (all-zero rows: hard monotonic attention that ran off the end) have
no peak and are left out of the peak-based measures; such a row also shows that the scan read
to the end (hard attention stops at word onsets, so its last peak sits well before the end).

Pure numpy (a torch tensor is accepted and converted), so training plots can reuse it.

>>> import numpy as np
>>> w = np.eye(4, 10)            # 4 steps attending frames 0..3 of 10
>>> attention_health(w, [5, 6, 7]).ending_early
True
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ATTENDED_MASS = 1e-6  # a step whose weights sum to less attended nowhere
FLAGS = ("looping", "stalling", "ending_early", "skipping")  # the booleans of `HealthFlags`


@dataclass(frozen=True)
class HealthThresholds:
    ngram_max: int = 4  # look for repeated n-grams of 1..ngram_max tokens
    ngram_repeats: int = 4  # an n-gram seen this many times back to back is a loop
    backward_frames: int = 3  # a backward jump must exceed this many frames ...
    backward_fraction: float = 0.1  # ... and this share of the utterance's frames
    sink_frames: int = 2  # jumps back out of the last this-many frames are sink returns
    stall_tokens: int = 8  # this many consecutive steps on one frame (+-1) is a stall
    end_fraction: float = 0.8  # the last attended frame must reach this share of the frames
    forward_frames: int = 30  # a forward jump must exceed this many frames (1.2 s at 40 ms)...
    forward_fraction: float = 0.25  # ... and this share of the utterance's frames ...
    forward_ratio: float = 4.0  # ... and this many times the median forward move (word units)
    blind_steps: int = 2  # this many steps before eos attending nowhere is skipping


@dataclass(frozen=True)
class HealthFlags:
    looping: bool
    stalling: bool
    ending_early: bool
    repeated_ngram: int  # longest back-to-back repetition count of any n-gram (1 = none)
    max_backward_jump: int  # largest backward move of the attention peak, in frames
    longest_stall: int  # most consecutive steps whose peak stayed within one frame
    end_ratio: float  # (last attended frame + 1) / number of frames
    sink_returns: int = 0  # jumps back out of the final frames (end-of-audio sink), not loops
    skipping: bool = False
    max_forward_jump: int = 0  # largest forward move of the peak (not into the sink), frames
    blind_steps: int = 0  # steps before eos that attend nowhere (a hard scan ran off the end)

    @property
    def healthy(self) -> bool:
        return not self.names()

    def names(self) -> list[str]:
        """The raised flags, e.g. `["looping", "ending_early"]`."""
        return [name for name in FLAGS if getattr(self, name)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repeated_ngram(tokens: Sequence[int], ngram_max: int) -> int:
    """Largest number of back-to-back repetitions of any n-gram, n = 1..ngram_max.

    >>> repeated_ngram([1, 2, 1, 2, 1, 2, 3], 4)
    3
    """
    best = 1
    seq = list(tokens)
    for n in range(1, ngram_max + 1):
        for start in range(len(seq) - 2 * n + 1):
            count = 1
            while seq[start + count * n : start + (count + 1) * n] == seq[start : start + n]:
                count += 1
            best = max(best, count)
    return best


def _longest_stall(peaks: np.ndarray) -> int:
    """Longest run of steps whose peaks all lie within one frame of the run's first peak."""
    best = run = 1 if len(peaks) else 0
    anchor = peaks[0] if len(peaks) else 0
    for peak in peaks[1:]:
        if abs(int(peak) - int(anchor)) <= 1:
            run += 1
        else:
            run, anchor = 1, peak
        best = max(best, run)
    return best


def reading_positions(peaks: Sequence[int], sink_start: int) -> list[int]:
    """For every step after the first, the frame its peak is measured from: the previous peak,
    or, when that lies in the end-of-audio sink (frames >= sink_start), the last peak read
    before the sink (0 if none). Resuming there is a sink return, not a move back.

    >>> reading_positions([2, 5, 9, 6], sink_start=8)
    [2, 5, 5]
    """
    positions, last_read = [], 0
    for previous in list(peaks)[:-1]:
        if previous < sink_start:
            last_read = previous
        positions.append(last_read)
    return positions


def _backward_jumps(peaks: np.ndarray, sink_start: int) -> tuple[int, int]:
    """(largest backward jump, number of returns from the sink) of a peak sequence."""
    steps = peaks.tolist()
    reading = reading_positions(steps, sink_start)
    jumps = [read - now for read, now in zip(reading, steps[1:], strict=True)]
    returns = sum(a >= sink_start > b for a, b in itertools.pairwise(steps))
    return max([0, *jumps]), returns


def _forward_moves(peaks: np.ndarray, sink_start: int) -> tuple[int, float]:
    """(largest, median) forward move between consecutive peaks; moves into the sink are not
    reading, and steps that stay put are not moves."""
    moves = [b - a for a, b in itertools.pairwise(peaks.tolist()) if b < sink_start and b > a]
    return max([0, *moves]), float(np.median(moves)) if moves else 0.0


def attention_health(
    weights: Any,
    tokens: Sequence[int],
    thresholds: HealthThresholds | None = None,
) -> HealthFlags:
    """Flag looping, stalling, early ending and skipping from one hypothesis' attention.

    Args:
        weights: (U, T) attention weights (numpy array or torch tensor) of the output steps,
            the eos step included as the last row, cropped to the T valid encoder frames.
        tokens: the U - 1 emitted token ids (without eos); used for the repeated n-gram test.
        thresholds: the limits; defaults to `HealthThresholds()`.

    Returns:
        `HealthFlags` with the four booleans and the measurements behind them.
    """
    limits = thresholds or HealthThresholds()
    matrix = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights)
    if matrix.ndim != 2:
        raise ValueError(f"attention weights must be (U, T), got shape {matrix.shape}")
    steps, frames = matrix.shape
    repeats = repeated_ngram(tokens, limits.ngram_max)
    if steps == 0 or frames == 0:
        return HealthFlags(repeats >= limits.ngram_repeats, False, False, repeats, 0, 0, 0.0)
    # A row with no mass attended nowhere (hard monotonic attention that ran off the end, e.g.
    # on the eos step): it has no peak, and argmax would call it a jump back to frame 0.
    attended = matrix.sum(axis=1) > ATTENDED_MASS
    peaks = matrix[attended].argmax(axis=1).astype(np.int64)  # (U',)
    if peaks.size == 0:  # no step attended anything: every token was emitted blind
        blind = steps - 1
        return HealthFlags(
            looping=repeats >= limits.ngram_repeats,
            stalling=False,
            ending_early=True,
            repeated_ngram=repeats,
            max_backward_jump=0,
            longest_stall=0,
            end_ratio=0.0,
            skipping=blind >= limits.blind_steps,
            blind_steps=blind,
        )
    back, sink_returns = _backward_jumps(peaks, frames - limits.sink_frames)
    back_limit = max(limits.backward_frames, limits.backward_fraction * frames)
    stall = _longest_stall(peaks)
    forward, typical = _forward_moves(peaks, frames - limits.sink_frames)
    forward_limit = max(
        limits.forward_frames, limits.forward_fraction * frames, limits.forward_ratio * typical
    )
    blind = int((~attended[:-1]).sum())
    # Only a scan that ran off the end attends nowhere, so such a row means it read every frame.
    end_ratio = 1.0 if not attended.all() else float(peaks.max() + 1) / frames
    return HealthFlags(
        looping=repeats >= limits.ngram_repeats or back > back_limit,
        stalling=stall >= limits.stall_tokens,
        ending_early=end_ratio < limits.end_fraction,
        repeated_ngram=repeats,
        max_backward_jump=back,
        longest_stall=stall,
        end_ratio=end_ratio,
        sink_returns=sink_returns,
        skipping=forward > forward_limit or blind >= limits.blind_steps,
        max_forward_jump=forward,
        blind_steps=blind,
    )
