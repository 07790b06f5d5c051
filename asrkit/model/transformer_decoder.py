"""A Transformer decoder whose cross-attention is any kind of the attention registry.

Per block (pre-norm, Vaswani et al. 2017 with the norms before each sub-layer):

    x = x + SelfAttention(LN(x))            # causal, over the output prefix
    x = x + CrossAttention(LN(x), memory)   # global, local or monotonic (one interface)
    x = x + FeedForward(x)

The decoder never knows which cross-attention it holds: it calls `prepare`, `initial_state`
and `step` as the LSTM speller does, keeps each block's attention state in its own state dict
under `l<i>.att.` keys and the self-attention keys and values of past steps under `l<i>.k` /
`l<i>.v`, so one incremental step costs O(prefix) and beam search reorders all of it with
`reorder_state`. A teacher-forced pass runs every block over all U+1 positions at once; a
stateless cross-attention (multihead) reads all positions in one call, a stateful one (local,
monotonic, MoChA heads) steps through them, since each position's alignment starts from the
previous one.

The step's `weights` are the head mean of block `alignment_layer`'s cross-attention: what plots,
health flags, attention word times and the CTC window read; `head_weights` keeps every head.
Scheduled sampling uses two passes (Mihaylova & Martins 2019): a first pass without gradient
predicts every position, and the second reads those predictions in place of the reference with
probability `sampling_prob`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asrkit.model.attention.base import AttendMemory, Attention, AttentionOutput, Mode, State
from asrkit.model.layers import Dropout, FeedForward, rotary_tables, rotate, sinusoidal_positions
from asrkit.model.speller import AttentionWindow, SpellerOutput, SpellerStep


@dataclass(frozen=True)
class LayerMemories:
    """Every block's prepared cross-attention memory; searches reorder them together.

    Attributes:
        layers: one `AttendMemory` per decoder block, all over the same items and rows.
    """

    layers: tuple[AttendMemory, ...]

    @property
    def lengths(self) -> Tensor:
        """(rows,) valid frames per query row."""
        return self.layers[0].lengths

    def index_select(self, index: Tensor) -> LayerMemories:
        return LayerMemories(tuple(m.index_select(index) for m in self.layers))

    def shared(self, group: int) -> LayerMemories:
        return LayerMemories(tuple(m.shared(group) for m in self.layers))


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention (the given mechanism) and a feed-forward."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float, cross: Attention):
        super().__init__()
        self.heads = heads
        self.self_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.self_out = nn.Linear(dim, dim)
        self.cross_norm = nn.LayerNorm(dim)
        self.cross = cross
        self.ff = FeedForward(dim, ff_mult, dropout)
        self.dropout = Dropout(dropout)

    def _split(
        self, x: Tensor, rotary: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(N, U, D) -> q, k, v each (N, heads, U, D / heads), q and k rotated by their
        positions with rotary tables (U, D / heads)."""
        rows, steps, dim = x.shape
        qkv = self.qkv(self.self_norm(x)).view(rows, steps, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        return q, k, v

    def _merge(self, y: Tensor) -> Tensor:
        """(N, heads, U, D / heads) -> (N, U, D)."""
        return self.self_out(y.transpose(1, 2).flatten(2))

    def self_attend(self, x: Tensor, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        """All positions at once, each seeing itself and the positions before it."""
        q, k, v = self._split(x, rotary)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.dropout(self._merge(y))

    def self_attend_step(
        self, x: Tensor, state: State, prefix: str, rotary: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, State]:
        """One position x (N, 1, D) against the cached keys and values of the earlier ones
        (cached after rotation, so each keeps its own position)."""
        q, k, v = self._split(x, rotary)
        if f"{prefix}k" in state:
            k = torch.cat([state[f"{prefix}k"], k], dim=2)  # (N, heads, t + 1, D / heads)
            v = torch.cat([state[f"{prefix}v"], v], dim=2)
        y = self._merge(F.scaled_dot_product_attention(q, k, v))
        return x + self.dropout(y), {f"{prefix}k": k, f"{prefix}v": v}


class TransformerDecoder(nn.Module):
    """Token embedding + positions -> N `DecoderBlock`s -> LayerNorm -> vocabulary logits.

    Args:
        vocab_size: V, including the reserved ids (0 blank/pad, 1 eos/sos, 2 unk).
        dim: model width.
        layers: number of blocks.
        heads: self-attention heads.
        ff_mult: feed-forward width multiple.
        memory_dim: encoder output size; projected to `dim` when it differs.
        make_cross: builds one block's cross-attention for (dim, dim) queries and frames.
        dropout: on embeddings and sub-layer outputs.
        alignment_layer: the block whose cross-attention is the decoder's alignment.
        positions: "absolute" sinusoids added to the embeddings, or "rotary" (RoPE) rotations
            of the self-attention's queries and keys.

    Example:
        >>> from asrkit.model.attention.multihead import MultiHeadAttention
        >>> dec = TransformerDecoder(10, 16, 2, 2, 2, 24, lambda: MultiHeadAttention(16, 16, 16, 2))
        >>> mem = dec.prepare(torch.randn(2, 7, 24), torch.tensor([7, 4]))
        >>> out = dec(mem, torch.ones(2, 3, dtype=torch.long), "eval")
        >>> tuple(out.logits.shape), tuple(out.weights.shape)
        ((2, 3, 10), (2, 3, 7))
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        layers: int,
        heads: int,
        ff_mult: int,
        memory_dim: int,
        make_cross: Callable[[], Attention],
        dropout: float = 0.0,
        alignment_layer: int = -1,
        positions: str = "absolute",
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.rotary = positions == "rotary"
        self.head_dim = dim // heads
        self.memory_proj = nn.Linear(memory_dim, dim) if memory_dim != dim else None
        self.blocks = nn.ModuleList(
            DecoderBlock(dim, heads, ff_mult, dropout, make_cross()) for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, vocab_size)
        self.dropout = Dropout(dropout)
        self.dim = dim
        self.alignment_layer = alignment_layer % layers
        self.attention = self.blocks[self.alignment_layer].cross  # what the alignment comes from

    @property
    def alignment_block(self) -> str:
        """The block the alignment comes from, in words ("decoder block 3 of 3")."""
        return f"decoder block {self.alignment_layer + 1} of {len(self.blocks)}"

    @property
    def alignment_source(self) -> str:
        """Which weights the decoder's alignment is, in words (plot titles, reports)."""
        heads = getattr(self.attention, "heads", 1)
        block = self.alignment_block
        return f"{block}, mean of {heads} heads" if heads > 1 else block

    def prepare(self, memory: Tensor, lengths: Tensor) -> LayerMemories:
        """Every block's cross-attention memory of encoder output (B, T, memory_dim), (B,)."""
        if self.memory_proj is not None:
            memory = self.memory_proj(memory)
        return LayerMemories(tuple(block.cross.prepare(memory, lengths) for block in self.blocks))

    def initial_state(self, mem: LayerMemories) -> State:
        """Each block's cross-attention initial state; the self-attention caches start empty."""
        state: State = {}
        for i, (block, layer_mem) in enumerate(zip(self.blocks, mem.layers, strict=True)):
            for key, value in block.cross.initial_state(layer_mem).items():
                state[f"l{i}.att.{key}"] = value
        return state

    def auxiliary_loss(self, log_prob_sum: Tensor, entropy_sum: Tensor, reward: Tensor) -> Tensor:
        """No cross-attention kind it holds samples (stochastic hard attention is LSTM-only)."""
        return log_prob_sum.new_zeros(())

    def _embed(self, tokens: Tensor, start: int) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """(N, U) tokens at positions start .. start + U - 1 -> (N, U, dim), and the rotary
        tables of those positions (None with absolute positions)."""
        steps = tokens.shape[1]
        # nn.Embedding starts at N(0, 1) per channel, the scale of the positions' sines: no
        # sqrt(dim) factor (Vaswani et al. scale embeddings initialised at N(0, 1 / dim)).
        x = self.embed(tokens)
        if self.rotary:
            return self.dropout(x), rotary_tables(steps, self.head_dim, tokens.device, start)
        return self.dropout(x + sinusoidal_positions(steps, self.dim, tokens.device, start)), None

    def step(
        self,
        prev_tokens: Tensor,
        state: State,
        mem: LayerMemories,
        mode: Mode,
        window: AttentionWindow | None = None,
    ) -> SpellerStep:
        """One output step for every row: prev_tokens (N,) -> logits (N, V), weights (N, T').

        `window` (global kinds, decoding only) restricts every block's frames to the window
        around the previous step's alignment peak, which the state then carries as "peak".
        """
        start = state["l0.k"].shape[2] if "l0.k" in state else 0
        x, rotary = self._embed(prev_tokens.unsqueeze(1), start)  # (N, 1, dim)
        new_state: State = {}
        outputs: list[AttentionOutput] = []
        for i, (block, layer_mem) in enumerate(zip(self.blocks, mem.layers, strict=True)):
            x, cache = block.self_attend_step(x, state, f"l{i}.", rotary)
            new_state.update(cache)
            if window is not None and "peak" in state:
                layer_mem = window.restrict(layer_mem, state["peak"])
            prefix = f"l{i}.att."
            att_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            att = block.cross.step(block.cross_norm(x[:, 0]), layer_mem, att_state, mode)
            new_state.update({prefix + k: v for k, v in att.state.items()})
            x = x + block.dropout(att.context.unsqueeze(1))
            x = x + block.ff(x)
            outputs.append(att)
        chosen = outputs[self.alignment_layer]
        if window is not None:
            new_state["peak"] = chosen.weights.argmax(dim=1)
        logits = self.output(self.final_norm(x[:, 0]))
        return SpellerStep(logits, chosen.weights, new_state)

    def forward(
        self,
        mem: LayerMemories,
        tokens_in: Tensor,
        mode: Mode,
        sampling_prob: float = 0.0,
        steps_mask: Tensor | None = None,
    ) -> SpellerOutput:
        """All U+1 positions with teacher forcing (or two-pass scheduled sampling).

        Args:
            mem: from `prepare`, batch B.
            tokens_in: (B, U+1) long, EOS_ID (as <sos>) followed by the reference tokens.
            mode: "train" or "eval", passed to the cross-attention.
            sampling_prob: probability of reading the first pass's prediction instead of the
                reference at each position after the first.
            steps_mask: unused (no kind here has per-step sums to mask); kept for the speller's
                signature.

        Returns:
            SpellerOutput with logits (B, U+1, V), weights (B, U+1, T') and head_weights
            (B, H, U+1, T') of the alignment block.
        """
        if sampling_prob > 0.0:
            with torch.no_grad():
                predicted = self._teacher_forced(mem, tokens_in, mode).logits.argmax(dim=-1)
            sampled = torch.rand(tokens_in.shape, device=tokens_in.device) < sampling_prob
            sampled[:, 0] = False  # <sos> is never replaced
            shifted = torch.cat([tokens_in[:, :1], predicted[:, :-1]], dim=1)
            tokens_in = torch.where(sampled, shifted, tokens_in)
        return self._teacher_forced(mem, tokens_in, mode)

    def _teacher_forced(self, mem: LayerMemories, tokens_in: Tensor, mode: Mode) -> SpellerOutput:
        batch = tokens_in.shape[0]
        x, rotary = self._embed(tokens_in, 0)  # (B, U+1, dim)
        weights = head_weights = None
        for i, (block, layer_mem) in enumerate(zip(self.blocks, mem.layers, strict=True)):
            x = block.self_attend(x, rotary)
            context, layer_weights, layer_heads = _cross_all(block, x, layer_mem, mode)
            if i == self.alignment_layer:
                weights, head_weights = layer_weights, layer_heads
            x = x + block.dropout(context)
            x = x + block.ff(x)
        assert weights is not None
        zeros = x.new_zeros(batch)
        logits = self.output(self.final_norm(x))
        return SpellerOutput(logits, weights, zeros, zeros, head_weights=head_weights)


def _cross_all(
    block: DecoderBlock, x: Tensor, mem: AttendMemory, mode: Mode
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Cross-attention of every position of x (B, U+1, D): contexts (B, U+1, D), weights
    (B, U+1, T') and head weights (B, H, U+1, T') (None for a single-head kind)."""
    batch, steps, _ = x.shape
    queries = block.cross_norm(x)
    if block.cross.stateless:
        att = block.cross.step(queries.flatten(0, 1), mem.shared(steps), {}, mode)
        heads = att.head_weights
        if heads is not None:
            heads = heads.view(batch, steps, *heads.shape[1:]).transpose(1, 2)
        return att.context.view(batch, steps, -1), att.weights.view(batch, steps, -1), heads
    state = block.cross.initial_state(mem)
    outs = []
    for i in range(steps):
        att = block.cross.step(queries[:, i], mem, state, mode)
        state = att.state
        outs.append(att)
    contexts = torch.stack([a.context for a in outs], dim=1)
    weights = torch.stack([a.weights for a in outs], dim=1)
    heads = None
    if outs[0].head_weights is not None:
        heads = torch.stack([a.head_weights for a in outs], dim=2)  # type: ignore[misc]
    return contexts, weights, heads


__all__ = ["DecoderBlock", "LayerMemories", "TransformerDecoder"]
