"""Self-attention listeners: Transformer and Conformer blocks with time-restricted masks.

Every module takes `(x (B, T, D), lengths (B,))` and returns `(y, y_lengths)`; outputs are zero
on padded frames, and padded keys never reach a valid frame, so batched equals unbatched.

A time-restricted mask lets frame t attend to frames t - left_context .. t + right_context
(-1 = unlimited on that side), as in Povey et al. 2018; it bounds latency and lets attention
focus on local acoustics.

Positions are absolute sinusoids added to the input, or rotary (RoPE) rotations of each
head's queries and keys, so that attention scores depend on frame offsets only.

Why not torchaudio's `Conformer`: its convolution module normalises with BatchNorm (or a
one-group GroupNorm over all frames), which mixes the statistics of the utterances and the
padding of a batch; its depthwise convolution reads padded frames (LayerNorm of a zero frame is
its learned bias, not zero); and it has no positional encoding of its own. Each breaks
batched == unbatched, which every module here is tested for. The blocks below follow the same
paper with LayerNorm in the convolution module and masked padding.

References: Vaswani et al. 2017 (Transformer, pre-norm variant); Gulati et al. 2020
(Conformer: macaron feed-forward, MHSA, convolution module); Su et al. 2021 (RoPE).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asrkit.model.attention.base import valid_mask
from asrkit.model.layers import Dropout, FeedForward, rotary_tables, rotate, sinusoidal_positions
from asrkit.model.listener import Conv2dSubsampling, ConvSubsampling


def attention_mask(lengths: Tensor, steps: int, left: int = -1, right: int = -1) -> Tensor:
    """Self-attention mask (B, T, T), True where query t may attend to key s.

    Keys must be valid and inside the time window. Every query may also attend to itself, so
    padded queries never have an all-False row (which would give NaN); their outputs are
    zeroed afterwards.
    """
    pos = torch.arange(steps, device=lengths.device)
    offset = pos.unsqueeze(0) - pos.unsqueeze(1)  # (T, T): key - query
    window = torch.ones(steps, steps, dtype=torch.bool, device=lengths.device)
    if left >= 0:
        window &= offset >= -left
    if right >= 0:
        window &= offset <= right
    keys = valid_mask(lengths, steps).unsqueeze(1)  # (B, 1, T)
    return (window.unsqueeze(0) & keys) | torch.eye(steps, dtype=torch.bool, device=pos.device)


def chunk_mask(lengths: Tensor, steps: int, chunk: int, left_chunks: int = -1) -> Tensor:
    """Chunked self-attention mask (B, T, T), True where query t may attend to key s.

    Frames are cut into chunks of `chunk` frames; a frame sees every frame of its own chunk
    (its look-ahead is the rest of the chunk) and of the `left_chunks` chunks before it (-1 =
    all), never a later chunk. A streaming encoder can then compute a chunk once its last frame
    has arrived, from a bounded cache of the frames before it (`forward_cached`).
    """
    block = torch.arange(steps, device=lengths.device) // chunk
    offset = block.unsqueeze(0) - block.unsqueeze(1)  # (T, T): key chunk - query chunk
    window = offset <= 0
    if left_chunks >= 0:
        window &= offset >= -left_chunks
    keys = valid_mask(lengths, steps).unsqueeze(1)  # (B, 1, T)
    eye = torch.eye(steps, dtype=torch.bool, device=lengths.device)
    return (window.unsqueeze(0) & keys) | eye


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over a boolean mask (B, T, T), True = may attend.

    The attention probabilities are not dropped out (the outputs are, in the block): dropout
    of a (B, H, T, T) tensor costs more on a CPU than the attention itself.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: Tensor, mask: Tensor, rotary: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """x (B, T, D), mask (B, T, T), rotary cos/sin tables (T, D / heads) -> (B, T, D)."""
        batch, steps, dim = x.shape
        qkv = self.qkv(x).view(batch, steps, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, D/heads)
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.unsqueeze(1))
        return self.out(y.transpose(1, 2).reshape(batch, steps, dim))  # (B, T, D)

    def forward_cached(
        self,
        x: Tensor,
        past_keys: Tensor,
        past_values: Tensor,
        rotary: tuple[Tensor, Tensor] | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One chunk that sees itself and the cached frames before it.

        Args:
            x: (1, C, D) the chunk.
            past_keys, past_values: (1, heads, P, D / heads) of the visible earlier frames
                (rotated already), P may be 0.
            rotary: cos/sin tables (C, D / heads) of the chunk's own positions, or None.

        Returns:
            (1, C, D) outputs, and the keys and values (1, heads, P + C, D / heads).
        """
        batch, steps, dim = x.shape
        qkv = self.qkv(x).view(batch, steps, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        keys, values = torch.cat([past_keys, k], dim=2), torch.cat([past_values, v], dim=2)
        y = F.scaled_dot_product_attention(q, keys, values)
        return self.out(y.transpose(1, 2).reshape(batch, steps, dim)), keys, values


class ConvModule(nn.Module):
    """Conformer convolution module with LayerNorm instead of BatchNorm.

    BatchNorm statistics would mix utterances (and padding) of a batch, breaking
    batched == unbatched; LayerNorm over channels is per frame. A causal module pads
    `kernel - 1` frames on the left only, so frame t reads frames t - kernel + 1 .. t: a
    streaming encoder needs no look-ahead for it.
    """

    def __init__(self, dim: int, kernel: int, dropout: float, causal: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, 1)
        self.causal = causal
        padding = 0 if causal else kernel // 2
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=padding, groups=dim)
        self.conv_norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Conv1d(dim, dim, 1)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, frame_mask: Tensor) -> Tensor:
        """x (B, T, D), frame_mask (B, T, 1) float -> (B, T, D)."""
        y = F.glu(self.pointwise_in(self.norm(x).transpose(1, 2)), dim=1)  # (B, D, T)
        y = y * frame_mask.transpose(1, 2)  # padding must not leak in
        if self.causal:
            y = F.pad(y, (self.depthwise.kernel_size[0] - 1, 0))
        return self.finish(self.depthwise(y))

    def forward_cached(self, x: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        """Causal module on a chunk: x (1, C, D), past (1, D, kernel - 1) inputs of the
        depthwise convolution before the chunk (zeros at the start) -> (1, C, D), new past."""
        y = F.glu(self.pointwise_in(self.norm(x).transpose(1, 2)), dim=1)  # (1, D, C)
        y = torch.cat([past, y], dim=2)
        return self.finish(self.depthwise(y)), y[:, :, y.shape[2] - past.shape[2] :]

    def finish(self, y: Tensor) -> Tensor:
        """Depthwise convolution output (B, D, T) -> module output (B, T, D)."""
        y = F.silu(self.conv_norm(y.transpose(1, 2))).transpose(1, 2)  # (B, D, T)
        return self.dropout(self.pointwise_out(y).transpose(1, 2))  # (B, T, D)


class BlockCache(NamedTuple):
    """What a streaming encoder block keeps of the frames before the current chunk."""

    keys: Tensor  # (1, heads, P, D / heads) self-attention keys of the visible frames, rotated
    values: Tensor  # (1, heads, P, D / heads)
    conv_past: Tensor  # (1, D, kernel - 1) depthwise convolution inputs (Conformer), or (1, D, 0)


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block, or a Conformer block when `conformer` is set."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ff_mult: int,
        dropout: float,
        conformer: bool,
        kernel: int = 15,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.ff_first = FeedForward(dim, ff_mult, dropout) if conformer else None
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads)
        self.conv = ConvModule(dim, kernel, dropout, causal) if conformer else None
        self.ff = FeedForward(dim, ff_mult, dropout)
        self.final_norm = nn.LayerNorm(dim) if conformer else None
        self.dropout = Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        frame_mask: Tensor,
        rotary: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """x (B, T, D), mask (B, T, T) bool, frame_mask (B, T, 1) float -> (B, T, D)."""
        # Conformer uses two half-step (macaron) feed-forwards around attention + convolution.
        half = 0.5 if self.ff_first is not None else 1.0
        if self.ff_first is not None:
            x = x + half * self.ff_first(x)
        x = x + self.dropout(self.attn(self.attn_norm(x), mask, rotary))
        if self.conv is not None:
            x = x + self.conv(x, frame_mask)
        x = x + half * self.ff(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x * frame_mask

    def forward_cached(
        self, x: Tensor, cache: BlockCache, rotary: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, BlockCache]:
        """`forward` on one chunk (1, C, D) of a streaming encoder (chunk mask, causal
        convolution), given what the block kept of the frames before it.

        Returns the chunk's output (1, C, D) and the cache with the chunk appended (the caller
        trims it to the left context).
        """
        half = 0.5 if self.ff_first is not None else 1.0
        if self.ff_first is not None:
            x = x + half * self.ff_first(x)
        y, keys, values = self.attn.forward_cached(
            self.attn_norm(x), cache.keys, cache.values, rotary
        )
        x = x + y
        conv_past = cache.conv_past
        if self.conv is not None:
            y, conv_past = self.conv.forward_cached(x, cache.conv_past)
            x = x + y
        x = x + half * self.ff(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, BlockCache(keys, values, conv_past)


class SelfAttentionEncoder(nn.Module):
    """[conv subsampling] -> linear -> [+ positions] -> N Transformer or Conformer blocks.

    Args:
        input_dim: D (n_mels).
        dim: model width (also the output size).
        layers: number of blocks.
        heads: attention heads.
        ff_mult: feed-forward width multiple.
        conformer: Conformer blocks instead of Transformer blocks.
        conv_subsample: 1, 2, 4 or 8 with the conv1d front end, 4 or 6 with conv2d
            (self-attention at 100 frames/s is expensive).
        left_context: frames to the left each frame may attend to (-1 = all).
        right_context: frames to the right each frame may attend to (-1 = all).
        dropout: inside the blocks.
        frontend: "conv1d" (`ConvSubsampling`) or "conv2d" (`Conv2dSubsampling`).
        conv_channels: conv2d channels (0 = dim).
        positions: "absolute" (sinusoids added to the input) or "rotary".
        kernel: Conformer depthwise convolution width.
        chunk: > 0 makes the encoder streaming: a chunked self-attention mask (`chunk_mask`:
            `chunk` frames per chunk, after subsampling) instead of the time-restricted one,
            and a causal convolution module; `asrkit.streaming` then runs it chunk by chunk.
        left_chunks: streaming only: earlier chunks each frame sees (-1 = all).

    Example:
        >>> enc = SelfAttentionEncoder(80, 32, 2, 4, 2, conformer=True, conv_subsample=4)
        >>> y, n = enc(torch.zeros(2, 17, 80), torch.tensor([17, 9]))
        >>> tuple(y.shape), n.tolist()
        ((2, 5, 32), [5, 3])
    """

    def __init__(
        self,
        input_dim: int,
        dim: int,
        layers: int,
        heads: int,
        ff_mult: int,
        conformer: bool,
        conv_subsample: int = 4,
        left_context: int = -1,
        right_context: int = -1,
        dropout: float = 0.0,
        frontend: str = "conv1d",
        conv_channels: int = 0,
        positions: str = "absolute",
        kernel: int = 15,
        chunk: int = 0,
        left_chunks: int = -1,
    ) -> None:
        super().__init__()
        self.conv: nn.Module | None = None
        if frontend == "conv2d":
            self.conv = Conv2dSubsampling(input_dim, dim, conv_subsample, conv_channels or dim)
        elif conv_subsample > 1:
            self.conv = ConvSubsampling(input_dim, dim, conv_subsample)
        self.input_proj = nn.Linear(dim if self.conv is not None else input_dim, dim)
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, heads, ff_mult, dropout, conformer, kernel, causal=chunk > 0)
            for _ in range(layers)
        )
        self.final_norm = None if conformer else nn.LayerNorm(dim)  # pre-norm needs one at the end
        self.left_context = left_context
        self.right_context = right_context
        self.chunk = chunk
        self.left_chunks = left_chunks
        self.rotary = positions == "rotary"
        self.head_dim = dim // heads
        self.output_dim = dim
        self.subsampling = conv_subsample
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lengths (B,) -> (B, T', dim) zero on padding, lengths (B,)."""
        y, y_lengths, _ = self.forward_with_intermediates(x, lengths, ())
        return y, y_lengths

    def forward_with_intermediates(
        self, x: Tensor, lengths: Tensor, after: tuple[int, ...]
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """`forward`, also returning the output of each block numbered in `after` (1-based),
        each (B, T', dim) zero on padding (intermediate CTC reads them)."""
        x = x * valid_mask(lengths, x.shape[1]).unsqueeze(2).to(x.dtype)
        if self.conv is not None:
            x, lengths = self.conv(x, lengths)
        steps = x.shape[1]
        x = self.input_proj(x)
        rotary = None
        if self.rotary:
            rotary = rotary_tables(steps, self.head_dim, x.device)
        else:
            x = x + sinusoidal_positions(steps, self.output_dim, x.device).to(x.dtype)
        x = self.dropout(x)
        if self.chunk > 0:
            mask = chunk_mask(lengths, steps, self.chunk, self.left_chunks)
        else:
            mask = attention_mask(lengths, steps, self.left_context, self.right_context)
        frame_mask = valid_mask(lengths, steps).unsqueeze(2).to(x.dtype)  # (B, T, 1)
        intermediates = []
        for number, block in enumerate(self.blocks, start=1):
            x = block(x, mask, frame_mask, rotary)
            if number in after:  # pre-norm blocks: normalised as the final output is
                inner = x if self.final_norm is None else self.final_norm(x) * frame_mask
                intermediates.append(inner)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x * frame_mask, lengths, intermediates
