"""Building blocks the self-attention encoder and the Transformer decoder share.

- `Dropout`: inverted dropout whose keep mask comes from random bytes. On the 2-core CPU this
  project is sized for, `nn.Dropout`'s `bernoulli_` took a third of a Conformer training step;
  on 8 x 250 x 576 floats, forward and backward, `F.dropout` takes 8.2 ms, `rand_like(x) >= p`
  8.0 ms and this one 3.0 ms (`benchmarks/bench_dropout.py`, `benchmarks/RESULTS.md`). Each
  byte is uniform in 0..255, so the drop probability is p rounded to a multiple of 1/256
  (0.1 -> 26/256), and the kept values are scaled by the inverse of the realised keep
  probability.
- `FeedForward`: pre-norm position-wise feed-forward with SiLU (Conformer's Swish).
- Positions: absolute sinusoidal tables (Vaswani et al. 2017, §3.5) and rotary embeddings
  (RoPE, Su et al. 2021), which rotate queries and keys by their position so that their dot
  product depends on the offset between two frames only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Dropout(nn.Module):
    """Inverted dropout, as `nn.Dropout(p)` with p rounded to a multiple of 1/256.

    Args:
        p: probability of zeroing an element (0 disables it).

    Example:
        >>> drop = Dropout(0.5).eval()
        >>> bool((drop(torch.ones(3)) == 1).all())
        True
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p
        self.threshold = min(round(p * 256), 255)  # bytes below it are dropped
        self.scale = 256.0 / (256 - self.threshold)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.threshold == 0:
            return x
        count = x.numel()
        # Eight random bytes per int64 draw (the full signed range, so every byte is uniform).
        words = torch.randint(-(2**63), 2**63 - 1, ((count + 7) // 8,), device=x.device)
        keep = words.view(torch.uint8)[:count].view(x.shape) >= self.threshold
        return x * keep.to(x.dtype).mul_(self.scale)


class FeedForward(nn.Module):
    """Pre-norm position-wise feed-forward: LayerNorm -> Linear -> SiLU -> Linear."""

    def __init__(self, dim: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, mult * dim),
            nn.SiLU(),
            Dropout(dropout),
            nn.Linear(mult * dim, dim),
            Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def sinusoidal_positions(steps: int, dim: int, device: torch.device, start: int = 0) -> Tensor:
    """(T, dim) absolute sinusoidal encodings of positions start .. start + T - 1."""
    pos = torch.arange(start, start + steps, device=device, dtype=torch.float32).unsqueeze(1)
    freqs = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    table = torch.zeros(steps, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freqs)
    table[:, 1::2] = torch.cos(pos * freqs[: dim // 2])
    return table


def rotary_tables(
    steps: int, dim: int, device: torch.device, start: int = 0
) -> tuple[Tensor, Tensor]:
    """cos and sin tables (T, dim) of rotary embeddings for heads of size `dim` (even), for
    positions start .. start + T - 1.

    Channel pairs (i, i + dim/2) rotate by the angle t * 10000^(-2i/dim) at position t.
    """
    if dim % 2:
        raise ValueError(f"rotary positions need an even head size, got {dim}")
    freqs = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    positions = torch.arange(start, start + steps, device=device, dtype=torch.float32)
    angles = positions.unsqueeze(1) * freqs
    angles = torch.cat([angles, angles], dim=1)  # (T, dim)
    return angles.cos(), angles.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Apply rotary positions: x (..., T, d) with tables (T, d) -> (..., T, d)."""
    half = x.shape[-1] // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + turned * sin.to(x.dtype)
