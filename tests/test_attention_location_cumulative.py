"""Location attention with cumulative (coverage) features: state, masking and reductions.

The demo's attention collapsed onto the listener's last frame without these features (test
diagonality 0.79, see asrkit/conf/demo.yaml); the last test guards that the demo keeps them.
"""

from __future__ import annotations

import torch

from asrkit.config import AttentionConfig, load_yaml
from asrkit.demo import DEMO_CONFIG
from asrkit.model.attention import build_attention
from asrkit.model.attention.location import LocationAttention
from asrkit.model.las import LAS

QUERY_DIM, MEMORY_DIM = 4, 6


def make(cumulative: bool = True, seed: int = 0) -> LocationAttention:
    torch.manual_seed(seed)
    cfg = AttentionConfig(kind="location", dim=8, channels=3, kernel=5, cumulative=cumulative)
    att = build_attention(cfg, QUERY_DIM, MEMORY_DIM)
    assert isinstance(att, LocationAttention)
    return att


def run(att: LocationAttention, memory: torch.Tensor, lengths: torch.Tensor, queries: torch.Tensor):
    """Eval steps over queries (U, B, QUERY_DIM) -> (outputs, initial state)."""
    mem = att.prepare(memory, lengths)
    state = initial = att.initial_state(mem)
    outputs = []
    for query in queries:
        out = att.step(query, mem, state, "eval")
        outputs.append(out)
        state = out.state
    return outputs, initial


def garbage_padded(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    memory = torch.randn(len(lengths), max(lengths), MEMORY_DIM)
    for b, length in enumerate(lengths):
        memory[b, length:] = 1e4
    return memory, torch.tensor(lengths)


def test_coverage_is_the_sum_of_alignments_and_zero_on_padding() -> None:
    """S5: cum_0 = alpha_0 = m / L_b, cum_i = cum_{i-1} + alpha_i; padding stays exactly 0."""
    att = make()
    assert att.conv.in_channels == 2
    memory, lengths = garbage_padded([7, 4])
    outputs, initial = run(att, memory, lengths, torch.randn(5, 2, QUERY_DIM))
    torch.testing.assert_close(initial["cum"][1], torch.tensor([0.25] * 4 + [0.0] * 3))
    expected = initial["prev"]
    for out in outputs:
        expected = expected + out.weights
        assert out.state["prev"] is out.weights
        torch.testing.assert_close(out.state["cum"], expected)
        assert (out.state["cum"][1, 4:] == 0).all()


def test_padded_batch_equals_items_alone() -> None:
    """G4 with the coverage channel: item b in a garbage-padded batch == item b alone."""
    att = make()
    lengths = [9, 5, 1]
    memory, lengths_t = garbage_padded(lengths)
    queries = torch.randn(6, 3, QUERY_DIM)
    batched, _ = run(att, memory, lengths_t, queries)
    for b, length in enumerate(lengths):
        alone, _ = run(
            att, memory[b : b + 1, :length], torch.tensor([length]), queries[:, b : b + 1]
        )
        for full, single in zip(batched, alone, strict=True):
            close = {"atol": 1e-5, "rtol": 0.0}
            torch.testing.assert_close(full.weights[b, :length], single.weights[0], **close)
            torch.testing.assert_close(full.context[b], single.context[0], **close)
            torch.testing.assert_close(
                full.state["cum"][b, :length], single.state["cum"][0], **close
            )


def test_zero_coverage_filters_equal_previous_alignment_only() -> None:
    """S4: with the coverage filters at 0, cumulative location == plain location attention."""
    cumulative, plain = make(cumulative=True), make(cumulative=False, seed=1)
    state = cumulative.state_dict()
    state["conv.weight"] = state["conv.weight"][:, :1].clone()
    plain.load_state_dict(state)
    with torch.no_grad():
        cumulative.conv.weight[:, 1].zero_()
    memory, lengths = garbage_padded([8, 3])
    queries = torch.randn(4, 2, QUERY_DIM)
    for a, b in zip(
        run(cumulative, memory, lengths, queries)[0],
        run(plain, memory, lengths, queries)[0],
        strict=True,
    ):
        torch.testing.assert_close(a.weights, b.weights, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.context, b.context, atol=1e-6, rtol=0)


def test_demo_model_uses_cumulative_location_features() -> None:
    """The showcase config keeps the coverage channel that makes its attention align."""
    cfg = load_yaml(DEMO_CONFIG)
    assert cfg.attention.kind == "location" and cfg.attention.cumulative
    attention = LAS(cfg, vocab_size=30).speller.attention
    assert isinstance(attention, LocationAttention) and attention.conv.in_channels == 2
