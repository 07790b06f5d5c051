"""The speller's teacher-forced pass takes its LSTM weight gradients once per pass
(`asrkit.model.deferred_lstm`): it must equal running `nn.LSTMCell` step by step."""

from __future__ import annotations

import pytest
import torch

from asrkit.model.deferred_lstm import DeferredLSTMCells
from asrkit.model.las import LAS
from asrkit.testing import dummy_batch, tiny_config


def loss_and_gradients(model: LAS, deferred: bool, monkeypatch: pytest.MonkeyPatch) -> list:
    """The training loss of a fixed batch and the gradient of every parameter."""
    monkeypatch.setattr(DeferredLSTMCells, "wanted", staticmethod(lambda cells: deferred))
    model.zero_grad()
    torch.manual_seed(1)  # monotonic attention draws pre-sigmoid noise in training
    batch = dummy_batch(3)
    batch = type(batch)(**{**vars(batch), "feats": batch.feats.double()})
    loss, _ = model(batch)
    loss.backward()
    return [loss.detach()] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["dot", "local-m", "monotonic"])
def test_deferred_cells_equal_lstm_cells(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loss and every parameter gradient (two stacked cells, dropout off, float64)."""
    torch.manual_seed(0)
    cfg = tiny_config(kind, speller__layers=2, speller__dropout=0.0, listener__dropout=0.0)
    model = LAS(cfg, 12).double()
    plain = loss_and_gradients(model, deferred=False, monkeypatch=monkeypatch)
    deferred = loss_and_gradients(model, deferred=True, monkeypatch=monkeypatch)
    for a, b in zip(deferred, plain, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    cell_grads = [p.grad for p in model.speller.cells.parameters()]
    assert all(float(g.abs().sum()) > 0 for g in cell_grads)


def test_deferred_cells_only_when_training() -> None:
    cells = torch.nn.ModuleList([torch.nn.LSTMCell(3, 4)])
    assert DeferredLSTMCells.wanted(cells)
    with torch.no_grad():
        assert not DeferredLSTMCells.wanted(cells)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not DeferredLSTMCells.wanted(cells)
    cells.requires_grad_(False)
    assert not DeferredLSTMCells.wanted(cells)


def test_second_backward_through_one_pass_sums_afresh() -> None:
    """retain_graph: each backward hands over that pass's gradient, not a running total."""
    torch.manual_seed(0)
    cells = torch.nn.ModuleList([torch.nn.LSTMCell(3, 4)]).double()
    deferred = DeferredLSTMCells(cells)
    h = c = torch.zeros(2, 4, dtype=torch.float64)
    for x in torch.randn(5, 2, 3, dtype=torch.float64):
        h, c = deferred.step(0, x, h, c)
    first = torch.autograd.grad(h.sum(), cells[0].weight_ih, retain_graph=True)[0]
    second = torch.autograd.grad(h.sum(), cells[0].weight_ih)[0]
    torch.testing.assert_close(first, second, atol=0, rtol=0)
