"""Multi-head attention for the speller (LAS-MHA, Chiu et al. 2018; spec §2.5).

    alpha^h_i = masked softmax(beta (W_q^h q_i) . (W_k^h h_j) / sqrt(d_h))
    c_i = W_o [sum_j alpha^1_ij W_v^1 h_j; ...; sum_j alpha^H_ij W_v^H h_j]

The returned weights are the mean over heads, (B, T): they still sum to 1 and are 0 on padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asrkit.config import AttentionConfig, ConfigError
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
)


class MultiHeadAttention(Attention):
    """H scaled dot-product heads over the encoder frames, projected back to `memory_dim`.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size (and context size).
        dim: total projection size, split evenly over the heads.
        heads: number of heads H.
        scaling: softmax sharpening beta (on top of 1/sqrt(d_h)).

    Example:
        >>> att = MultiHeadAttention(query_dim=4, memory_dim=6, dim=8, heads=2)
        >>> mem = att.prepare(torch.randn(2, 5, 6), torch.tensor([5, 3]))
        >>> out = att.step(torch.randn(2, 4), mem, {}, "eval")
        >>> out.context.shape, out.weights.shape
        (torch.Size([2, 6]), torch.Size([2, 5]))
    """

    stateless = True

    def __init__(
        self, query_dim: int, memory_dim: int, dim: int, heads: int, scaling: float = 1.0
    ) -> None:
        super().__init__(query_dim, memory_dim)
        if heads < 1 or dim % heads != 0:
            raise ConfigError(f"attention.dim ({dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.head_dim = dim // heads
        self.query_proj = nn.Linear(query_dim, dim, bias=False)
        self.key_proj = nn.Linear(memory_dim, dim, bias=False)
        self.value_proj = nn.Linear(memory_dim, dim, bias=False)
        self.out_proj = nn.Linear(dim, memory_dim, bias=False)
        self.scaling = scaling / self.head_dim**0.5

    @classmethod
    def from_config(
        cls, cfg: AttentionConfig, query_dim: int, memory_dim: int
    ) -> MultiHeadAttention:
        return cls(query_dim, memory_dim, cfg.dim, cfg.heads, cfg.scaling)

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, d_h)

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        mask = valid_mask(lengths, memory.shape[1])
        keys = {
            "keys": self._split(self.key_proj(memory)),  # (B, H, T, d_h)
            "values": self._split(self.value_proj(memory)),  # (B, H, T, d_h)
        }
        return AttendMemory(memory, mask, lengths, keys)

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        keys = mem.keys["keys"]  # (B, H, T, d_h), shared by the G = mem.group rows of an item
        items = keys.shape[0]
        with no_autocast(query.device):
            dtype = energy_dtype(keys)
            q = by_item(self.query_proj(query.to(dtype)), items)  # (B, G, H * d_h)
            q = q.view(items, -1, self.heads, self.head_dim).transpose(1, 2)  # (B, H, G, d_h)
            energies = torch.matmul(q, keys.to(dtype).transpose(2, 3))  # (B, H, G, T)
        energies = energies.transpose(1, 2).flatten(0, 1)  # (B * G, H, T)
        weights = masked_softmax(energies, mem.mask.unsqueeze(1), self.scaling)  # (B * G, H, T)
        values = mem.keys["values"]  # (B, H, T, d_h)
        grouped = by_item(weights, items).transpose(1, 2).to(values.dtype)  # (B, H, G, T)
        heads = torch.matmul(grouped, values).transpose(1, 2)  # (B, G, H, d_h)
        context = self.out_proj(heads.flatten(2).flatten(0, 1))  # (B * G, memory_dim)
        return AttentionOutput(context, weights.mean(1), state, head_weights=weights)
