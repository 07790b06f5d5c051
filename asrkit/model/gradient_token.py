"""A source's gradient left aside by every step of a loop and handed over once, after them.

A decoder loop reads the same tensor (attention memory, LSTM weights) at every step. Plain
autograd gives every step's backward a full-size gradient of that tensor and adds it to the
running sum. Instead, each step's backward can leave its share aside (in a buffer or a list)
and one `collect()` after the last step turns it into the source's gradient. The order is
autograd's own: every such step takes the empty token as an input, so the token's backward,
which calls `collect`, runs only once every step that reached the loss has run its own.

Users: `attention/gradient_sink.py` (window reads of local attention) and `deferred_lstm.py`
(the speller's LSTM weights).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class _Token(torch.autograd.Function):
    """Empty tensor from the source; its backward returns `collect()` as the source's gradient."""

    @staticmethod
    def forward(ctx: Any, source: Tensor, collect: Callable[[], Tensor | None]) -> Tensor:
        ctx.collect = collect
        return source.new_empty(0)

    @staticmethod
    def backward(ctx: Any, _: Tensor) -> tuple[Tensor | None, None]:
        return ctx.collect(), None


def gradient_token(source: Tensor, collect: Callable[[], Tensor | None]) -> Tensor:
    """An empty token tied to `source` (which requires grad).

    Pass it as an input to every op whose backward leaves its share of the source's gradient
    aside (and returns `token_grad` for it); `collect()` must then return the sum of those
    shares, or None, and leave the store empty, so a second backward through the same graph
    (retain_graph, gradcheck) sums afresh.
    """
    return _Token.apply(source, collect)


def token_grad(grad: Tensor) -> Tensor:
    """The gradient an op returns for the token it took (empty: the token carries no values)."""
    return grad.new_zeros(0)
