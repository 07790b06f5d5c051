"""The speller without input feeding: its fused teacher-forced pass equals the step loop."""

from __future__ import annotations

import pytest
import torch
from decoding_support import assert_batched_beam_equals_alone, assert_beam_one_equals_greedy

from asrkit.decoding import DecodeOptions
from asrkit.model.attention import REGISTRY
from asrkit.model.las import LAS, decoder_io
from asrkit.testing import dummy_batch, step_by_step, tiny_config

STATELESS = sorted(k for k, cls in REGISTRY.items() if getattr(cls, "stateless", False))


def no_feeding_model(kind: str, layers: int = 2) -> LAS:
    torch.manual_seed(0)
    cfg = tiny_config(kind, speller__input_feeding=False, speller__layers=layers)
    return LAS(cfg, vocab_size=12).double()


def test_the_stateless_kinds_are_the_content_only_ones() -> None:
    assert STATELESS == ["dot", "general", "multihead"]


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_no_feeding_pass_equals_the_step_loop(kind: str) -> None:
    """Same logits, weights and parameter gradients as one `step` per output token, for
    every kind: all at once (stateless kinds) or a loop of attention steps only."""
    model, batch = no_feeding_model(kind), dummy_batch(4)
    tokens_in, _ = decoder_io(batch.tokens, batch.token_lengths)
    probe = torch.randn(*tokens_in.shape, 12, dtype=torch.float64)

    def run(reference: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        torch.manual_seed(1)  # the same noise / samples for stochastic kinds
        enc, enc_lens = model.encode(batch.feats.double(), batch.feat_lengths)
        mem = model.speller.attention.prepare(enc, enc_lens)
        if reference:
            logits, weights = step_by_step(model, mem, tokens_in, "train")
        else:
            out = model.speller(mem, tokens_in, "train")
            logits, weights = out.logits, out.weights
        (logits * probe).sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return logits.detach(), weights.detach(), grads

    fast, loop = run(reference=False), run(reference=True)
    torch.testing.assert_close(fast[0], loop[0], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(fast[1], loop[1], rtol=1e-9, atol=1e-10)
    assert len(fast[2]) == len(loop[2]) > 0
    for a, b in zip(fast[2], loop[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", STATELESS)
def test_stateless_pass_equals_its_attention_loop(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-call attention of a stateless kind equals its own step loop in the training
    loss and every gradient (the path a non-stateless kind takes)."""
    model, batch = no_feeding_model(kind), dummy_batch(4)
    batch = batch.__class__(**{**vars(batch), "feats": batch.feats.double()})

    def loss_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        loss, _ = model(batch)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    fast = loss_and_grads()
    monkeypatch.setattr(type(model.speller.attention), "stateless", False)
    loop = loss_and_grads()
    torch.testing.assert_close(fast[0], loop[0], rtol=1e-10, atol=1e-12)
    for a, b in zip(fast[1], loop[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_no_feeding_drops_the_context_from_the_lstm_input() -> None:
    model = no_feeding_model("dot", layers=1)
    assert model.speller.cells[0].input_size == tiny_config("dot").speller.embed_dim
    mem = model.speller.attention.prepare(
        torch.zeros(2, 3, model.listener.output_dim).double(), torch.tensor([3, 2])
    )
    assert "context" not in model.speller.initial_state(mem)


@pytest.mark.parametrize("kind", ["dot", "location"])
def test_no_feeding_decodes_batched_as_alone_and_beam_one_as_greedy(kind: str) -> None:
    model, batch = no_feeding_model(kind).float(), dummy_batch(4)
    opts = DecodeOptions(beam=3, ctc_weight=0.3, max_len_ratio=1.0)
    assert_batched_beam_equals_alone(model, batch, opts)
    assert_beam_one_equals_greedy(model, batch)
