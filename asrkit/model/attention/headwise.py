"""Any single-head attention kind run as H heads: multihead local and monotonic attention.

    q^h = W_q^h q_i,  v^h_j = W_v^h h_j                  (per-head queries and frames)
    c^h_i, alpha^h_i = inner.step(q^h, {v^h_j}, state^h)  (one kind, its own state per head)
    c_i = W_o [c^1_i; ...; c^H_i]

With a monotonic or MoChA inner kind this is monotonic multihead attention (MMA, Ma et al.
2019; Inaguma et al. 2020): every head keeps its own expected alignment in training and its own
pointer in the hard left-to-right scan at inference. With local-m every head moves its own
window centre; with local-p every head predicts its own. The heads share the inner kind's
energy parameters and differ by their query and frame projections, so a head costs one inner
step over d / H-sized vectors.

Layout: the inner kind sees every (item, head) pair as an item of its own, rows ordered
(b, h, g) for G query rows (beams) per item; the state handed back to the caller is batch-first
in the caller's (b, g) rows with the head axis second, (B * G, H, ...), so beam search reorders
it like any other state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import Tensor, nn

from asrkit.config import AttentionConfig, ConfigError
from asrkit.model.attention.base import (
    AttendMemory,
    Attention,
    AttentionOutput,
    Mode,
    State,
    group_rows,
    valid_mask,
)


@dataclass(frozen=True)
class HeadMemory(AttendMemory):
    """An `AttendMemory` for B items whose `inner` memory holds every head as an item.

    Attributes:
        inner: the inner kind's memory over B * H items (item b * H + h is head h of item b),
            with the same query rows per item (`group`) as the outer memory.
        heads: H.
    """

    inner: AttendMemory | None = None
    heads: int = 1

    def _with(self, outer: AttendMemory, inner: AttendMemory) -> HeadMemory:
        fields = {f.name: getattr(outer, f.name) for f in dataclasses.fields(AttendMemory)}
        return HeadMemory(**fields, inner=inner, heads=self.heads)

    def index_select(self, index: Tensor) -> HeadMemory:
        assert self.inner is not None
        outer = super().index_select(index)
        return self._with(outer, self.inner.index_select(group_rows(index, self.heads)))

    def shared(self, group: int) -> HeadMemory:
        assert self.inner is not None
        return self._with(super().shared(group), self.inner.shared(group))


def to_heads(x: Tensor, items: int, heads: int) -> Tensor:
    """Caller rows (B * G, H, ...) -> inner rows (B * H * G, ...) ordered (b, h, g)."""
    rest = x.shape[2:]
    grouped = x.reshape(items, -1, heads, *rest)  # (B, G, H, ...)
    return grouped.transpose(1, 2).reshape(-1, *rest)


def from_heads(x: Tensor, items: int, heads: int) -> Tensor:
    """Inner rows (B * H * G, ...) -> caller rows (B * G, H, ...)."""
    rest = x.shape[1:]
    grouped = x.reshape(items, heads, -1, *rest)  # (B, H, G, ...)
    return grouped.transpose(1, 2).reshape(-1, heads, *rest)


class HeadwiseAttention(Attention):
    """H heads of one registered single-head kind, projected back to `memory_dim`.

    Args:
        inner_kind: the attention class every head runs (`REGISTRY[kind]`).
        cfg: the attention config; `heads` is H, `dim` the total energy size (d / H per head),
            every other option goes to the inner kind as it would alone.
        query_dim: decoder query size (a multiple of H).
        memory_dim: encoder frame size (a multiple of H); also the context size.

    Example:
        >>> import torch
        >>> from asrkit.model.attention.monotonic import MonotonicAttention
        >>> cfg = AttentionConfig(kind="monotonic", dim=8, heads=2)
        >>> att = HeadwiseAttention(MonotonicAttention, cfg, query_dim=4, memory_dim=6)
        >>> mem = att.prepare(torch.randn(2, 5, 6), torch.tensor([5, 3]))
        >>> out = att.step(torch.randn(2, 4), mem, att.initial_state(mem), "eval")
        >>> out.context.shape, out.head_weights.shape
        (torch.Size([2, 6]), torch.Size([2, 2, 5]))
    """

    def __init__(
        self, inner_kind: type[Attention], cfg: AttentionConfig, query_dim: int, memory_dim: int
    ) -> None:
        super().__init__(query_dim, memory_dim)
        heads = cfg.heads
        if heads < 1 or query_dim % heads or memory_dim % heads or cfg.dim % heads:
            raise ConfigError(
                f"attention.heads ({heads}) must divide the decoder width ({query_dim}), the "
                f"encoder width ({memory_dim}) and attention.dim ({cfg.dim})"
            )
        self.heads = heads
        self.query_proj = nn.Linear(query_dim, query_dim, bias=False)
        self.value_proj = nn.Linear(memory_dim, memory_dim, bias=False)
        self.out_proj = nn.Linear(memory_dim, memory_dim, bias=False)
        inner_cfg = dataclasses.replace(cfg, dim=cfg.dim // heads)
        self.inner = inner_kind.from_config(  # type: ignore[attr-defined]
            inner_cfg, query_dim // heads, memory_dim // heads
        )

    def prepare(self, memory: Tensor, lengths: Tensor) -> HeadMemory:
        items, frames, _ = memory.shape
        per_head = self.value_proj(memory).view(items, frames, self.heads, -1)
        per_head = per_head.transpose(1, 2).reshape(items * self.heads, frames, -1)
        inner = self.inner.prepare(per_head, lengths.repeat_interleave(self.heads))
        mask = valid_mask(lengths, frames)
        return HeadMemory(memory, mask, lengths, inner=inner, heads=self.heads)

    def initial_state(self, mem: AttendMemory) -> State:
        assert isinstance(mem, HeadMemory) and mem.inner is not None
        items = mem.values.shape[0]
        inner = self.inner.initial_state(mem.inner)
        return {key: from_heads(value, items, self.heads) for key, value in inner.items()}

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        assert isinstance(mem, HeadMemory) and mem.inner is not None
        items, heads = mem.values.shape[0], self.heads
        queries = self.query_proj(query).view(query.shape[0], heads, -1)  # (B * G, H, q / H)
        inner_state = {key: to_heads(value, items, heads) for key, value in state.items()}
        out = self.inner.step(to_heads(queries, items, heads), mem.inner, inner_state, mode)
        contexts = from_heads(out.context, items, heads)  # (B * G, H, D / H)
        context = self.out_proj(contexts.flatten(1))  # (B * G, D)
        head_weights = from_heads(out.weights, items, heads)  # (B * G, H, T)
        new_state = {key: from_heads(value, items, heads) for key, value in out.state.items()}
        return AttentionOutput(context, head_weights.mean(1), new_state, head_weights=head_weights)
