"""Ensemble search: the mean scores of several models, with each model's own state and CTC."""

from __future__ import annotations

import pytest
import torch
from decoding_support import tiny_loaded, write_tone

from asrkit.data.manifest import Utterance
from asrkit.decoding import DecodeOptions, beam_search
from asrkit.decoding.api import decode_utterances, ensemble_members
from asrkit.decoding.beam import ensemble_beam_search
from asrkit.io import UserError
from asrkit.testing import dummy_batch, tiny_config, tiny_model
from asrkit.tokenizer import EOS_ID


@pytest.mark.parametrize("kind", ["location", "monotonic", "local-m"])
def test_a_model_twice_decodes_as_the_model(kind: str) -> None:
    model, batch = tiny_model(kind), dummy_batch(batch_size=4)
    opts = DecodeOptions(beam=3, ctc_weight=0.3, max_len_ratio=1.0, ctc_window=2)
    alone = beam_search(model, batch.feats, batch.feat_lengths, opts)
    twice = ensemble_beam_search([model, model], [batch.feats] * 2, batch.feat_lengths, opts)
    for a, t in zip(alone, twice, strict=True):
        assert a.tokens == t.tokens and a.token_log_probs == t.token_log_probs
        assert a.score == t.score and torch.equal(a.attention, t.attention)


@pytest.mark.parametrize("kind", ["location", "monotonic"])
def test_batched_ensemble_equals_unbatched(kind: str) -> None:
    models = [tiny_model(kind, seed=0), tiny_model(kind, seed=1)]
    batch = dummy_batch(batch_size=4)
    opts = DecodeOptions(beam=3, ctc_weight=0.3, max_len_ratio=1.0)
    batched = ensemble_beam_search(models, [batch.feats] * 2, batch.feat_lengths, opts)
    for i, hyp in enumerate(batched):
        n = int(batch.feat_lengths[i])
        x, lengths = batch.feats[i : i + 1, :n], batch.feat_lengths[i : i + 1]
        alone = ensemble_beam_search(models, [x, x], lengths, opts)[0]
        assert hyp.tokens == alone.tokens
        assert hyp.score == pytest.approx(alone.score, abs=1e-4)


def _teacher_forced(model, feats, lengths, tokens: list[int]) -> torch.Tensor:
    """(U + 1, V) log-probs of the speller fed `tokens` (then <eos>), one utterance."""
    model.eval()
    with torch.inference_mode():
        enc, enc_lengths = model.encode(feats, lengths)
        mem = model.speller.attention.prepare(enc, enc_lengths)
        state, rows = model.speller.initial_state(mem), []
        for prev in [EOS_ID, *tokens]:
            out = model.speller.step(torch.tensor([prev]), state, mem, "eval", None)
            rows.append(torch.log_softmax(out.logits.double(), dim=-1)[0])
            state = out.state
    return torch.stack(rows)


def test_ensemble_token_scores_are_the_mean_of_the_models() -> None:
    models = [tiny_model("location", seed=0), tiny_model("location", seed=1)]
    batch = dummy_batch(batch_size=2)
    opts = DecodeOptions(beam=1, max_len_ratio=1.0)
    hyps = ensemble_beam_search(models, [batch.feats] * 2, batch.feat_lengths, opts)
    singles = [beam_search(m, batch.feats, batch.feat_lengths, opts) for m in models]
    assert any(
        h.tokens != s.tokens for single in singles for h, s in zip(hyps, single, strict=True)
    ), "the ensemble should not simply follow one model"
    for i, hyp in enumerate(hyps):
        n = int(batch.feat_lengths[i])
        x, lengths = batch.feats[i : i + 1, :n], batch.feat_lengths[i : i + 1]
        forced = [_teacher_forced(m, x, lengths, hyp.tokens) for m in models]
        mean = (forced[0] + forced[1]) / 2
        expected = mean[torch.arange(len(hyp.tokens)), torch.tensor(hyp.tokens, dtype=torch.long)]
        assert hyp.token_log_probs == pytest.approx(expected.tolist(), abs=1e-5)


def test_decode_utterances_with_an_ensemble(tmp_path) -> None:
    audio = [write_tone(tmp_path / f"{i}.wav", 0.8 + 0.3 * i) for i in range(3)]
    utts = [Utterance(f"u{i}", str(a), 1.0, 16000, "spk", "") for i, a in enumerate(audio)]
    first, second = tiny_loaded(seed=0), tiny_loaded(seed=1)
    opts = first.decode_options(beam=2, ctc_weight=0.3)
    alone, _ = decode_utterances(first, utts, opts, progress=False)
    twice, _ = decode_utterances([first, first], utts, opts, progress=False)
    assert [t.text for t in twice] == [t.text for t in alone]
    both, _ = decode_utterances([first, second], utts, opts, progress=False)
    assert len(both) == 3 and all(t.hypothesis is not None for t in both)


def test_members_must_share_tokenizer_and_features() -> None:
    from asrkit.checkpoint import LoadedModel
    from asrkit.model.las import LAS
    from asrkit.tokenizer import CharTokenizer

    first = tiny_loaded()
    tokenizer = CharTokenizer.train(["ABC"])
    other = LoadedModel(
        LAS(tiny_config("dot"), tokenizer.vocab_size), tiny_config("dot"), tokenizer, first.path
    )
    other = LoadedModel(other.model, other.config, other.tokenizer, first.path.with_name("b.pt"))
    with pytest.raises(UserError, match=r"b\.pt: its tokenizer differs"):
        ensemble_members([first, other])
    cfg = tiny_config("dot", ctc_weight=0.3, features__n_mels=40)
    mels = LoadedModel(first.model, cfg, first.tokenizer, first.path.with_name("c.pt"))
    with pytest.raises(UserError, match=r"c\.pt: its features config differs"):
        ensemble_members([first, mels])
    with pytest.raises(UserError, match="no model"):
        ensemble_members([])


def _ctc_log_prob(model, feats, lengths, tokens: list[int]) -> float:
    """log P_CTC(tokens | utterance) of one model (the whole sequence)."""
    with torch.inference_mode():
        enc, enc_lengths = model.encode(feats, lengths)
        log_probs = model.ctc_log_probs(enc).transpose(0, 1).double()  # (T', 1, V)
        target = torch.tensor([tokens], dtype=torch.long)
        loss = torch.nn.functional.ctc_loss(
            log_probs, target, enc_lengths, torch.tensor([len(tokens)]), reduction="sum"
        )
    return -float(loss)


def test_ensemble_score_is_the_mean_of_both_heads_of_every_model() -> None:
    """score = (1 - w) * mean attention log-prob + w * mean CTC log-prob of the whole output:
    the prefix increments telescope, so a model's CTC head left out changes the score."""
    models = [tiny_model("location", seed=0), tiny_model("location", seed=1)]
    batch, w = dummy_batch(batch_size=2), 0.5
    opts = DecodeOptions(beam=2, ctc_weight=w, max_len_ratio=1.0, length_penalty=0.0)
    hyps = ensemble_beam_search(models, [batch.feats] * 2, batch.feat_lengths, opts)
    for i, hyp in enumerate(hyps):
        n = int(batch.feat_lengths[i])
        x, lengths = batch.feats[i : i + 1, :n], batch.feat_lengths[i : i + 1]
        forced = [_teacher_forced(m, x, lengths, hyp.tokens) for m in models]
        mean = (forced[0] + forced[1]) / 2
        path = torch.tensor([*hyp.tokens, EOS_ID], dtype=torch.long)
        attention = float(mean[torch.arange(len(path)), path].sum())
        ctc = sum(_ctc_log_prob(m, x, lengths, hyp.tokens) for m in models) / 2
        assert hyp.score == pytest.approx((1 - w) * attention + w * ctc, abs=1e-3)
