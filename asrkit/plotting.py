"""Alignment plots: the log-mel spectrogram above the attention weights, on one time axis.

Matplotlib is imported lazily and used through its object-oriented API (a `Figure` on an Agg
canvas, no pyplot global state), so plotting is thread-safe and needs no display. The figure
size is a pure function of the audio length and token count (`figure_size`) and the dpi is
fixed, so the PNG size is predictable; the width grows with the duration and token labels are
thinned, so a 20-second utterance stays readable.

Example:
    >>> import torch
    >>> plot_alignment(Path("/tmp/a.png"), torch.randn(300, 80), torch.rand(12, 75),
    ...                list("HELLO▁WORLD") + ["<eos>"], 0.04, "demo")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from torch import Tensor

from asrkit.io import atomic_open

DPI = 100
MAX_LABELS = 60  # token labels drawn on the y axis at most; the rest are thinned
FEATURE_SHIFT = 0.01  # seconds per feature frame


def figure_size(seconds: float, num_tokens: int) -> tuple[float, float]:
    """(width, height) in inches: ~0.6 inch per second (8 to 30), taller for long outputs."""
    width = min(30.0, max(8.0, 2.0 + 0.6 * seconds))
    height = 3.0 + min(7.0, max(3.0, 0.12 * min(num_tokens, MAX_LABELS)))
    return width, height


def pixel_size(seconds: float, num_tokens: int) -> tuple[int, int]:
    """(width, height) of the PNG in pixels."""
    width, height = figure_size(seconds, num_tokens)
    return round(width * DPI), round(height * DPI)


def plot_alignment(
    path: Path,
    feats: Tensor,
    weights: Tensor,
    tokens: list[str],
    frame_shift: float,
    title: str,
) -> Path:
    """Save a PNG with the spectrogram on top and the attention alignment below.

    Args:
        path: the PNG to write (atomically).
        feats: (T, n_mels) log-mel features, 10 ms frames.
        weights: (U, T') attention weights, one row per output token (incl. <eos>), already
            cropped to the valid frames.
        tokens: U labels for the rows.
        frame_shift: seconds per encoder frame (subsampling x 10 ms).
        title: figure title (e.g. the utterance id).

    Returns:
        `path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seconds = max(feats.shape[0] * FEATURE_SHIFT, weights.shape[1] * frame_shift, 0.01)
    fig = Figure(figsize=figure_size(seconds, len(tokens)), dpi=DPI)
    FigureCanvasAgg(fig)
    spec_ax, att_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    spec_ax.imshow(
        feats.float().T.cpu().numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, feats.shape[0] * FEATURE_SHIFT, 0, feats.shape[1]),
        interpolation="nearest",
    )
    spec_ax.set_ylabel("mel bin")
    spec_ax.set_title(title)
    _draw_weights(att_ax, weights, frame_shift)
    _label_tokens(att_ax, tokens)
    att_ax.set_xlabel("time (s)")
    att_ax.set_xlim(0, seconds)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.95, bottom=0.08, hspace=0.08)
    return _save_png(fig, path)


def _draw_weights(ax: Any, weights: Tensor, frame_shift: float) -> None:
    """Attention weights (U, T') as an image: one row per token, time in seconds."""
    ax.imshow(
        weights.float().cpu().numpy() if weights.numel() else [[0.0]],
        origin="upper",
        aspect="auto",
        cmap="viridis",
        vmin=0.0,
        extent=(0, max(weights.shape[1] * frame_shift, 0.01), max(1, weights.shape[0]), 0),
        interpolation="nearest",
    )


def _label_tokens(ax: Any, tokens: list[str]) -> None:
    """Token labels on the y axis, thinned to at most MAX_LABELS."""
    step = max(1, math.ceil(len(tokens) / MAX_LABELS))
    shown = list(range(0, len(tokens), step))
    ax.set_yticks([i + 0.5 for i in shown])
    ax.set_yticklabels([tokens[i].replace("▁", "␣") for i in shown], fontsize=7)
    ax.set_ylabel("output token")


def _save_png(fig: Any, path: Path) -> Path:
    """Render the figure and write it atomically (a reader never sees half a PNG)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    with atomic_open(Path(path), "wb") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def plot_heads(
    path: Path, head_weights: Tensor, tokens: list[str], frame_shift: float, title: str
) -> Path:
    """Save a PNG with one panel per attention head, side by side on one time axis.

    Args:
        path: the PNG to write (atomically).
        head_weights: (H, U, T') weights of every head, cropped to the valid frames.
        tokens: U labels for the rows (shown on the first panel).
        frame_shift: seconds per encoder frame.
        title: figure title (which block the heads belong to).

    Returns:
        `path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heads, rows, frames = head_weights.shape
    seconds = max(frames * frame_shift, 0.01)
    width = min(30.0, 1.0 + heads * max(3.0, 0.3 * seconds))
    fig = Figure(figsize=(width, 3.0 + min(5.0, 0.06 * min(rows, MAX_LABELS))), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, heads, sharey=True, squeeze=False)[0]
    for h, ax in enumerate(axes):
        _draw_weights(ax, head_weights[h], frame_shift)
        ax.set_title(f"head {h + 1}", fontsize=9)
        ax.set_xlabel("time (s)")
    _label_tokens(axes[0], tokens)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save_png(fig, path)
