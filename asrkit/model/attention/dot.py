"""Luong content-based scores: `dot` and `general` (Luong et al. 2015, §3.1).

Both are pure content attention: weights depend on the query and the frames only, so they are
equivariant to permutations of the valid frames.
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
    energy_dtype,
    masked_softmax,
    no_autocast,
    valid_mask,
    weighted_context,
)


def item_bmm(keys: Tensor, queries: Tensor) -> Tensor:
    """keys (B, T, d) . queries (B * G, d) -> (B * G, T); G rows share an item's keys."""
    items, frames, dim = keys.shape
    grouped = queries.reshape(items, -1, dim).transpose(1, 2)  # (B, d, G)
    return torch.bmm(keys, grouped).transpose(1, 2).reshape(-1, frames)


class DotAttention(Attention):
    """Scaled dot-product attention between a projected query and projected keys.

    e_ij = beta * (W_q q_i) . (W_k h_j) / sqrt(d); weights = masked softmax over valid frames.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: shared projection size d.
        scaling: softmax sharpening beta; energies are divided by sqrt(d) first.

    Example:
        >>> att = DotAttention(query_dim=4, memory_dim=6, dim=8)
        >>> mem = att.prepare(torch.randn(2, 5, 6), torch.tensor([5, 3]))
        >>> att.step(torch.randn(2, 4), mem, {}, "eval").weights.shape
        torch.Size([2, 5])
    """

    stateless = True

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

    def energies(self, query: Tensor, keys: Tensor) -> Tensor:
        """query (B * G, query_dim), keys (B, T, d) -> unscaled energies (B * G, T), float32."""
        with no_autocast(query.device):
            dtype = energy_dtype(keys)
            q = self.query_proj(query.to(dtype))  # (B * G, d)
            return item_bmm(keys.to(dtype), q)

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        weights = masked_softmax(self.energies(query, mem.keys["keys"]), mem.mask, self.scaling)
        return AttentionOutput(weighted_context(weights, mem.values), weights, state)


class GeneralAttention(Attention):
    """Luong "general" bilinear attention: e_ij = beta * q_i^T W_a h_j.

    `W_a h_j` is precomputed once per utterance, so a step costs O(T * query_dim). With
    `W_a = I` it is the plain (unprojected, unscaled) dot product.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        scaling: softmax sharpening beta.
    """

    stateless = True

    def __init__(self, query_dim: int, memory_dim: int, scaling: float = 1.0) -> None:
        super().__init__(query_dim, memory_dim)
        self.bilinear = nn.Linear(memory_dim, query_dim, bias=False)  # W_a
        self.scaling = scaling

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_dim: int, memory_dim: int) -> GeneralAttention:
        return cls(query_dim, memory_dim, cfg.scaling)

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        mask = valid_mask(lengths, memory.shape[1])
        return AttendMemory(memory, mask, lengths, {"keys": self.bilinear(memory)})

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        with no_autocast(query.device):
            keys = mem.keys["keys"]
            dtype = energy_dtype(keys)
            energies = item_bmm(keys.to(dtype), query.to(dtype))
        weights = masked_softmax(energies, mem.mask, self.scaling)
        return AttentionOutput(weighted_context(weights, mem.values), weights, state)
