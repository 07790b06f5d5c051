"""Monotonic chunkwise attention, MoChA (Chiu & Raffel 2018; spec §5).

Inference: the hard monotonic scan of `MonotonicAttention` stops at t_i, then a softmax of the
chunk energies u over the w frames [t_i - w + 1, t_i] gives the context (only those w chunk
energies are computed: `chunk_evaluations` counts them). Training: the expected chunk weights

    beta_ij = sum_{k=j}^{j+w-1} alpha_ik exp(u_ij) / sum_{l=k-w+1}^{k} exp(u_il)      (eq. 17)

with the "stable" chunk softmax: each chunk is normalised on its own (framed tensor, O(T w)
memory), so any logit range is exact, unlike the exp-clamped moving-sum form. alpha is the soft
monotonic expected alignment, which stays the recurrent state; beta only forms the context.
With w = 1, beta == alpha and the model is plain monotonic attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from asrkit.config import AttentionConfig, ConfigError
from asrkit.model.attention.base import (
    AttendMemory,
    energy_dtype,
    gather_frames,
    masked_softmax,
    scatter_frames,
    valid_mask,
    weighted_frames,
)
from asrkit.model.attention.monotonic import MonotonicAttention, MonotonicEnergy, item_energies


def chunkwise_weights(alpha: Tensor, chunk_energies: Tensor, mask: Tensor, width: int) -> Tensor:
    """Expected chunkwise weights beta (eq. 17), stable per-chunk softmax.

    Args:
        alpha: (B, T) monotonic (expected) alignment, 0 on padding.
        chunk_energies: (B, T) chunk energies u.
        mask: (B, T) bool, True on valid frames.
        width: chunk width w >= 1.

    Returns:
        (B, T) beta with sum_j beta_ij = sum_j alpha_ij, 0 on padding.
    """
    # frames[b, k, m] is frame k - w + 1 + m: the chunk that ends at frame k.
    framed_u = F.pad(chunk_energies, (width - 1, 0)).unfold(1, width, 1)  # (B, T, w)
    framed_mask = F.pad(mask, (width - 1, 0), value=False).unfold(1, width, 1)  # (B, T, w)
    chunk_softmax = masked_softmax(framed_u, framed_mask)  # (B, T, w)
    share = alpha.to(chunk_softmax.dtype).unsqueeze(-1) * chunk_softmax  # (B, T, w)
    # share[:, k, m] belongs to frame j = k - (w - 1 - m): shift column m left by w - 1 - m.
    beta = share[:, :, width - 1]
    for m in range(width - 1):
        shift = width - 1 - m
        beta = beta + F.pad(share[:, shift:, m], (0, shift))
    return beta


class MoChAAttention(MonotonicAttention):
    """Monotonic attention followed by a soft attention over a chunk of `chunk` frames.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: energy MLP size d_a (monotonic and chunk energies).
        chunk: chunk width w (2 for speech).
        r_init: initial monotonic energy offset r.
        noise_std: pre-sigmoid noise std in train mode.
        g_init: initial monotonic energy gain g; None for 1/sqrt(d_a).
        on_exhausted: "zero" or "last_frame" (the chunk ending at frame L_b - 1).

    Example:
        >>> att = MoChAAttention(query_dim=4, memory_dim=6, dim=8, chunk=2)
        >>> mem = att.prepare(torch.randn(2, 7, 6), torch.tensor([7, 4]))
        >>> out = att.step(torch.randn(2, 4), mem, att.initial_state(mem), "train")
        >>> float(out.weights[1, 4:].detach().abs().sum())
        0.0
    """

    def __init__(
        self,
        query_dim: int,
        memory_dim: int,
        dim: int,
        chunk: int,
        r_init: float = -4.0,
        noise_std: float = 1.0,
        g_init: float | None = None,
        on_exhausted: str = "zero",
    ) -> None:
        super().__init__(
            query_dim, memory_dim, dim, r_init, noise_std, g_init, on_exhausted=on_exhausted
        )
        if chunk < 1:
            raise ConfigError(f"attention.chunk must be >= 1, got {chunk}")
        self.chunk = chunk
        self.chunk_energy = MonotonicEnergy(query_dim, memory_dim, dim, r_init=None)
        self.chunk_evaluations = 0

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_dim: int, memory_dim: int) -> MoChAAttention:
        return cls(
            query_dim,
            memory_dim,
            cfg.dim,
            cfg.chunk,
            cfg.r_init,
            cfg.noise_std,
            cfg.g_init,
            on_exhausted=cfg.on_exhausted,
        )

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        mask = valid_mask(lengths, memory.shape[1])
        keys = {"mono": self.energy.key_proj(memory), "chunk": self.chunk_energy.key_proj(memory)}
        return AttendMemory(memory, mask, lengths, keys)

    def soft_weights(self, alpha: Tensor, query: Tensor, mem: AttendMemory) -> Tensor:
        """beta (B, T) from the expected alignment alpha (B, T)."""
        energies = item_energies(self.chunk_energy, mem.keys["chunk"], query)  # (B, T)
        return chunkwise_weights(alpha, energies, mem.mask, self.chunk)

    def hard_output(
        self, frames: Tensor, attends: Tensor, query: Tensor, mem: AttendMemory
    ) -> tuple[Tensor, Tensor]:
        """Chunk softmax over [t - w + 1, t] (truncated at frame 0); zero where not `attends`."""
        offsets = torch.arange(1 - self.chunk, 1, device=frames.device)
        index = frames.unsqueeze(1) + offsets  # (B, w)
        inside = (index >= 0) & attends.unsqueeze(1)
        safe = index.clamp(0, mem.values.shape[1] - 1)
        self.chunk_evaluations += int(inside.sum())
        energies = self.chunk_energy(gather_frames(mem.keys["chunk"], safe), query.unsqueeze(1))
        weights = masked_softmax(energies, inside)  # (B, w)
        context = weighted_frames(mem.values, safe, weights)
        full = scatter_frames(weights.to(energy_dtype(mem.values)), safe, mem.values.shape[1])
        return full, context
