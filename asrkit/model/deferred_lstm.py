"""The speller's LSTM cells for one teacher-forced pass, with weight gradients taken once.

`nn.LSTMCell` run step by step makes every decoder step's backward compute the full weight
gradients (4H x (E + D) and 4H x H, from a batch of only B rows) and add them to the running
sums: per step, two thin matrix products and two passes over every weight, whatever B is. Here
each step's backward only keeps its gate gradient and its input; after the last step the weight
gradient is one matrix product over all U x B rows (`asrkit.model.gradient_token` orders the
hand-over). The input and recurrent products are also fused into one: gates = [x; h] W^T + b
with W = [W_ih W_hh].

The arithmetic is nn.LSTMCell's (gate order i, f, g, o; c' = s(f) c + s(i) tanh(g),
h' = s(o) tanh(c')) up to float rounding; the parameters stay those of `nn.LSTMCell`, so
checkpoints and decoding (which runs the plain cells) are unchanged.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from asrkit.model.gradient_token import gradient_token, token_grad


def _weight_gradient(stash: list[tuple[Tensor, Tensor]]) -> Tensor | None:
    """sum_t dgates_t^T inputs_t in one product; the stash is emptied so a second backward
    through the same graph collects afresh."""
    if not stash:
        return None
    grads, inputs = zip(*stash, strict=True)
    stash.clear()
    return torch.cat(grads).t().mm(torch.cat(inputs))


class _Gates(torch.autograd.Function):
    """inputs (B, I) W^T (4H, I) -> (B, 4H); the weight's gradient is left in the stash."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: Tensor,
        weight: Tensor,
        stash: list[tuple[Tensor, Tensor]],
        token: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(inputs, weight)
        ctx.stash = stash
        return inputs.mm(weight.t())

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, Tensor]:
        inputs, weight = ctx.saved_tensors
        ctx.stash.append((grad, inputs))
        return grad.mm(weight), None, None, token_grad(grad)


class DeferredLSTMCells:
    """Stacked LSTM cells for one pass, sharing `nn.LSTMCell` parameters.

    Args:
        cells: the speller's cells; build this once per teacher-forced pass (the weights are
            concatenated once and the gradient stashes belong to this pass).

    Example:
        >>> cells = nn.ModuleList([nn.LSTMCell(3, 4)])
        >>> h, c = DeferredLSTMCells(cells).step(0, torch.zeros(2, 3), torch.zeros(2, 4),
        ...                                      torch.zeros(2, 4))
        >>> tuple(h.shape)
        (2, 4)
    """

    def __init__(self, cells: nn.ModuleList) -> None:
        self.layers = []
        for cell in cells:
            weight = torch.cat([cell.weight_ih, cell.weight_hh], dim=1)  # (4H, I + H)
            bias = cell.bias_ih + cell.bias_hh
            stash: list[tuple[Tensor, Tensor]] = []
            token = gradient_token(weight, partial(_weight_gradient, stash))
            self.layers.append((weight, bias, stash, token))

    @staticmethod
    def wanted(cells: nn.ModuleList) -> bool:
        """Worth it only when the weights get gradients (training), never when decoding; not
        under autocast (mixed precision on a GPU keeps the plain cells and their casts)."""
        params = list(cells.parameters())
        if not params or not torch.is_grad_enabled():
            return False
        if torch.is_autocast_enabled(params[0].device.type):
            return False
        return any(p.requires_grad for p in params)

    def step(self, layer: int, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """One step of cell `layer`: x (B, I), h and c (B, H) -> new h, c (B, H)."""
        weight, bias, stash, token = self.layers[layer]
        gates = _Gates.apply(torch.cat([x, h], dim=1), weight, stash, token) + bias
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
