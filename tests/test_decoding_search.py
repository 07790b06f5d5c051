"""Search invariants: batching, beam 1 = greedy, the shared rules, CTC prefix scores, Viterbi."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from decoding_support import assert_beam_one_equals_greedy

from asrkit.decoding import DecodeOptions, beam_search, greedy_search
from asrkit.decoding.constraints import (
    constrain,
    length_limits,
    repeat_blocked,
    repeat_runs,
    update_repeat_runs,
)
from asrkit.decoding.ctc_prefix import (
    LOG_ZERO,
    CTCPrefixScorer,
    logsumexp_first,
)
from asrkit.decoding.timing import ctc_viterbi
from asrkit.io import UserError
from asrkit.model.attention import REGISTRY
from asrkit.model.las import LAS
from asrkit.testing import dummy_batch, tiny_config, tiny_model
from asrkit.tokenizer import BLANK_ID, EOS_ID, CharTokenizer

KINDS = sorted(REGISTRY)


def _single(model, batch, i, opts):
    length = int(batch.feat_lengths[i])
    feats = batch.feats[i : i + 1, :length]
    return beam_search(model, feats, batch.feat_lengths[i : i + 1], opts)[0]


@pytest.mark.parametrize("ctc_window", [0, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_batched_beam_equals_unbatched(kind: str, ctc_window: int) -> None:
    model, batch = tiny_model(kind), dummy_batch(batch_size=4)
    opts = DecodeOptions(beam=4, ctc_weight=0.3, max_len_ratio=1.0, ctc_window=ctc_window)
    batched = beam_search(model, batch.feats, batch.feat_lengths, opts)
    for i, hyp in enumerate(batched):
        alone = _single(model, batch, i, opts)
        assert hyp.tokens == alone.tokens
        assert hyp.score == pytest.approx(alone.score, abs=1e-4)
        assert torch.allclose(hyp.attention, alone.attention, atol=1e-5)
        assert len(hyp.tokens) <= hyp.attention.shape[1]  # CTC: at most one label per frame


@pytest.mark.parametrize("kind", ["location", "monotonic", "multihead"])
def test_beam_one_equals_greedy(kind: str) -> None:
    assert_beam_one_equals_greedy(tiny_model(kind), dummy_batch(batch_size=4))


@pytest.mark.parametrize("option", [{"score": "location"}, {"centre": "median"}])
def test_local_window_options_batched_beam_and_greedy(option: dict[str, str]) -> None:
    """Local-m's location score (previous alignment in the state) and median centre: a
    batched beam equals each utterance alone, and beam 1 equals greedy."""
    torch.manual_seed(0)
    cfg = tiny_config("local-m", **{f"attention__{k}": v for k, v in option.items()})
    model, batch = LAS(cfg, 12), dummy_batch(batch_size=4)
    opts = DecodeOptions(beam=3, ctc_weight=0.3, max_len_ratio=1.0)
    for i, hyp in enumerate(beam_search(model, batch.feats, batch.feat_lengths, opts)):
        alone = _single(model, batch, i, opts)
        assert hyp.tokens == alone.tokens
        assert torch.allclose(hyp.attention, alone.attention, atol=1e-5)
    one = DecodeOptions(beam=1, max_len_ratio=1.0)
    greedy = greedy_search(model, batch.feats, batch.feat_lengths, one)
    for g, b in zip(greedy, beam_search(model, batch.feats, batch.feat_lengths, one), strict=True):
        assert g.tokens == b.tokens
        assert torch.allclose(g.attention, b.attention)


def test_hypothesis_shapes_and_limits() -> None:
    model, batch = tiny_model("location"), dummy_batch(batch_size=3)
    opts = DecodeOptions(beam=3, max_len_ratio=0.5)
    enc_lengths = model.encode(batch.feats, batch.feat_lengths)[1]
    _, max_len = length_limits(enc_lengths, opts)
    for hyp, frames, limit in zip(
        beam_search(model, batch.feats, batch.feat_lengths, opts),
        enc_lengths,
        max_len,
        strict=True,
    ):
        assert len(hyp.tokens) <= int(limit)
        assert hyp.attention.shape == (len(hyp.tokens) + 1, int(frames))
        assert all(0 <= f < int(frames) for f in hyp.token_frames)
        assert BLANK_ID not in hyp.tokens and EOS_ID not in hyp.tokens
        assert len(hyp.token_log_probs) == len(hyp.tokens)


def test_search_restores_training_mode() -> None:
    model, batch = tiny_model("dot"), dummy_batch(batch_size=2)
    model.train()
    greedy_search(model, batch.feats, batch.feat_lengths, DecodeOptions())
    assert model.training


def test_repeat_guard_blocks_back_to_back_ngram() -> None:
    history = torch.tensor([[5, 6, 7, 5, 6], [5, 6, 7, 5, 8]])
    # copies=2: a second "5 6 7" is blocked (cycle 3), and so is repeating 6 at once (cycle 1).
    assert guard(history, 3, copies=2).tolist() == [[6, -1, 7], [8, -1, -1]]
    assert guard(history[:, :4], 3, copies=2)[:, 2].tolist() == [-1, -1]  # too short
    assert guard(history, 0, copies=2).shape == (2, 0)  # disabled


def guard(history: torch.Tensor, max_n: int, copies: int) -> torch.Tensor:
    """The loop guard's blocked tokens, with the counts built token by token."""
    return repeat_blocked(history, repeat_runs(history, max_n), copies)


def reference_repeat_blocked(history: torch.Tensor, max_n: int, copies: int) -> torch.Tensor:
    """One n at a time, straight from the definition (the vectorised guard must equal it)."""
    rows, t = history.shape
    blocked = torch.full((rows, max_n), -1, dtype=torch.long)
    for n in range(1, max_n + 1):
        span = copies * n - 1
        if span > t:
            break
        tail = history[:, t - span :]
        periodic = (tail[:, n:] == tail[:, : span - n]).all(dim=1)
        blocked[:, n - 1] = torch.where(periodic, tail[:, n - 1], blocked[:, n - 1])
    return blocked


@pytest.mark.parametrize("copies", [2, 3, 4])
def test_repeat_guard_equals_the_definition(copies: int) -> None:
    generator = torch.Generator().manual_seed(copies)
    for _ in range(200):
        t = int(torch.randint(0, 40, (1,), generator=generator))
        cycle = torch.randint(
            0, 3, (4, int(torch.randint(1, 6, (1,), generator=generator))), generator=generator
        )
        history = cycle.repeat(1, 40)[:, :t]  # periodic rows, some with a random break
        history[1:, : t // 2] = torch.randint(0, 3, (3, t // 2), generator=generator)
        expected = reference_repeat_blocked(history, 7, copies)
        assert torch.equal(guard(history, 7, copies), expected), history


def test_repeat_guard_reads_only_the_recent_tokens() -> None:
    """Beam search keeps a row's last max_n + 1 tokens only: the counts and the blocked tokens
    built from that window (with the step count) equal those of the whole history."""
    generator, max_n = torch.Generator().manual_seed(7), 5
    history = torch.randint(0, 3, (6, 60), generator=generator)
    history[:3] = torch.tensor([4, 5, 4]).repeat(1, 20)  # loops, so some tokens are blocked
    whole = recent = repeat_runs(history[:, :0], max_n)
    for t in range(1, history.shape[1] + 1):
        window = history[:, max(0, t - max_n - 1) : t]
        whole = update_repeat_runs(whole, history[:, :t])
        recent = update_repeat_runs(recent, window, t)
        assert torch.equal(recent, whole), t
        blocked = repeat_blocked(history[:, :t], whole, copies=3)
        assert torch.equal(repeat_blocked(window, recent, copies=3, step=t), blocked), t
    assert (blocked[:3] >= 0).any()


def test_repeat_guard_stops_a_phrase_loop_but_keeps_real_repeats() -> None:
    """Character units: a looping phrase is cut at its fourth copy; "TWO TWO" is untouched."""
    tok = CharTokenizer.train(["THE WINDOW BEHIND TWO"])
    # Four copies of the 18-token cycle "THE▁WINDOW▁BEHIND▁" but its last token: ▁ is blocked.
    loop = torch.tensor([tok.encode(" ".join(["THE WINDOW BEHIND"] * 4))])
    blocked = set(guard(loop, 40, copies=4).flatten().tolist()) - {-1}
    assert blocked == {tok.pieces.index("▁")}
    assert (guard(loop[:, :-1], 40, copies=4) == -1).all()  # one token earlier: free
    for text in ["TWO TWO TWO", "TWO TWO TW"]:
        history = torch.tensor([tok.encode(text)])
        assert (guard(history, 40, copies=4) == -1).all(), text


def test_constrain_eos_rules() -> None:
    log_probs = torch.log_softmax(torch.tensor([[0.0, 3.0, 0.5, 4.0, 1.0]] * 3), dim=1)
    history = torch.zeros(3, 2, dtype=torch.long) + 4
    min_len, max_len = torch.tensor([0, 3, 0]), torch.tensor([9, 9, 2])
    opts = DecodeOptions(eos_threshold=1.5, repeat_ngram=0)
    out = constrain(log_probs, history, repeat_runs(history, 0), min_len, max_len, opts)
    assert torch.isinf(out[:, BLANK_ID]).all()
    assert math.isfinite(out[0, EOS_ID])  # 1 below the best: allowed
    assert math.isinf(out[1, EOS_ID])  # before the minimum length
    assert out[2].argmax() == EOS_ID and torch.isinf(out[2, 2:]).all()  # forced at max length
    strict_opts = DecodeOptions(eos_threshold=0.5)
    runs = repeat_runs(history, strict_opts.repeat_ngram)
    strict = constrain(log_probs, history, runs, min_len, max_len, strict_opts)
    assert math.isinf(strict[0, EOS_ID])


def _brute_prefix(probs: torch.Tensor, prefix: list[int], complete: bool) -> float:
    """Sum of the probabilities of all paths whose collapse starts with (or equals) prefix."""
    frames, vocab = probs.shape
    total = 0.0
    for path in itertools.product(range(vocab), repeat=frames):
        collapsed = [
            p for i, p in enumerate(path) if p != BLANK_ID and (i == 0 or p != path[i - 1])
        ]
        match = collapsed == prefix if complete else collapsed[: len(prefix)] == prefix
        if match:
            total += math.prod(float(probs[t, p]) for t, p in enumerate(path))
    return total


def test_ctc_prefix_scores_match_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    log_probs = torch.randn(1, 5, 4, generator=gen).log_softmax(-1)  # ids 0 blank, 1 eos, 2-3
    log_probs[..., EOS_ID] = -30.0  # CTC never emits eos
    log_probs = log_probs.log_softmax(-1)
    probs = log_probs[0].exp()
    scorer = CTCPrefixScorer(log_probs, torch.tensor([5]))
    state, prefix = scorer.initial_state(), []
    for label in (2, 2, 3):
        candidates = torch.tensor([[2, 3, EOS_ID]])
        inc, r = scorer.score(state, candidates)
        psi = state.log_psi.unsqueeze(1) + inc
        assert psi[0, 0].exp() == pytest.approx(_brute_prefix(probs, [*prefix, 2], False), rel=1e-4)
        assert psi[0, 1].exp() == pytest.approx(_brute_prefix(probs, [*prefix, 3], False), rel=1e-4)
        assert psi[0, 2].exp() == pytest.approx(_brute_prefix(probs, prefix, True), rel=1e-4)
        col = 0 if label == 2 else 1
        state = scorer.select(
            state, inc, r, torch.tensor([0]), torch.tensor([col]), torch.tensor([label])
        )
        prefix.append(label)


def test_ctc_prefix_padding_invariance() -> None:
    gen = torch.Generator().manual_seed(1)
    log_probs = torch.randn(2, 9, 6, generator=gen).log_softmax(-1)
    candidates = torch.tensor([[2, 3, EOS_ID], [2, 3, EOS_ID]])
    batched = CTCPrefixScorer(log_probs, torch.tensor([9, 6]))
    alone = CTCPrefixScorer(log_probs[1:, :6], torch.tensor([6]))
    inc_b, _ = batched.score(batched.initial_state(), candidates)
    inc_a, _ = alone.score(alone.initial_state(), candidates[1:])
    assert torch.allclose(inc_b[1], inc_a[0], atol=1e-5)


@pytest.mark.parametrize("margin", [0, 2])
def test_ctc_prefix_group_rows_equal_copied_posteriors(margin: int) -> None:
    """K rows per utterance (beam search) score exactly as K copies of its posteriors, through
    extensions and an utterance leaving."""
    gen = torch.Generator().manual_seed(2)
    log_probs = torch.randn(3, 9, 6, generator=gen).log_softmax(-1)
    lengths, k = torch.tensor([9, 6, 8]), 2
    copies = torch.arange(3).repeat_interleave(k)
    shared = CTCPrefixScorer(log_probs, lengths, margin, group=k)
    copied = CTCPrefixScorer(log_probs[copies], lengths[copies], margin)
    state_s, state_c = shared.initial_state(), copied.initial_state()
    candidates = torch.tensor([[2, 3, EOS_ID], [3, 4, 5]]).repeat(3, 1)
    peaks = torch.tensor([1, 2, 0, 3, 4, 1])
    for step in range(4):
        if step == 2:  # utterance 1 finished: its rows leave
            rows = torch.tensor([0, 1, 4, 5])
            shared.index_select(torch.tensor([0, 2]))
            copied.index_select(rows)
            state_s = state_c = state_s.take(rows)
            candidates, peaks = candidates[rows], peaks[rows]
        inc_s, ext_s = shared.score(state_s, candidates, peaks + step)
        inc_c, ext_c = copied.score(state_c, candidates, peaks + step)
        torch.testing.assert_close(inc_s, inc_c, rtol=0, atol=0)
        parents = torch.arange(len(candidates))
        chosen = (torch.zeros_like(parents), candidates[:, 0])
        state_s = shared.select(state_s, inc_s, ext_s, parents, *chosen)
        state_c = copied.select(state_c, inc_c, ext_c, parents, *chosen)
        for name in ("r", "base", "end", "tail", "complete"):
            torch.testing.assert_close(
                getattr(state_s, name), getattr(state_c, name), rtol=0, atol=0
            )


def test_logsumexp_first_equals_torch() -> None:
    """The clamped log-sum-exp of the CTC scorer gives torch's sums on LOG_ZERO-laden input."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 16, 5, generator=gen) * 20
    x[torch.rand(x.shape, generator=gen) < 0.7] = LOG_ZERO
    x[:, 0, 0] = LOG_ZERO  # a column with nothing but LOG_ZERO
    x[:, 1, 0] = float("-inf")
    x[3, 2, 0] = float("inf")
    assert torch.equal(logsumexp_first(x), torch.logsumexp(x, dim=0))


def test_ctc_viterbi_follows_peaked_posteriors() -> None:
    frames, tokens = 12, [3, 4, 4, 5]
    log_probs = torch.full((frames, 6), -10.0)
    log_probs[:, BLANK_ID] = -0.1
    for k, token in enumerate(tokens):  # token k dominates frames 3k and 3k+1
        log_probs[3 * k : 3 * k + 2, token] = 0.0
        log_probs[3 * k : 3 * k + 2, BLANK_ID] = -5.0
    spans = ctc_viterbi(log_probs.log_softmax(-1), tokens)
    assert spans == [(0, 2), (3, 5), (6, 8), (9, 11)]
    assert ctc_viterbi(log_probs[:4], tokens) is None  # 4 labels + 1 repeat need 5 frames


@pytest.mark.parametrize("kind", ["dot", "location"])
def test_attention_window_keeps_each_step_near_the_previous_peak(kind: str) -> None:
    """Batched equals alone, beam 1 equals greedy, and no step reads outside its window."""
    model, batch = tiny_model(kind), dummy_batch(batch_size=4)
    opts = DecodeOptions(beam=3, max_len_ratio=1.0, att_window=2, att_window_back=1)
    batched = beam_search(model, batch.feats, batch.feat_lengths, opts)
    for i, hyp in enumerate(batched):
        alone = _single(model, batch, i, opts)
        assert hyp.tokens == alone.tokens
        assert torch.allclose(hyp.attention, alone.attention, atol=1e-5)
        peaks = hyp.attention.argmax(dim=1)
        frames = torch.arange(hyp.attention.shape[1])
        for step in range(1, hyp.attention.shape[0]):
            outside = (frames < peaks[step - 1] - 1) | (frames > peaks[step - 1] + 2)
            assert torch.all(hyp.attention[step, outside] == 0)
    assert sum(h.attention.shape[0] - 1 for h in batched) >= 8  # steps that had a window
    one = DecodeOptions(beam=1, max_len_ratio=1.0, att_window=2, att_window_back=1)
    greedy = greedy_search(model, batch.feats, batch.feat_lengths, one)
    beam = beam_search(model, batch.feats, batch.feat_lengths, one)
    assert [g.tokens for g in greedy] == [b.tokens for b in beam]
    for g, b in zip(greedy, beam, strict=True):
        assert torch.allclose(g.attention, b.attention)


def test_attention_window_is_refused_for_local_and_monotonic_kinds() -> None:
    batch = dummy_batch(batch_size=2)
    for kind in ("local-m", "monotonic"):
        with pytest.raises(UserError, match="applies to global attention"):
            greedy_search(
                tiny_model(kind), batch.feats, batch.feat_lengths, DecodeOptions(att_window=5)
            )
