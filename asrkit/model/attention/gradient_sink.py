"""One gradient buffer for the window reads of a tensor across all decoder steps (training).

Local attention reads a window of 2D+1 frames per decoder step. Through plain `index_select`
or `embedding_bag`, the backward of every step allocates a zero gradient as large as the whole
(B, T, D) memory, scatters the window into it, and autograd adds it to the running sum: three
passes over B x T x D per step, for a read of B x (2D+1) x D. On the mini recipe's local config
these fills, scatters and sums (with the LSTM cells' weight-gradient sums, `deferred_lstm`) took
about a fifth of a training step's CPU time (`benchmarks/RESULTS.md`, session 10).

Here every step's backward adds its window straight into one buffer allocated once per batch
(`index_add_`), and a copy of the buffer becomes the memory's gradient after the last of those
backward calls (`asrkit.model.gradient_token` orders the hand-over).

    sink = GradientSink.of(keys)                  # in `prepare`, when keys require grad
    window = sink.gather(offsets)                 # (R, W, D), like keys.view(-1, D)[offsets]
    context = sink.weighted_sum(offsets, weights)  # (R, D), like embedding_bag(..., "sum")
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from asrkit.model.gradient_token import gradient_token, token_grad


def _hand_over(buffer: Tensor) -> Tensor:
    """The summed gradient, copied; the buffer is cleared so a second backward sums afresh
    (one copy per batch, not per step)."""
    grad = buffer.clone()
    buffer.zero_()
    return grad


class _Gather(torch.autograd.Function):
    """flat (N, D)[offsets] -> (*offsets.shape, D); the backward adds into the buffer."""

    @staticmethod
    def forward(ctx: Any, flat: Tensor, offsets: Tensor, buffer: Tensor, token: Tensor) -> Tensor:
        ctx.save_for_backward(offsets)
        ctx.buffer = buffer
        return flat.index_select(0, offsets.reshape(-1)).view(*offsets.shape, flat.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, None, Tensor]:
        (offsets,) = ctx.saved_tensors
        ctx.buffer.index_add_(0, offsets.reshape(-1), grad.reshape(-1, grad.shape[-1]))
        return None, None, None, token_grad(grad)


class _WeightedSum(torch.autograd.Function):
    """sum_w weights[r, w] * flat[offsets[r, w]] -> (R, D); the flat gradient goes to the buffer."""

    @staticmethod
    def forward(
        ctx: Any, flat: Tensor, offsets: Tensor, weights: Tensor, buffer: Tensor, token: Tensor
    ) -> Tensor:
        ctx.save_for_backward(flat, offsets, weights)
        ctx.buffer = buffer
        return nn.functional.embedding_bag(offsets, flat, per_sample_weights=weights, mode="sum")

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor, None, Tensor]:
        flat, offsets, weights = ctx.saved_tensors
        rows, width = offsets.shape
        window = flat.index_select(0, offsets.reshape(-1)).view(rows, width, -1)  # (R, W, D)
        grad_weights = torch.bmm(window, grad.unsqueeze(2)).squeeze(2)  # (R, W)
        spread = weights.unsqueeze(2) * grad.unsqueeze(1)  # (R, W, D)
        ctx.buffer.index_add_(0, offsets.reshape(-1), spread.reshape(rows * width, -1))
        return None, None, grad_weights, None, token_grad(grad)


@dataclass(frozen=True)
class GradientSink:
    """Window reads of a (B, T, D) tensor whose gradients collect in one (B * T, D) buffer.

    Attributes:
        flat: (B * T, D) the tensor's frames, detached (the gradient goes through `token`).
        buffer: (B * T, D) the gradient of every read so far.
        token: empty tensor tying each read to the source in the autograd graph.
    """

    flat: Tensor
    buffer: Tensor
    token: Tensor

    @classmethod
    def of(cls, x: Tensor) -> GradientSink:
        """A sink for x (B, T, D); use it only while x requires grad."""
        flat = x.detach().reshape(-1, x.shape[2])
        buffer = torch.zeros_like(flat)
        return cls(flat, buffer, gradient_token(x, partial(_hand_over, buffer.view_as(x))))

    def gather(self, offsets: Tensor) -> Tensor:
        """offsets (R, W) long into the B * T frames -> (R, W, D)."""
        return _Gather.apply(self.flat, offsets, self.buffer, self.token)

    def weighted_sum(self, offsets: Tensor, weights: Tensor) -> Tensor:
        """offsets and weights (R, W) -> (R, D), weights in the tensor's dtype."""
        return _WeightedSum.apply(self.flat, offsets, weights, self.buffer, self.token)
