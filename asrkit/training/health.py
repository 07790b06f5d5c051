"""Is attention aligning? Numbers, the attention-health figure and the training curves.

For one utterance's weights `A` (U, T) (tokens x encoder frames, cropped to the valid lengths):
    diagonality:  correlation between the token index and the attended position
                  sum_t t * A[u, t]; 1 for a clean left-to-right alignment, about 0 for
                  attention that is uniform or stuck on one frame. Leading silence only shifts
                  the line, so it does not lower the score.
    monotonicity: share of consecutive tokens whose most-attended frame does not move back by
                  more than one frame. A step back out of the end-of-audio sink is measured
                  from the last peak before it (`asrkit.scoring.health.reading_positions`):
                  location attention parks stray steps on the final frame and resumes there.
    focus:        mean over tokens of the largest weight (1 = sharp, 1/T = uniform).
Diagonality and monotonicity leave out steps that attend nowhere (all-zero rows: hard monotonic
attention that ran off the end, as on its eos step); focus counts them as 0.

Plots use matplotlib's object API with the Agg canvas (no global pyplot state), imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from asrkit.config import AttentionConfig
from asrkit.io import atomic_open
from asrkit.model.attention import MEMBERS
from asrkit.scoring.health import ATTENDED_MASS, HealthThresholds, reading_positions

ALIGNED_DIAGONALITY = 0.8  # below this (dev mean) attention is reported as not aligned
ALIGNED_MONOTONICITY = 0.8
# A wide window sliding down the diagonal (local attention before it has learnt anything) is
# diagonal and monotonic but attends 10+ frames per token; aligned models here peak at 0.3
# (characters, 40 ms frames, mini split) to 0.75 (digit words), unaligned ones at 0.06-0.17.
ALIGNED_FOCUS = 0.25


def alignment_health(weights: Tensor) -> dict[str, float]:
    """weights (U, T) -> {"diagonality", "monotonicity", "focus"} (see the module docstring)."""
    weights = weights.detach().float().cpu()
    focus = float(weights.max(dim=1).values.mean()) if weights.numel() else 0.0
    weights = weights[weights.sum(dim=1) > ATTENDED_MASS]  # steps that attended somewhere
    tokens, frames = weights.shape
    if tokens < 2 or frames < 2:
        return {"diagonality": 0.0, "monotonicity": 0.0, "focus": focus}
    position = weights @ torch.arange(frames, dtype=torch.float32)  # (U,) expected frame
    index = torch.arange(tokens, dtype=torch.float32)
    pos_c, idx_c = position - position.mean(), index - index.mean()
    denom = float(pos_c.norm() * idx_c.norm())
    diagonality = float(pos_c @ idx_c) / denom if denom > 1e-6 else 0.0
    peaks = weights.argmax(dim=1).tolist()
    reading = reading_positions(peaks, frames - HealthThresholds().sink_frames)
    forward = [now >= read - 1 for read, now in zip(reading, peaks[1:], strict=True)]
    monotonicity = sum(forward) / len(forward)
    return {"diagonality": diagonality, "monotonicity": monotonicity, "focus": focus}


def mean_health(matrices: Sequence[Tensor]) -> dict[str, float]:
    """Average `alignment_health` over several utterances."""
    rows = [alignment_health(m) for m in matrices]
    if not rows:
        return {"diagonality": 0.0, "monotonicity": 0.0, "focus": 0.0}
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def is_aligned(health: dict[str, float]) -> bool:
    return (
        health["diagonality"] >= ALIGNED_DIAGONALITY
        and health["monotonicity"] >= ALIGNED_MONOTONICITY
        and health["focus"] >= ALIGNED_FOCUS
    )


def not_aligned_advice(health: dict[str, float], steps: int, attention: AttentionConfig) -> str:
    """The plain-words warning printed when attention has not aligned after `steps`."""
    kind, local = attention.kind, ""
    if (kind == "local" or kind in MEMBERS["local"]) and attention.score != "location":
        # The window's centre follows its own weights: parked on frame 0 (the backward LSTM's
        # utterance summary) it never moves; location features read where it was and push on.
        local = (
            "For local attention: attention.score=location (the window then also reads the "
            "previous alignment and moves on from it). "
        )
    return (
        f"attention ({kind}) has not aligned after {steps} steps: the dev alignments are not "
        f"diagonal and focused (diagonality {health['diagonality']:.2f}, monotonicity "
        f"{health['monotonicity']:.2f}, focus {health['focus']:.2f}; aligned means the first "
        "two >= 0.8 and focus >= 0.25). The speller is guessing "
        "from its own history instead of listening. Things to try: raise model.ctc_weight "
        "(e.g. 0.5), add guided attention (train.guide_weight=1), lower optim.lr or lengthen "
        "optim.warmup_steps, use attention kind "
        "'location' or 'monotonic', or start with shorter utterances (train.max_utt_seconds). "
        f"{local}"
    ).rstrip()


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, FigureCanvasAgg(fig)


def _save(fig: Any, path: Path) -> None:
    with atomic_open(Path(path), "wb") as handle:
        fig.savefig(handle, format="png")


def plot_health(path: Path, matrices: Sequence[Tensor], history: Sequence[dict[str, Any]]) -> None:
    """Attention-health figure: this epoch's alignment paths, and the scores per epoch.

    Left: for each dev utterance the attended position per token, both axes scaled to [0, 1],
    against the ideal diagonal. Right: diagonality and monotonicity of every epoch so far.
    """
    fig, _ = _figure(10, 4)
    left, right = fig.subplots(1, 2)
    left.plot([0, 1], [0, 1], "k--", linewidth=1, label="diagonal")
    for i, weights in enumerate(matrices):
        weights = weights.detach().float().cpu()
        tokens, frames = weights.shape
        position = weights @ torch.arange(frames, dtype=torch.float32) / max(1, frames - 1)
        left.plot(torch.linspace(0, 1, tokens), position, marker=".", label=f"utt {i + 1}")
    left.set(xlabel="token (fraction of output)", ylabel="attended frame (fraction of input)")
    left.set_title("dev alignments")
    left.legend(fontsize=7)
    epochs = [row["epoch"] for row in history]
    for key in ("diagonality", "monotonicity", "focus"):
        right.plot(epochs, [row[key] for row in history], marker="o", label=key)
    right.axhline(ALIGNED_DIAGONALITY, color="grey", linestyle=":", linewidth=1)
    right.set(xlabel="epoch", ylabel="score", ylim=(-0.05, 1.05))
    right.set_title("attention health")
    right.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_curves(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Training curves from metrics.jsonl rows: losses, dev error rates and learning rate."""
    train = [r for r in rows if r.get("kind") == "train"]
    dev = [r for r in rows if r.get("kind") == "dev"]
    fig, _ = _figure(12, 3.5)
    loss_ax, err_ax, lr_ax = fig.subplots(1, 3)
    loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train")
    loss_ax.plot([r["step"] for r in dev], [r["loss"] for r in dev], "o-", label="dev")
    loss_ax.set(xlabel="step", ylabel="loss", title="loss")
    loss_ax.legend(fontsize=7)
    for key in ("cer", "wer"):
        err_ax.plot([r["epoch"] for r in dev], [100 * r[key] for r in dev], "o-", label=key)
    err_ax.set(xlabel="epoch", ylabel="%", title="dev error rates (greedy)")
    err_ax.legend(fontsize=7)
    lr_ax.plot([r["step"] for r in train], [r["lr"] for r in train])
    lr_ax.set(xlabel="step", ylabel="learning rate", title="learning rate")
    fig.tight_layout()
    _save(fig, path)


def plot_attention(
    path: Path, feats: Tensor, weights: Tensor, tokens: list[str], frame_shift: float, title: str
) -> None:
    """One dev utterance's alignment: spectrogram above, weights (U, T') below.

    Uses the shared `asrkit.plotting.plot_alignment` when it is installed with the decoding
    package, else draws the weights alone.
    """
    try:
        from asrkit.plotting import plot_alignment
    except ImportError:
        fig, _ = _figure(8, 4)
        ax = fig.subplots()
        ax.imshow(weights.float().numpy(), aspect="auto", origin="lower", cmap="viridis")
        ax.set(xlabel=f"encoder frame ({frame_shift * 1000:.0f} ms)", ylabel="token", title=title)
        fig.tight_layout()
        _save(fig, path)
        return
    plot_alignment(path, feats, weights, tokens, frame_shift, title)
