"""Speller invariants for every registered attention kind."""

from __future__ import annotations

import pytest
import torch

from asrkit.model.attention import REGISTRY
from asrkit.model.attention.base import reorder_state
from asrkit.model.las import LAS, decoder_io
from asrkit.testing import dummy_batch, tiny_config

KINDS = sorted(REGISTRY)


def encoded(
    kind: str, batch_size: int = 4, input_feeding: bool = True
) -> tuple[LAS, torch.Tensor, torch.Tensor, object]:
    cfg = tiny_config(kind, speller__input_feeding=input_feeding)
    model = LAS(cfg, vocab_size=12).eval()
    batch = dummy_batch(batch_size)
    with torch.no_grad():
        enc, enc_lens = model.encode(batch.feats, batch.feat_lengths)
    return model, enc, enc_lens, batch


@pytest.mark.parametrize("kind", KINDS)
def test_speller_batched_equals_unbatched(kind: str) -> None:
    model, enc, enc_lens, batch = encoded(kind)
    tokens_in, _ = decoder_io(batch.tokens, batch.token_lengths)
    att = model.speller.attention
    with torch.no_grad():
        full = model.speller(att.prepare(enc, enc_lens), tokens_in, "eval")
        for b in range(enc.shape[0]):
            frames, steps = enc_lens[b].item(), batch.token_lengths[b].item() + 1
            mem = att.prepare(enc[b : b + 1, :frames], enc_lens[b : b + 1])
            alone = model.speller(mem, tokens_in[b : b + 1, :steps], "eval")
            torch.testing.assert_close(full.logits[b, :steps], alone.logits[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(
                full.weights[b, :steps, :frames], alone.weights[0], atol=1e-5, rtol=0
            )
            assert torch.all(full.weights[b, :, frames:] == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_reordered_state_gives_reordered_step(kind: str) -> None:
    """What beam search relies on: reorder (state, memory) == run on the reordered batch."""
    model, enc, enc_lens, batch = encoded(kind)
    speller, att = model.speller, model.speller.attention
    order = torch.tensor([2, 0, 0, 3])
    with torch.no_grad():
        mem = att.prepare(enc, enc_lens)
        state = speller.initial_state(mem)
        for i in range(3):  # advance a few steps so the attention state is non-trivial
            state = speller.step(batch.tokens[:, i], state, mem, "eval").state
        step = speller.step(batch.tokens[:, 3], state, mem, "eval")
        moved = speller.step(
            batch.tokens[order, 3], reorder_state(state, order), mem.index_select(order), "eval"
        )
    torch.testing.assert_close(moved.logits, step.logits[order])
    torch.testing.assert_close(moved.weights, step.weights[order])


@pytest.mark.parametrize("input_feeding", [True, False])  # without: the all-steps pass is off
@pytest.mark.parametrize("kind", KINDS)
def test_sampling_prob_one_feeds_the_previous_argmax(kind: str, input_feeding: bool) -> None:
    model, enc, enc_lens, batch = encoded(kind, input_feeding=input_feeding)
    tokens_in, _ = decoder_io(batch.tokens, batch.token_lengths)
    att = model.speller.attention
    with torch.no_grad():
        sampled = model.speller(att.prepare(enc, enc_lens), tokens_in, "eval", sampling_prob=1.0)
        greedy_in = torch.cat([tokens_in[:, :1], sampled.logits[:, :-1].argmax(-1)], dim=1)
        forced = model.speller(att.prepare(enc, enc_lens), greedy_in, "eval")
    torch.testing.assert_close(sampled.logits, forced.logits)


def test_speller_state_is_batch_first() -> None:
    model, enc, enc_lens, _ = encoded("dot", batch_size=3)
    mem = model.speller.attention.prepare(enc, enc_lens)
    state = model.speller.initial_state(mem)
    assert {"h0", "c0", "context"} <= set(state)
    assert all(v.shape[0] == 3 for v in state.values())
