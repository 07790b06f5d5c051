"""LAS forward contract: loss, stats, gradients, targets, CMVN, padding invariance."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.config import ConfigError
from asrkit.model.attention import REGISTRY
from asrkit.model.las import IGNORE, LAS, Batch, decoder_io, guided_attention_loss
from asrkit.testing import dummy_batch, tiny_config, tiny_model
from asrkit.tokenizer import EOS_ID

STATS = {"loss", "att_loss", "aux_loss", "ctc_loss", "guide_loss", "acc", "tokens", "frames"}


def test_decoder_io_places_sos_and_eos() -> None:
    tokens = torch.tensor([[5, 6, 7], [8, 0, 0]])
    tokens_in, targets = decoder_io(tokens, torch.tensor([3, 1]))
    assert tokens_in.tolist() == [[EOS_ID, 5, 6, 7], [EOS_ID, 8, 0, 0]]
    assert targets.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, IGNORE, IGNORE]]


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_forward_gives_finite_loss_and_gradients_everywhere(kind: str) -> None:
    model = tiny_model(kind)
    batch = dummy_batch(4)
    loss, stats = model(batch)
    assert set(stats) >= STATS and all(isinstance(v, float) for v in stats.values())
    # The REINFORCE surrogate of hard attention may be negative; the CE never is.
    assert math.isfinite(stats["loss"]) and stats["att_loss"] > 0
    assert stats["tokens"] == float(batch.token_lengths.sum() + len(batch.ids))  # eos included
    assert stats["frames"] == float(batch.feat_lengths.sum())
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.speller.attention.parameters()) or not list(
        model.speller.attention.parameters()
    )


def test_loss_is_a_weighted_sum_of_attention_and_ctc() -> None:
    model = tiny_model("dot")
    _, stats = model(dummy_batch())
    w = model.ctc_weight
    expected = (1 - w) * (stats["att_loss"] + stats["aux_loss"]) + w * stats["ctc_loss"]
    assert stats["loss"] == pytest.approx(expected, rel=1e-5)


def test_no_ctc_head_without_ctc_weight() -> None:
    model = LAS(tiny_config("dot", ctc_weight=0.0), 12)
    enc, _ = model.encode(torch.randn(1, 16, 80), torch.tensor([16]))
    assert model.ctc is None and model.ctc_log_probs(enc) is None
    assert model(dummy_batch())[1]["ctc_loss"] == 0.0


def test_extra_padding_does_not_change_the_loss() -> None:
    model = tiny_model("dot").eval()  # eval: no dropout; the loss itself is still computed
    batch = dummy_batch(3)
    wider = Batch(
        torch.nn.functional.pad(batch.feats, (0, 0, 0, 13), value=7.0),
        batch.feat_lengths,
        torch.nn.functional.pad(batch.tokens, (0, 4)),
        batch.token_lengths,
        batch.ids,
    )
    _, a = model(batch)
    _, b = model(wider)
    for key in ("loss", "att_loss", "ctc_loss", "acc"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_cmvn_is_applied_inside_encode() -> None:
    model = tiny_model("dot").eval()
    feats, lens = torch.randn(2, 20, 80) * 3 + 4, torch.tensor([20, 20])
    mean, std = torch.full((80,), 4.0), torch.full((80,), 3.0)
    with torch.no_grad():
        plain, _ = model.encode((feats - mean) / std, lens)
        model.set_cmvn(mean, std)
        normalised, _ = model.encode(feats, lens)
    torch.testing.assert_close(plain, normalised)


def test_utterance_cmn_ignores_a_per_utterance_channel_offset_and_padding() -> None:
    # A gain or microphone colouring is an additive per-bin offset in log-mel: with
    # model.utterance_cmn it must not change the encoder output; without it, it must.
    model = LAS(tiny_config("dot", model__utterance_cmn=True), vocab_size=12).eval()
    plain = LAS(tiny_config("dot"), vocab_size=12).eval()
    plain.load_state_dict(model.state_dict())
    feats, lens = torch.randn(2, 30, 80), torch.tensor([30, 22])
    offset = torch.randn(2, 1, 80) * 2.0  # one colouring per utterance
    with torch.no_grad():
        base, _ = model.encode(feats, lens)
        shifted, _ = model.encode(feats + offset, lens)
        alone, _ = model.encode(feats[1:, :22] + offset[1:], lens[1:])
        unnormalised, _ = plain.encode(feats + offset, lens)
    torch.testing.assert_close(shifted, base, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone[0], shifted[1, : alone.shape[1]], atol=1e-5, rtol=1e-4)
    assert (unnormalised - base).abs().max() > 1e-2


def test_guided_attention_loss_is_low_on_the_diagonal_and_ignores_padding() -> None:
    steps, frames = 10, 40
    diagonal = torch.zeros(1, steps, frames)
    diagonal[0, torch.arange(steps), (torch.arange(steps) * 4 + 2)] = 1.0
    stuck = torch.zeros(1, steps, frames)
    stuck[0, :, 5] = 1.0  # every token on one early frame: the pre-alignment failure
    mask, lengths = torch.ones(1, steps, dtype=torch.bool), torch.tensor([frames])
    low = guided_attention_loss(diagonal, mask, lengths, 0.2)
    high = guided_attention_loss(stuck, mask, lengths, 0.2)
    assert float(low) < 0.01 < 0.3 < float(high) < 1.0
    nowhere = torch.zeros(1, steps, frames)  # monotonic attention that stopped nowhere
    assert float(guided_attention_loss(nowhere, mask, lengths, 0.2)) == 1.0
    # Extra padded steps and frames (zero weight, masked) change nothing.
    padded = torch.nn.functional.pad(diagonal, (0, 7, 0, 3), value=0.0)
    padded_mask = torch.nn.functional.pad(mask, (0, 3), value=False)
    torch.testing.assert_close(guided_attention_loss(padded, padded_mask, lengths, 0.2), low)


def test_guide_weight_adds_the_guided_loss_with_gradients_to_the_attention() -> None:
    model = tiny_model("location").eval()
    batch = dummy_batch(2)
    torch.manual_seed(0)
    plain, plain_stats = model(batch)
    torch.manual_seed(0)
    guided, stats = model(batch, guide_weight=2.0)
    assert plain_stats["guide_loss"] == 0.0 and 0.0 < stats["guide_loss"] < 1.0
    assert float((guided - plain).detach()) == pytest.approx(2.0 * stats["guide_loss"], rel=1e-4)
    guided.backward()
    grads = [p.grad for p in model.speller.attention.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_teacher_forced_restores_training_mode_and_shapes() -> None:
    model = tiny_model("dot").train()
    batch = dummy_batch(3)
    out = model.teacher_forced(batch)
    assert model.training
    enc_frames = -(-int(batch.feat_lengths.max()) // model.subsampling)
    assert out.logits.shape == (3, batch.tokens.shape[1] + 1, 12)
    assert out.weights.shape == (3, batch.tokens.shape[1] + 1, enc_frames)


@pytest.mark.parametrize(
    ("overrides", "subsampling"),
    [
        ({}, 4),
        ({"listener__conv_subsample": 4, "listener__layers": 1}, 8),
        ({"listener__kind": "transformer", "listener__conv_subsample": 4}, 4),
        ({"listener__kind": "conformer", "listener__conv_subsample": 2}, 2),
    ],
)
def test_listener_kinds_and_subsampling(overrides: dict[str, object], subsampling: int) -> None:
    model = LAS(tiny_config("dot", **overrides), 12)
    assert model.subsampling == subsampling
    loss, _ = model(dummy_batch())
    loss.backward()


def test_unknown_listener_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"listener\.kind"):
        LAS(tiny_config("dot", listener__kind="gru"), 12)


def test_tiny_config_overrides() -> None:
    cfg = tiny_config("dot", ctc_weight=0.0, speller={"hidden": 8}, listener__hidden=16)
    assert (cfg.model.ctc_weight, cfg.speller.hidden, cfg.listener.hidden) == (0.0, 8, 16)
    with pytest.raises(TypeError, match="ambiguous"):
        tiny_config("dot", hidden=3)


def test_dummy_batch_is_valid() -> None:
    batch = dummy_batch(5, vocab_size=9, seed=3)
    assert batch.feats.shape[0] == 5 and len(set(batch.feat_lengths.tolist())) > 1
    assert batch.feat_lengths.max() == batch.feats.shape[1]
    assert batch.tokens.max() < 9 and batch.tokens.shape[1] == batch.token_lengths.max()
    for b in range(5):
        n = batch.token_lengths[b]
        assert (batch.tokens[b, :n] >= 3).all() and (batch.tokens[b, n:] == 0).all()
        assert (batch.feats[b, batch.feat_lengths[b] :] == 0).all()
