"""Luong dot-product attention: e_ij = q_i . W_q h_j (Luong et al. 2015, §3.1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asrkit.config import AttentionConfig
from asrkit.model.attention.base import (
    Attention,
    AttendMemory,
    AttentionOutput,
    Mode,
    State,
    masked_softmax,
    valid_mask,
    weighted_context,
)


class DotAttention(Attention):
    """Scaled dot-product attention between a projected query and projected keys.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: shared projection size d.
        scaling: softmax sharpening beta; energies are divided by sqrt(d) first.
    """

    def __init__(self, query_dim: int, memory_dim: int, dim: int, scaling: float = 1.0) -> None:
        super().__init__(query_dim, memory_dim)
        self.query_proj = nn.Linear(query_dim, dim, bias=False)
        self.key_proj = nn.Linear(memory_dim, dim, bias=False)
        self.scaling = scaling / dim**0.5

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_dim: int, memory_dim: int) -> DotAttention:
        return cls(query_dim, memory_dim, cfg.dim, cfg.scaling)

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        mask = valid_mask(lengths, memory.shape[1])
        return AttendMemory(memory, mask, lengths, {"keys": self.key_proj(memory)})

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        q = self.query_proj(query)  # (B, d)
        energies = torch.bmm(mem.keys["keys"], q.unsqueeze(2)).squeeze(2)  # (B, T)
        weights = masked_softmax(energies, mem.mask, self.scaling)
        return AttentionOutput(weighted_context(weights, mem.values), weights, state)
