"""Cutting long audio at quiet points, so that every piece fits what the model was trained on.

The frame energy (mean square over 10 ms frames) is smoothed over a short window, so a cut
lands in a pause between words rather than in the silent closure of a plosive. From the start
of the remaining audio, the cut is placed at the quietest smoothed frame between half and all
of `max_seconds` (the centre of that quiet stretch); a piece is cut inside speech only when
that search range holds no pause at all, and then it still is the quietest place available.

Example:
    >>> import torch
    >>> wave = torch.cat([torch.randn(16000 * 15), torch.zeros(8000), torch.randn(16000 * 15)])
    >>> [(round(a / 16000, 1), round(b / 16000, 1)) for a, b in split_points(wave, 16000, 20.0)]
    [(0.0, 15.2), (15.2, 30.5)]
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

FRAME_SECONDS = 0.01  # energy frame
SMOOTH_SECONDS = 0.2  # about a short pause between words
QUIET_TOLERANCE = 1e-3  # frames within this factor of the minimum power count as the minimum


def frame_power(wave: Tensor, sample_rate: int) -> Tensor:
    """(N,) samples -> (F,) mean square per 10 ms frame (the last partial frame included)."""
    hop = max(1, int(sample_rate * FRAME_SECONDS))
    frames = -(-wave.numel() // hop)
    padded = F.pad(wave.float(), (0, frames * hop - wave.numel()))
    return padded.view(frames, hop).pow(2).mean(dim=1)


def _smoothed(power: Tensor, width: int) -> Tensor:
    """Centred moving average of the frame power; the ends see a reflected context."""
    if width <= 1 or power.numel() < 2:
        return power
    pad = min(width // 2, power.numel() - 1)
    padded = F.pad(power.view(1, 1, -1), (pad, pad), mode="reflect")
    return F.avg_pool1d(padded, 2 * pad + 1, stride=1).view(-1)


def _quietest(energy: Tensor, lo: int, hi: int) -> int:
    """Frame in [lo, hi) at the centre of the quiet run that holds the minimum energy."""
    window = energy[lo:hi]
    best = int(torch.argmin(window))
    quiet = window <= window[best] * (1 + QUIET_TOLERANCE) + 1e-12
    start = end = best
    while start > 0 and bool(quiet[start - 1]):
        start -= 1
    while end + 1 < window.numel() and bool(quiet[end + 1]):
        end += 1
    return lo + (start + end + 1) // 2


def split_points(wave: Tensor, sample_rate: int, max_seconds: float) -> list[tuple[int, int]]:
    """Cut (N,) samples into pieces no longer than `max_seconds`.

    Args:
        wave: (N,) mono samples.
        sample_rate: samples per second.
        max_seconds: longest piece.

    Returns:
        (start, end) sample ranges that tile [0, N) in order; a single range when the audio
        is short enough.
    """
    total = wave.numel()
    hop = max(1, int(sample_rate * FRAME_SECONDS))
    max_frames = int(max_seconds / FRAME_SECONDS)
    if total <= max_frames * hop:
        return [(0, total)]
    energy = _smoothed(frame_power(wave, sample_rate), int(SMOOTH_SECONDS / FRAME_SECONDS))
    frames = energy.numel()
    cuts, pos = [0], 0
    while (frames - pos) * hop > max_frames * hop:
        pos = _quietest(energy, pos + max_frames // 2, pos + max_frames)
        cuts.append(pos)
    bounds = [min(c * hop, total) for c in cuts] + [total]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
