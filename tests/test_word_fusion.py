"""Lexicon look-ahead for word n-gram fusion: the prefix masses are the vocabulary's sums, the
charges telescope to the n-gram's sentence score, and the search is steered inside words.
Fused beam search, batched against one at a time: tests/test_lm.py."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.lm.ngram import ArpaLM, build_arpa
from asrkit.lm.word_fusion import PrefixMass, WordFusion
from asrkit.tokenizer import EOS_ID, CharTokenizer, SentencePieceTokenizer, Tokenizer

SENTENCES = [
    "THE CAT SAT ON THE MAT",
    "THE CATS SAT",
    "A DOG RAN TO THE CAT",
    "THE DOG SAT ON A MAT",
    "A CAT RAN ON THE MAT",
    "THEN THE DOG RAN",
]


@pytest.fixture(scope="module", params=[1, 2, 3])
def arpa(request: pytest.FixtureRequest) -> ArpaLM:
    return ArpaLM.from_text(build_arpa(SENTENCES, order=request.param), "test")


def _brute_mass(arpa: ArpaLM, history: tuple[str, ...], prefix: str) -> float:
    words = {g[0] for g in arpa.grams if len(g) == 1} - {"<s>", "</s>", "<unk>"}
    return sum(math.exp(arpa.score(history, w)) for w in words if w.startswith(prefix))


def test_prefix_mass_is_the_sum_over_the_vocabulary(arpa: ArpaLM) -> None:
    mass = PrefixMass(arpa)
    histories = [("<s>",), ("<s>", "THE"), ("THE", "CAT"), ("A",), ("NEVER", "SEEN"), ("MAT",)]
    for history in histories:
        for prefix in ["T", "TH", "THE", "THEN", "CA", "CAT", "CATS", "D", "Q"]:
            expected = _brute_mass(arpa, history, prefix)
            assert mass.of(history, prefix) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert mass.of(("<s>",), "") == 1.0


def _fused_total(fusion: WordFusion, units: list[int]) -> tuple[float, list[float]]:
    state = fusion.initial_state(1, torch.device("cpu"))
    prev, total, steps = torch.tensor([EOS_ID]), 0.0, []
    for unit in units:
        scores, state = fusion.log_probs(prev, state)
        steps.append(float(scores[0, unit]))
        total += steps[-1]
        prev = torch.tensor([unit])
    return total, steps


def _bpe() -> Tokenizer:
    return SentencePieceTokenizer.train(SENTENCES * 20 + ["CAB BAT TOT"], vocab_size=30)


@pytest.mark.parametrize("units", ["char", "bpe"])
@pytest.mark.parametrize(
    "text", ["THE CAT SAT ON THE MAT", "THE CATO SAT", "A BAT DOG", "THEN", "CA THE", "DOG DOG"]
)
def test_charges_telescope_to_the_sentence_score(arpa: ArpaLM, units: str, text: str) -> None:
    """In-vocabulary words, unlisted ones (CATO leaves after a prefix, BAT at once) and a
    prefix that never became a word (CA): the per-unit charges sum to log P(sentence)."""
    tok = CharTokenizer.train([*SENTENCES, "BZ"]) if units == "char" else _bpe()
    fusion = WordFusion(arpa, tok)
    total, _ = _fused_total(fusion, [*tok.encode(text), EOS_ID])
    assert total == pytest.approx(arpa.sentence_score(text), abs=1e-9)


def test_look_ahead_charges_inside_words() -> None:
    """Inside a word the LM already speaks: continuing a listed word costs less than leaving
    the vocabulary, and no charge is positive for a sentence of listed words."""
    arpa = ArpaLM.from_text(build_arpa(SENTENCES, order=2), "test")
    tok = CharTokenizer.train([*SENTENCES, "Z"])
    fusion = WordFusion(arpa, tok)
    state = fusion.initial_state(1, torch.device("cpu"))
    prev = torch.tensor([EOS_ID])
    for unit in tok.encode("THE CA"):
        scores, state = fusion.log_probs(prev, state)
        prev = torch.tensor([unit])
    scores, _ = fusion.log_probs(prev, state)
    t_id, z_id = tok.encode("T")[0], tok.encode("Z")[0]
    assert scores[0, t_id] > scores[0, z_id] + 1.0  # CAT is listed, CAZ is not
    assert scores[0, z_id] < 0
    _, steps = _fused_total(fusion, [*tok.encode("THE CAT SAT"), EOS_ID])
    assert all(s <= 1e-12 for s in steps)
    assert sum(1 for s in steps if s < 0) > 3  # spent inside the words, not only at their ends
