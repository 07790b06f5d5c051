"""Transformer decoder with pluggable cross-attention, Conformer front ends, intermediate CTC.

Invariants: cached incremental decoding equals the teacher-forced pass step by step, batched
equals unbatched for every cross-attention kind, padding gets exactly zero weight in every
head, beam 1 equals greedy, multihead monotonic heads follow their recursive definition and
their hard scans never move back; and the configuration errors a user can make.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from decoding_support import assert_batched_beam_equals_alone, assert_beam_one_equals_greedy

from asrkit.config import AttentionConfig, ConfigError, apply_overrides
from asrkit.decoding import DecodeOptions, beam_search
from asrkit.decoding.beam import ensemble_beam_search
from asrkit.io import UserError
from asrkit.model.attention import CROSS_KINDS
from asrkit.model.attention.base import valid_mask
from asrkit.model.attention.headwise import HeadwiseAttention
from asrkit.model.attention.local import LocalMAttention
from asrkit.model.attention.monotonic import (
    MonotonicAttention,
    expected_alignment_recursive,
    item_energies,
)
from asrkit.model.encoders import SelfAttentionEncoder
from asrkit.model.las import LAS, decoder_io
from asrkit.model.layers import Dropout
from asrkit.model.listener import Conv2dSubsampling
from asrkit.testing import dummy_batch, step_by_step, tiny_model, tiny_transformer_config

KINDS = list(CROSS_KINDS)


def tiny(kind: str, seed: int = 0, **overrides: object) -> LAS:
    torch.manual_seed(seed)
    model = LAS(tiny_transformer_config(kind, **overrides), 12)
    return model.eval()


@pytest.mark.parametrize("positions", ["absolute", "rotary"])
@pytest.mark.parametrize("kind", KINDS)
def test_cached_incremental_decoding_equals_the_teacher_forced_pass(
    kind: str, positions: str
) -> None:
    model, batch = tiny(kind, decoder__positions=positions), dummy_batch(batch_size=3)
    tokens_in, _ = decoder_io(batch.tokens, batch.token_lengths)
    with torch.no_grad():
        full = model.teacher_forced(batch)
        enc, enc_lengths = model.encode(batch.feats, batch.feat_lengths)
        logits, weights = step_by_step(model, model.speller.prepare(enc, enc_lengths), tokens_in)
    torch.testing.assert_close(logits, full.logits, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(weights, full.weights, atol=2e-6, rtol=1e-5)
    # The cache holds keys and values of every past step and nothing per step grows otherwise.
    enc, lengths = model.encode(batch.feats, batch.feat_lengths)
    mem = model.speller.prepare(enc, lengths)
    state = model.speller.initial_state(mem)
    for _ in range(3):
        state = model.speller.step(tokens_in[:, 0], state, mem, "eval").state
    assert state["l1.k"].shape[:3] == (3, 2, 3)  # (rows, heads, steps so far)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_teacher_forced_pass_equals_each_utterance_alone(kind: str) -> None:
    model, batch = tiny(kind), dummy_batch(batch_size=3)
    with torch.no_grad():
        full = model.teacher_forced(batch)
        _, enc_lengths = model.encode(batch.feats, batch.feat_lengths)
        for b in range(3):
            frames, tokens = int(batch.feat_lengths[b]), int(batch.token_lengths[b])
            alone = dataclasses.replace(
                batch,
                feats=batch.feats[b : b + 1, :frames],
                feat_lengths=batch.feat_lengths[b : b + 1],
                tokens=batch.tokens[b : b + 1, :tokens],
                token_lengths=batch.token_lengths[b : b + 1],
            )
            single = model.teacher_forced(alone)
            steps, valid = tokens + 1, int(enc_lengths[b])
            torch.testing.assert_close(full.logits[b, :steps], single.logits[0], atol=2e-5, rtol=0)
            torch.testing.assert_close(
                full.weights[b, :steps, :valid], single.weights[0, :, :valid], atol=2e-6, rtol=0
            )


@pytest.mark.parametrize("kind", KINDS)
def test_padding_gets_zero_weight_in_every_head(kind: str) -> None:
    model, batch = tiny(kind), dummy_batch(batch_size=3)
    with torch.no_grad():
        out = model.teacher_forced(batch)
        _, enc_lengths = model.encode(batch.feats, batch.feat_lengths)
    assert out.head_weights is not None and out.head_weights.shape[1] == 2
    frames = valid_mask(enc_lengths, out.weights.shape[2])  # (B, T')
    assert (out.weights.masked_select(~frames[:, None, :]) == 0).all()
    assert (out.head_weights.masked_select(~frames[:, None, None, :]) == 0).all()
    torch.testing.assert_close(out.head_weights.mean(1), out.weights)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_beam_search_equals_one_utterance_at_a_time(kind: str) -> None:
    opts = DecodeOptions(beam=3, ctc_weight=0.3, max_len_ratio=1.0)
    assert_batched_beam_equals_alone(tiny(kind), dummy_batch(batch_size=4), opts)


@pytest.mark.parametrize("kind", ["multihead", "monotonic"])
def test_beam_one_equals_greedy(kind: str) -> None:
    assert_beam_one_equals_greedy(tiny(kind), dummy_batch(batch_size=4))


def test_ensembles_take_transformer_members_twice_or_beside_an_lstm() -> None:
    transformer, lstm = tiny("monotonic", attention__g_init=2.0), tiny_model("location").eval()
    batch = dummy_batch(batch_size=3)
    opts = DecodeOptions(beam=3, ctc_weight=0.3, max_len_ratio=1.0)
    alone = beam_search(transformer, batch.feats, batch.feat_lengths, opts)
    feats = [batch.feats] * 2
    twice = ensemble_beam_search([transformer, transformer], feats, batch.feat_lengths, opts)
    for a, t in zip(alone, twice, strict=True):
        assert a.tokens == t.tokens and a.score == t.score
    mixed = ensemble_beam_search([transformer, lstm], feats, batch.feat_lengths, opts)
    for i, hyp in enumerate(mixed):
        n = int(batch.feat_lengths[i])
        x = batch.feats[i : i + 1, :n]
        single = ensemble_beam_search(
            [transformer, lstm], [x, x], batch.feat_lengths[i : i + 1], opts
        )
        assert hyp.tokens == single[0].tokens


def test_attention_window_applies_to_the_global_cross_attention() -> None:
    model, batch = tiny("multihead"), dummy_batch(batch_size=2)
    opts = DecodeOptions(beam=2, max_len_ratio=1.0, att_window=2, att_window_back=1)
    for hyp in beam_search(model, batch.feats, batch.feat_lengths, opts):
        peaks = hyp.attention.argmax(dim=1)
        support = hyp.attention > 0
        for i in range(1, hyp.attention.shape[0]):
            frames = support[i].nonzero().squeeze(1)
            assert frames.min() >= peaks[i - 1] - 1 and frames.max() <= peaks[i - 1] + 2


def headwise_monotonic(heads: int = 3) -> HeadwiseAttention:
    torch.manual_seed(0)
    cfg = AttentionConfig(kind="monotonic", dim=6 * heads, heads=heads, noise_std=0.0, g_init=2.0)
    return HeadwiseAttention(MonotonicAttention, cfg, query_dim=4 * heads, memory_dim=5 * heads)


def test_mma_heads_expected_alignment_equals_the_recursive_definition() -> None:
    att = headwise_monotonic().double()
    memory, lengths = torch.randn(2, 9, 15, dtype=torch.float64), torch.tensor([9, 6])
    mem = att.prepare(memory, lengths)
    state = att.initial_state(mem)
    reference = state["alpha"].clone()  # (B, H, T): each head starts at frame 0
    for _ in range(4):
        query = torch.randn(2, 12, dtype=torch.float64)
        out = att.step(query, mem, state, "train")
        # By hand: every head's query and frames through its own projections, then p = sigmoid(e).
        q = att.query_proj(query).view(2, 3, 4)
        for h in range(3):
            values = att.value_proj(memory).view(2, 9, 3, 5)[:, :, h]
            keys = att.inner.energy.key_proj(values)
            p = torch.sigmoid(item_energies(att.inner.energy, keys, q[:, h]))
            p = p.masked_fill(~valid_mask(lengths, 9), 0.0)
            reference[:, h] = expected_alignment_recursive(p, reference[:, h])
        torch.testing.assert_close(out.head_weights, reference, atol=1e-10, rtol=0)
        state = out.state


def test_mma_hard_scan_never_moves_back_and_stops_at_each_items_end() -> None:
    att = headwise_monotonic().eval()
    mem = att.prepare(torch.randn(2, 12, 15), torch.tensor([12, 7]))
    state = att.initial_state(mem)
    pointers = [state["pointer"]]
    with torch.no_grad():
        for _ in range(15):
            out = att.step(torch.randn(2, 12) * 3, mem, state, "eval")
            state = out.state
            pointers.append(state["pointer"])
            assert (out.head_weights[1, :, 7:] == 0).all()
    trail = torch.stack(pointers)  # (steps, B, H)
    assert (trail[1:] >= trail[:-1]).all(), "a head's pointer moved back"
    assert (trail[:, 1] <= 7).all() and (trail[:, 0] <= 12).all()


def test_one_head_with_identity_projections_equals_the_single_head_kind() -> None:
    torch.manual_seed(0)
    cfg = AttentionConfig(kind="local-m", dim=8, heads=1, window=2)
    wrapped = HeadwiseAttention(LocalMAttention, cfg, query_dim=6, memory_dim=6)
    for layer in (wrapped.query_proj, wrapped.value_proj, wrapped.out_proj):
        torch.nn.init.eye_(layer.weight)
    memory, lengths = torch.randn(2, 9, 6), torch.tensor([9, 5])
    mem, inner_mem = wrapped.prepare(memory, lengths), wrapped.inner.prepare(memory, lengths)
    state, inner_state = wrapped.initial_state(mem), wrapped.inner.initial_state(inner_mem)
    for _ in range(4):
        query = torch.randn(2, 6)
        out = wrapped.step(query, mem, state, "eval")
        alone = wrapped.inner.step(query, inner_mem, inner_state, "eval")
        torch.testing.assert_close(out.context, alone.context)
        torch.testing.assert_close(out.weights, alone.weights)
        state, inner_state = out.state, alone.state


@pytest.mark.parametrize("factor", [4, 6])
def test_conv2d_front_end_lengths_and_batched_equals_unbatched(factor: int) -> None:
    front = Conv2dSubsampling(80, 16, factor, channels=4).eval()
    lengths = [41, 23, 12, 7, 3]
    x = torch.randn(len(lengths), max(lengths), 80)  # garbage on padding on purpose
    with torch.no_grad():
        y, n = front(x, torch.tensor(lengths))
        for b, length in enumerate(lengths):
            alone, alone_n = front(x[b : b + 1, :length], torch.tensor([length]))
            assert alone_n.item() == n[b].item()
            torch.testing.assert_close(y[b, : n[b]], alone[0, : n[b]], atol=1e-6, rtol=0)
            assert (y[b, n[b] :] == 0).all()
    # Unpadded valid convolutions: the factor-4 and factor-6 length formulas.
    kernel, stride = (3, 2) if factor == 4 else (5, 3)
    expected = [max(0, ((length - 3) // 2 + 1 - kernel) // stride + 1) for length in lengths]
    assert n.tolist() == expected


@pytest.mark.parametrize("positions", ["absolute", "rotary"])
def test_conformer_with_rotary_positions_is_batch_invariant(positions: str) -> None:
    enc = SelfAttentionEncoder(
        80,
        16,
        2,
        2,
        2,
        True,
        4,
        dropout=0.0,
        frontend="conv2d",
        conv_channels=4,
        positions=positions,
        kernel=5,
    ).eval()
    lengths = [37, 21, 9]
    x = torch.randn(3, 37, 80)
    with torch.no_grad():
        y, n = enc(x, torch.tensor(lengths))
        for b, length in enumerate(lengths):
            alone, _ = enc(x[b : b + 1, :length], torch.tensor([length]))
            torch.testing.assert_close(y[b, : n[b]], alone[0], atol=1e-5, rtol=0)


def test_rotary_attention_scores_depend_only_on_the_offset() -> None:
    from asrkit.model.layers import rotary_tables, rotate

    cos, sin = rotary_tables(20, 8, torch.device("cpu"))
    q, k = torch.randn(8), torch.randn(8)
    scores = [
        float(rotate(q.expand(20, 8), cos, sin)[i] @ rotate(k.expand(20, 8), cos, sin)[i - 3])
        for i in range(3, 20)
    ]
    assert max(scores) - min(scores) < 1e-4


def test_intermediate_ctc_enters_the_loss() -> None:
    batch = dummy_batch(batch_size=2)
    plain = tiny("multihead", listener__inter_ctc_layers=(1,), model__inter_ctc_weight=0.0)
    mixed = tiny("multihead", listener__inter_ctc_layers=(1,), model__inter_ctc_weight=0.5)
    plain.train(), mixed.train()
    _, plain_stats = plain(batch)
    _, mixed_stats = mixed(batch)
    # Same weights (same seed): the attention loss agrees, the CTC term does not.
    assert plain_stats["att_loss"] == pytest.approx(mixed_stats["att_loss"], abs=1e-6)
    assert abs(plain_stats["ctc_loss"] - mixed_stats["ctc_loss"]) > 1e-3


def test_dropout_keeps_the_expected_value_and_rate() -> None:
    drop = Dropout(0.1)
    y = drop(torch.ones(400_000))
    assert (y == 0).float().mean().item() == pytest.approx(26 / 256, abs=2e-3)
    assert y.mean().item() == pytest.approx(1.0, abs=5e-3)
    assert torch.equal(drop.eval()(torch.ones(5)), torch.ones(5))


def test_bad_decoder_configs_are_one_line_errors() -> None:
    cfg = tiny_transformer_config("global")
    with pytest.raises(ConfigError, match="valid: lstm, transformer"):
        apply_overrides(cfg, ["decoder.kind=rnn"])
    with pytest.raises(UserError, match=r"not supported by the transformer decoder.*local-m"):
        LAS(apply_overrides(cfg, ["attention.kind=location"]), 12)
    with pytest.raises(
        ConfigError, match=r"decoder.dim \(30\) must be a multiple of decoder.heads"
    ):
        LAS(apply_overrides(cfg, ["decoder.dim=30", "decoder.heads=4"]), 12)
    with pytest.raises(ConfigError, match=r"attention.heads \(3\) must divide"):
        LAS(apply_overrides(cfg, ["attention.kind=monotonic", "attention.heads=3"]), 12)
    with pytest.raises(ConfigError, match=r"listener.hidden \(31\) must be a multiple"):
        LAS(apply_overrides(cfg, ["listener.hidden=31"]), 12)
    with pytest.raises(ConfigError, match="conv_subsample must be one of 4, 6"):
        LAS(apply_overrides(cfg, ["listener.conv_subsample=2"]), 12)
