"""Additive (Bahdanau) attention: e_ij = w^T tanh(W q_i + V h_j + b) (Bahdanau et al. 2015).

`V h_j + b` is computed once per utterance in `prepare`; a step then costs O(T * d_a). With
teacher forcing, autograd keeps the (B, T, d_a) tanh activations of every output step, the
dominant memory cost of LAS training (spec §2.6): lower `dim` if memory is short.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asrkit.config import AttentionConfig
from asrkit.model.attention.base import (
    AttendMemory,
    Attention,
    AttentionOutput,
    Mode,
    State,
    by_item,
    energy_dtype,
    masked_softmax,
    no_autocast,
    valid_mask,
    weighted_context,
)


class AdditiveAttention(Attention):
    """Bahdanau additive attention over all valid frames.

    The score vector `w` has no bias: a constant added to every energy cancels in the softmax.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: energy MLP size d_a.
        scaling: softmax sharpening beta.

    Example:
        >>> att = AdditiveAttention(query_dim=4, memory_dim=6, dim=8)
        >>> mem = att.prepare(torch.randn(2, 5, 6), torch.tensor([5, 3]))
        >>> out = att.step(torch.randn(2, 4), mem, att.initial_state(mem), "train")
        >>> out.context.shape, float(out.weights[1, 3:].detach().abs().sum())
        (torch.Size([2, 6]), 0.0)
    """

    def __init__(self, query_dim: int, memory_dim: int, dim: int, scaling: float = 1.0) -> None:
        super().__init__(query_dim, memory_dim)
        self.query_proj = nn.Linear(query_dim, dim, bias=False)  # W
        self.key_proj = nn.Linear(memory_dim, dim)  # V and b
        self.score = nn.Linear(dim, 1, bias=False)  # w
        self.scaling = scaling

    @classmethod
    def from_config(
        cls, cfg: AttentionConfig, query_dim: int, memory_dim: int
    ) -> AdditiveAttention:
        return cls(query_dim, memory_dim, cfg.dim, cfg.scaling)

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        mask = valid_mask(lengths, memory.shape[1])
        return AttendMemory(memory, mask, lengths, {"keys": self.key_proj(memory)})

    def energies(self, query: Tensor, mem: AttendMemory, extra: Tensor | None = None) -> Tensor:
        """Energies (B * G, T) in float32 for query (B * G, query_dim), G = `mem.group`.

        Args:
            query: (B * G, query_dim).
            mem: prepared memory.
            extra: optional (B * G, T, d_a) term added inside the tanh (location features).
        """
        with no_autocast(query.device):
            keys = mem.keys["keys"]  # (B, T, d_a), shared by the G rows of an item
            dtype = energy_dtype(keys)
            items = keys.shape[0]
            projected = by_item(self.query_proj(query.to(dtype)), items)  # (B, G, d_a)
            hidden = keys.to(dtype).unsqueeze(1) + projected.unsqueeze(2)  # (B, G, T, d_a)
            if extra is not None:
                hidden = hidden + by_item(extra.to(dtype), items)
            return self.score(torch.tanh(hidden)).flatten(0, 1).squeeze(-1)

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        weights = masked_softmax(self.energies(query, mem), mem.mask, self.scaling)
        return AttentionOutput(weighted_context(weights, mem.values), weights, state)
