"""G11: every attention kind trains one LAS step and decodes greedily through the same speller."""

from __future__ import annotations

import pytest
import torch

from asrkit.model.attention import REGISTRY

testing = pytest.importorskip("asrkit.testing")
greedy = pytest.importorskip("asrkit.decoding.greedy")
options = pytest.importorskip("asrkit.decoding.options")


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_las_trains_and_decodes_with_every_kind(kind: str) -> None:
    model = testing.tiny_model(attention=kind)
    batch = testing.dummy_batch()
    model.train()
    loss, stats = model(batch)
    loss.backward()
    assert torch.isfinite(loss) and stats["tokens"] > 0
    grads = [p.grad for p in model.speller.attention.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    model.eval()
    opts = options.DecodeOptions.from_config(testing.tiny_config(kind).decode)
    hyps = greedy.greedy_search(model, batch.feats, batch.feat_lengths, opts)
    assert len(hyps) == len(batch.ids)
    for hyp in hyps:
        assert hyp.attention.shape[0] == len(hyp.tokens) + 1
        assert torch.isfinite(hyp.attention).all()
