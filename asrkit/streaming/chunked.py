"""A chunked self-attention encoder run chunk by chunk, equal to running it on the whole input.

`SelfAttentionEncoder(chunk=C)` masks self-attention by chunks (`chunk_mask`): a frame sees its
own chunk and `left_chunks` chunks before it, and the Conformer convolution is causal. So once
the C frames of a chunk have come out of the front end, every block can compute them from what
it kept of the earlier frames: the self-attention keys and values of the visible chunks and the
last `kernel - 1` inputs of the depthwise convolution (`EncoderBlock.forward_cached`). Memory and
cost per chunk are bounded by the left context, so a stream of any length costs linear time.
The front end keeps the input frames its next output needs (conv1d: one frame of look-ahead per
stride-2 layer; conv2d: the 7 or 11 frames an output reads).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from asrkit.model.encoders import BlockCache, SelfAttentionEncoder
from asrkit.model.layers import rotary_tables, sinusoidal_positions
from asrkit.model.listener import Conv2dSubsampling, ConvSubsampling, PyramidalListener
from asrkit.streaming.encoder import ConvStage, IncrementalListener


class IncrementalEncoder(Protocol):
    """Normalised features in, final encoder frames out, for one utterance."""

    output_dim: int

    def feed(self, feats: Tensor) -> Tensor:
        """(T, D) normalised features -> (T', output_dim) encoder frames now final."""
        ...

    def finish(self) -> Tensor:
        """The encoder frames that waited for the end of the input."""
        ...


def incremental_encoder(listener: torch.nn.Module) -> IncrementalEncoder:
    """The streaming form of a model's listener (it must be in eval mode).

    Raises:
        ValueError: the listener reads the whole utterance (bidirectional LSTM, unchunked
            self-attention).
    """
    if isinstance(listener, PyramidalListener):
        return IncrementalListener(listener)
    if isinstance(listener, SelfAttentionEncoder):
        return IncrementalSelfAttentionEncoder(listener)
    raise ValueError(f"{type(listener).__name__} cannot run incrementally")


def joined(kept: Tensor, x: Tensor) -> Tensor:
    """Frames kept from before, then new frames; either may be an empty (0, 0) placeholder."""
    if not kept.numel():
        return x
    return torch.cat([kept, x]) if x.numel() else kept


class Conv2dStage:
    """`Conv2dSubsampling` over incoming frames (T, D): an output once all its inputs are in."""

    def __init__(self, front: Conv2dSubsampling) -> None:
        self.front = front
        kernel, stride = front.second
        self.field = 2 * kernel + 1  # input frames an output reads (7 or 11)
        self.stride = 2 * stride  # input frames between outputs (4 or 6)
        self.frames = torch.zeros(0, 0)  # inputs from the next output's first on

    def push(self, x: Tensor, final: bool = False) -> Tensor:
        frames = joined(self.frames, x)
        count = (frames.shape[0] - self.field) // self.stride + 1
        if count <= 0:
            self.frames = frames
            return x.new_zeros(0, self.front.proj.out_features)
        used = frames[: (count - 1) * self.stride + self.field]
        y = torch.relu(self.front.conv1(used.unsqueeze(0).unsqueeze(0)))  # (1, C, T1, F1)
        y = torch.relu(self.front.conv2(y))  # (1, C, count, F')
        self.frames = frames[count * self.stride :]
        _, channels, steps, bins = y.shape
        return self.front.proj(y.permute(0, 2, 1, 3).reshape(steps, channels * bins))


class IncrementalSelfAttentionEncoder:
    """A streaming `SelfAttentionEncoder` (chunk > 0) in eval mode, fed features piece by piece.

    Args:
        encoder: the encoder; its blocks are used as they are (no copy).
    """

    def __init__(self, encoder: SelfAttentionEncoder) -> None:
        if encoder.chunk <= 0:
            raise ValueError("a self-attention encoder without a chunk mask reads every frame")
        self.encoder = encoder
        self.front: list[ConvStage | Conv2dStage] = []
        if isinstance(encoder.conv, Conv2dSubsampling):
            self.front.append(Conv2dStage(encoder.conv))
        elif isinstance(encoder.conv, ConvSubsampling):
            self.front += [ConvStage(conv) for conv in encoder.conv.convs]
        self.output_dim = encoder.output_dim
        dim, heads = encoder.output_dim, encoder.output_dim // encoder.head_dim
        self.pending = torch.zeros(0, 0)  # front-end frames waiting for their chunk to fill
        self.offset = 0  # encoder frames emitted so far (the next chunk's first position)
        self.caches = []
        for block in encoder.blocks:
            past = 0 if block.conv is None else block.conv.depthwise.kernel_size[0] - 1
            empty = torch.zeros(1, heads, 0, encoder.head_dim)
            self.caches.append(BlockCache(empty, empty, torch.zeros(1, dim, past)))
        chunks = encoder.left_chunks
        self.kept = None if chunks < 0 else chunks * encoder.chunk  # frames of keys kept

    @torch.no_grad()
    def feed(self, feats: Tensor) -> Tensor:
        """(T, D) normalised features -> (T', output_dim) encoder frames now final."""
        return self._chunks(self._front(feats, final=False), final=False)

    @torch.no_grad()
    def finish(self) -> Tensor:
        """The encoder frames of the last (partial) chunk."""
        return self._chunks(self._front(torch.zeros(0, 0), final=True), final=True)

    def _front(self, x: Tensor, final: bool) -> Tensor:
        for stage in self.front:
            x = stage.push(x, final)
        return x

    def _chunks(self, x: Tensor, final: bool) -> Tensor:
        pending = joined(self.pending, x)
        size = self.encoder.chunk
        outputs = [torch.zeros(0, self.output_dim)]
        while pending.shape[0] >= size or (final and pending.shape[0] > 0):
            outputs.append(self._encode(pending[:size]))
            pending = pending[size:]
        self.pending = pending
        return torch.cat(outputs)

    def _encode(self, frames: Tensor) -> Tensor:
        """One chunk (C, front-end width) -> (C, output_dim), advancing every block's cache."""
        enc, steps = self.encoder, frames.shape[0]
        x = enc.input_proj(frames).unsqueeze(0)  # (1, C, dim)
        rotary = None
        if enc.rotary:
            rotary = rotary_tables(steps, enc.head_dim, x.device, start=self.offset)
        else:
            positions = sinusoidal_positions(steps, enc.output_dim, x.device, start=self.offset)
            x = x + positions.to(x.dtype)
        for number, block in enumerate(enc.blocks):
            x, cache = block.forward_cached(x, self.caches[number], rotary)
            if self.kept is not None:  # the next chunk sees `left_chunks` chunks, this one too
                start = max(cache.keys.shape[2] - self.kept, 0)
                cache = BlockCache(
                    cache.keys[:, :, start:], cache.values[:, :, start:], cache.conv_past
                )
            self.caches[number] = cache
        if enc.final_norm is not None:
            x = enc.final_norm(x)
        self.offset += steps
        return x.squeeze(0)
