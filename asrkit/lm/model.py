"""Neural language models over the acoustic model's own units: pure tensors in, tensors out.

Both kinds read <eos> as the sentence start (as the speller does) and predict every next unit
and the final <eos>. Two ways in:
  - `forward(tokens, lengths)`: teacher-forced logits of all positions (training, rescoring);
  - `step(prev, state)`: one position for every row, with an explicit batch-first `State`
    that beam search reorders like the speller's (`reorder_state`).
`step` run position by position gives exactly the teacher-forced logits (tested).

Example:
    >>> lm = build_lm(LMConfig(hidden=32, embed_dim=16, layers=1), vocab_size=10)
    >>> logits = lm(torch.tensor([[1, 4, 5]]), torch.tensor([3]))
    >>> logits.shape
    torch.Size([1, 3, 10])
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asrkit.lm.config import LMConfig
from asrkit.model.attention.base import State
from asrkit.model.layers import Dropout, FeedForward, rotary_tables, rotate


class LanguageModel(nn.Module, ABC):
    """The interface fusion and training rely on."""

    vocab_size: int

    @abstractmethod
    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """tokens (B, U) inputs (<eos> first), lengths (B,) -> logits (B, U, V)."""

    @abstractmethod
    def initial_state(self, rows: int, device: torch.device) -> State:
        """The state before the first step of `rows` rows."""

    @abstractmethod
    def step(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        """prev (N,) the last unit of every row -> next-unit logits (N, V) and the new state."""

    def log_probs(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        """`step` as float64 log-probabilities (what the search adds)."""
        logits, state = self.step(prev, state)
        return torch.log_softmax(logits.double(), dim=-1), state


class LSTMLM(LanguageModel):
    """Embedding -> stacked LSTM -> linear, dropout between layers."""

    def __init__(self, cfg: LMConfig, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size, self.layers, self.hidden = vocab_size, cfg.layers, cfg.hidden
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim)
        between = cfg.dropout if cfg.layers > 1 else 0.0  # nn.LSTM drops between layers only
        self.lstm = nn.LSTM(
            cfg.embed_dim, cfg.hidden, cfg.layers, batch_first=True, dropout=between
        )
        self.dropout = Dropout(cfg.dropout)
        self.output = nn.Linear(cfg.hidden, vocab_size)
        if cfg.tie_embeddings:
            self.output.weight = self.embed.weight

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        # Not packed: the LSTM runs left to right, so padding after a position cannot reach
        # it, and a packed LSTM is 2-8x slower on a CPU (measured: 3.4k vs 7.5k tokens/s).
        del lengths
        y, _ = self.lstm(self.dropout(self.embed(tokens)))
        return self.output(self.dropout(y))

    def initial_state(self, rows: int, device: torch.device) -> State:
        zeros = torch.zeros(rows, self.layers, self.hidden, device=device)
        return {"h": zeros, "c": zeros.clone()}  # batch-first, unlike nn.LSTM's own layout

    def step(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        x = self.embed(prev).unsqueeze(1)  # (N, 1, E)
        hidden = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        out, (h, c) = self.lstm(x, hidden)
        return self.output(out[:, 0]), {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}


class _Block(nn.Module):
    """Pre-norm causal self-attention (rotary positions) and feed-forward."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = FeedForward(dim, ff_mult, dropout)
        self.dropout = Dropout(dropout)

    def _qkv(self, x: Tensor, rotary: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        rows, steps, dim = x.shape
        qkv = self.qkv(self.norm(x)).view(rows, steps, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, heads, U, D / heads)
        return rotate(q, *rotary), rotate(k, *rotary), v

    def _finish(self, x: Tensor, y: Tensor) -> Tensor:
        x = x + self.dropout(self.out(y.transpose(1, 2).flatten(2)))
        return x + self.ff(x)

    def forward(self, x: Tensor, rotary: tuple[Tensor, Tensor], mask: Tensor) -> Tensor:
        """x (B, U, D); mask (B, 1, U, U) True where a position may look (causal, unpadded)."""
        q, k, v = self._qkv(x, rotary)
        return self._finish(x, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))

    def step(self, x: Tensor, k_v: tuple[Tensor, Tensor] | None, rotary: tuple[Tensor, Tensor]):
        """x (N, 1, D) against the cached keys and values (N, heads, t, D / heads)."""
        q, k, v = self._qkv(x, rotary)
        if k_v is not None:
            k, v = torch.cat([k_v[0], k], dim=2), torch.cat([k_v[1], v], dim=2)
        return self._finish(x, F.scaled_dot_product_attention(q, k, v)), (k, v)


class TransformerLM(LanguageModel):
    """Embedding -> causal pre-norm Transformer blocks with rotary positions -> linear.

    The state caches every block's keys and values ("l<i>.k", "l<i>.v"), so a step costs
    O(prefix), not O(prefix^2).
    """

    def __init__(self, cfg: LMConfig, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size, self.head_dim = vocab_size, cfg.hidden // cfg.heads
        self.heads = cfg.heads
        self.embed = nn.Embedding(vocab_size, cfg.hidden)
        self.blocks = nn.ModuleList(
            _Block(cfg.hidden, cfg.heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.layers)
        )
        self.dropout = Dropout(cfg.dropout)
        self.final_norm = nn.LayerNorm(cfg.hidden)
        self.output = nn.Linear(cfg.hidden, vocab_size)
        if cfg.tie_embeddings:
            self.output.weight = self.embed.weight

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        steps = tokens.shape[1]
        rotary = rotary_tables(steps, self.head_dim, tokens.device)
        positions = torch.arange(steps, device=tokens.device)
        causal = positions.unsqueeze(0) <= positions.unsqueeze(1)  # (U, U) query x key
        valid = positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, U)
        # A padded query still sees key 0, so no row of the softmax is empty (no NaN).
        mask = (causal.unsqueeze(0) & valid.unsqueeze(1)).unsqueeze(1)  # (B, 1, U, U)
        x = self.dropout(self.embed(tokens))
        for block in self.blocks:
            x = block(x, rotary, mask)
        return self.output(self.final_norm(x))

    def initial_state(self, rows: int, device: torch.device) -> State:
        return {"position": torch.zeros(rows, dtype=torch.long, device=device)}

    def step(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        # Every row is at the same position (the search advances all rows together).
        start = int(state["position"][0]) if state["position"].numel() else 0
        rotary = rotary_tables(1, self.head_dim, prev.device, start)
        x = self.embed(prev).unsqueeze(1)
        new_state: State = {"position": state["position"] + 1}
        for i, block in enumerate(self.blocks):
            cached = (state[f"l{i}.k"], state[f"l{i}.v"]) if f"l{i}.k" in state else None
            x, (k, v) = block.step(x, cached, rotary)
            new_state[f"l{i}.k"], new_state[f"l{i}.v"] = k, v
        return self.output(self.final_norm(x[:, 0])), new_state


def build_lm(cfg: LMConfig, vocab_size: int) -> LanguageModel:
    """The model `cfg.kind` names."""
    return LSTMLM(cfg, vocab_size) if cfg.kind == "lstm" else TransformerLM(cfg, vocab_size)
