"""Properties every registered attention kind must satisfy (spec §12.1: G1-G6, G8, G10)."""

from __future__ import annotations

import pytest
import torch

from asrkit.config import AttentionConfig
from asrkit.io import UserError
from asrkit.model.attention import FAMILIES, MEMBERS, REGISTRY, build_attention, resolve_kind
from asrkit.model.attention.base import Attention, AttentionOutput, Mode, State

QUERY_DIM, MEMORY_DIM = 6, 5
# Options that change a kind's state or score get their own entries, "kind+variant".
VARIANTS: dict[str, dict[str, object]] = {
    "local-m+location": {"kind": "local-m", "score": "location"},
    "local-p+location": {"kind": "local-p", "score": "location"},
    "local-m+median": {"kind": "local-m", "centre": "median"},
}
KINDS = sorted(REGISTRY) + list(VARIANTS)
SOFTMAX_KINDS = ["dot", "general", "additive", "location", "multihead", "local-m"]
SOFTMAX_KINDS += ["local-m+location", "local-m+median"]
# Stochastic hard attention samples in train mode, so it is deterministic in eval only.
DETERMINISTIC_IN_TRAIN = [k for k in KINDS if k != "hard"]


def make(kind: str, **overrides: object) -> Attention:
    """A small instance; monotonic kinds get r = 0 so that some frames stop and some do not."""
    options = {"dim": 8, "heads": 2, "channels": 3, "kernel": 5, "window": 2, "chunk": 2}
    options |= {"r_init": 0.0, "noise_std": 0.0, "kind": kind, **VARIANTS.get(kind, {})}
    options |= overrides
    torch.manual_seed(1)
    return build_attention(AttentionConfig(**options), QUERY_DIM, MEMORY_DIM)


def padded_memory(lengths: list[int], garbage: float = 1e4) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T_max, D) random frames with +-garbage in the padding, and the (B,) lengths."""
    memory = torch.randn(len(lengths), max(lengths), MEMORY_DIM)
    for b, length in enumerate(lengths):
        pad = memory[b, length:]
        pad.copy_(garbage * torch.sign(torch.randn_like(pad)))
    return memory, torch.tensor(lengths)


def run(
    att: Attention, memory: torch.Tensor, lengths: torch.Tensor, queries: torch.Tensor, mode: Mode
) -> list[AttentionOutput]:
    """Steps over queries (U, B, query_dim) from the initial state."""
    mem = att.prepare(memory, lengths)
    state: State = att.initial_state(mem)
    outputs = []
    for query in queries:
        out = att.step(query, mem, state, mode)
        state = out.state
        outputs.append(out)
    return outputs


def test_registry_and_families() -> None:
    assert set(FAMILIES.values()) <= set(REGISTRY)
    assert all(FAMILIES[family] in members for family, members in MEMBERS.items())
    assert {m for members in MEMBERS.values() for m in members} == set(REGISTRY) - {"hard"}
    assert resolve_kind("global") == "location"
    assert resolve_kind("local") == "local-m"
    assert resolve_kind("monotonic") == "monotonic"
    with pytest.raises(UserError, match="unknown attention kind 'nope'"):
        resolve_kind("nope")


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("kind", KINDS)
def test_padding_gets_exactly_zero_weight(kind: str, mode: Mode) -> None:
    """G1/G2/G3/G8: shapes, finiteness, exact zeros on garbage padding, empty items give 0."""
    att = make(kind, noise_std=1.0)
    memory, lengths = padded_memory([7, 3, 1, 0])
    for out in run(att, memory, lengths, torch.randn(4, 4, QUERY_DIM), mode):
        assert out.context.shape == (4, MEMORY_DIM)
        assert out.weights.shape == (4, 7)
        assert torch.isfinite(out.context).all() and torch.isfinite(out.weights).all()
        assert (out.weights >= 0).all()
        for b, length in enumerate(lengths.tolist()):
            assert (out.weights[b, length:] == 0).all()
        assert (out.context[3] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_large_inputs_stay_finite(kind: str) -> None:
    """G2: inputs scaled by 1e3 still give finite, non-negative weights."""
    att = make(kind)
    memory, lengths = padded_memory([6, 4])
    for mode in ("train", "eval"):
        outs = run(att, 1e3 * memory, lengths, 1e3 * torch.randn(3, 2, QUERY_DIM), mode)
        assert all(torch.isfinite(o.weights).all() and (o.weights >= 0).all() for o in outs)


def _check_pad_invariance(kind: str, mode: Mode) -> None:
    att = make(kind)
    lengths = [9, 5, 1]
    memory, lengths_t = padded_memory(lengths)
    queries = torch.randn(5, 3, QUERY_DIM)
    batched = run(att, memory, lengths_t, queries, mode)
    for b, length in enumerate(lengths):
        item = memory[b : b + 1, :length]
        alone = run(att, item, torch.tensor([length]), queries[:, b : b + 1], mode)
        for step, (full, single) in enumerate(zip(batched, alone, strict=True)):
            where = f"{kind}/{mode} item {b} step {step}"
            close = {"atol": 1e-5, "rtol": 0.0, "msg": where}
            torch.testing.assert_close(full.context[b], single.context[0], **close)
            torch.testing.assert_close(full.weights[b, :length], single.weights[0], **close)
            for key, value in single.state.items():
                batch_value = full.state[key][b]
                if value.dim() == 2:  # (B, T) alignments: compare valid frames, padding is zero
                    assert (batch_value[length:] == 0).all(), where
                    batch_value = batch_value[:length]
                torch.testing.assert_close(batch_value, value[0], **close)


@pytest.mark.parametrize("kind", KINDS)
def test_padded_batch_equals_items_alone_eval(kind: str) -> None:
    """G4: item b inside a garbage-padded batch == item b alone, all steps, state included."""
    _check_pad_invariance(kind, "eval")


@pytest.mark.parametrize("kind", DETERMINISTIC_IN_TRAIN)
def test_padded_batch_equals_items_alone_train(kind: str) -> None:
    _check_pad_invariance(kind, "train")


@pytest.mark.parametrize("kind", KINDS)
def test_batch_permutation_and_determinism(kind: str) -> None:
    """G5/G6: permuting the batch permutes the outputs; eval repeats bit-identically."""
    att = make(kind)
    memory, lengths = padded_memory([6, 2, 4])
    queries = torch.randn(3, 3, QUERY_DIM)
    first = run(att, memory, lengths, queries, "eval")
    again = run(att, memory, lengths, queries, "eval")
    perm = torch.tensor([2, 0, 1])
    permuted = run(att, memory[perm], lengths[perm], queries[:, perm], "eval")
    for a, b, p in zip(first, again, permuted, strict=True):
        assert torch.equal(a.context, b.context) and torch.equal(a.weights, b.weights)
        torch.testing.assert_close(p.weights, a.weights[perm], atol=1e-6, rtol=0)
        torch.testing.assert_close(p.context, a.context[perm], atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_softmax_rows_sum_to_one(kind: str, mode: Mode) -> None:
    """S1 (local-m included: its window softmax also sums to 1)."""
    att = make(kind)
    memory, lengths = padded_memory([8, 3, 1])
    for out in run(att, memory, lengths, torch.randn(4, 3, QUERY_DIM), mode):
        torch.testing.assert_close(out.weights.sum(1), torch.ones(3), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["hard", "monotonic", "mocha"])
def test_hard_inference_rows_are_one_hot_or_zero(kind: str) -> None:
    """M8: hard rows (monotonic, or the stochastic argmax) are one-hot or all zero."""
    att = make(kind, chunk=1)
    memory, lengths = padded_memory([8, 5, 2])
    for out in run(att, memory, lengths, torch.randn(6, 3, QUERY_DIM), "eval"):
        assert set(out.weights.unique().tolist()) <= {0.0, 1.0}
        assert set(out.weights.sum(1).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_finite(kind: str, autocast: bool) -> None:
    """G7 (finiteness) and G10: train-mode backward is finite in fp32 and under bf16 autocast;
    the weights themselves stay float32."""
    att = make(kind, noise_std=1.0)
    memory, lengths = padded_memory([7, 4, 0], garbage=30.0)
    memory.requires_grad_(True)
    queries = torch.randn(4, 3, QUERY_DIM, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        outputs = run(att, memory, lengths, queries, "train")
        loss = sum((o.context.float() ** 2).sum() + (o.weights * 3).sum() for o in outputs)
        if kind == "hard":
            log_prob = torch.stack([o.log_prob for o in outputs]).sum(0)
            entropy = torch.stack([o.entropy for o in outputs]).sum(0)
            loss = loss + att.auxiliary_loss(log_prob, entropy, torch.randn(3))
    assert all(o.weights.dtype == torch.float32 for o in outputs)
    loss.backward()
    grads = [p.grad for p in att.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(memory.grad).all() and torch.isfinite(queries.grad).all()
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind", ["dot", "general", "additive", "multihead", "hard"])
def test_content_only_kinds_are_permutation_equivariant(kind: str) -> None:
    """S3: permuting the valid frames permutes the weights and keeps the context."""
    att = make(kind)
    memory, lengths = padded_memory([6])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    query = torch.randn(1, 1, QUERY_DIM)
    (plain,) = run(att, memory, lengths, query, "eval")
    (shuffled,) = run(att, memory[:, perm], lengths, query, "eval")
    torch.testing.assert_close(shuffled.weights, plain.weights[:, perm], atol=1e-6, rtol=0)
    torch.testing.assert_close(shuffled.context, plain.context, atol=1e-5, rtol=0)


def test_location_is_not_permutation_equivariant() -> None:
    """S3 negative control: location features depend on frame order."""
    att = make("location")
    memory, lengths = padded_memory([6])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    queries = torch.randn(2, 1, QUERY_DIM)
    plain = run(att, memory, lengths, queries, "eval")[-1]
    shuffled = run(att, memory[:, perm], lengths, queries, "eval")[-1]
    assert not torch.allclose(shuffled.weights, plain.weights[:, perm], atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_reorder_state_matches_reordered_run(kind: str) -> None:
    """B1 (attention part): index_select of memory and state == running the selected items."""
    from asrkit.model.attention.base import reorder_state

    att = make(kind)
    memory, lengths = padded_memory([7, 3, 5])
    queries = torch.randn(4, 3, QUERY_DIM)
    mem = att.prepare(memory, lengths)
    state = att.initial_state(mem)
    for query in queries[:2]:
        state = att.step(query, mem, state, "eval").state
    index = torch.tensor([2, 2, 0])
    mem_r, state_r = mem.index_select(index), reorder_state(state, index)
    direct = run(att, memory[index], lengths[index], queries[:, index], "eval")
    for step, query in enumerate(queries[2:, index]):
        out = att.step(query, mem_r, state_r, "eval")
        state_r = out.state
        torch.testing.assert_close(out.weights, direct[step + 2].weights, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", DETERMINISTIC_IN_TRAIN)
def test_gradcheck_float64(kind: str) -> None:
    """G7: float64 gradcheck of contexts and weights over U = 3 train steps w.r.t. the frames
    and queries (local-p with D >= T so no window edge moves under the perturbation)."""
    att = make(kind, window=8 if kind.startswith("local-p") else 2).double()
    lengths = torch.tensor([7, 4])
    memory = torch.randn(2, 7, MEMORY_DIM, dtype=torch.float64, requires_grad=True)
    queries = torch.randn(3, 2, QUERY_DIM, dtype=torch.float64, requires_grad=True)

    def unrolled(memory: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = run(att, memory, lengths, queries, "train")
        return tuple(t for o in outputs for t in (o.context, o.weights))

    assert torch.autograd.gradcheck(unrolled, (memory, queries), atol=1e-6)


@pytest.mark.parametrize(
    ("kind", "mode"),
    [(kind, "eval") for kind in KINDS] + [(kind, "train") for kind in DETERMINISTIC_IN_TRAIN],
)
def test_shared_memory_equals_copied_memory(kind: str, mode: Mode) -> None:
    """Beam search lets K rows share an item's frames (`AttendMemory.shared`): every step, and
    dropping an item (`index_select` of items), must equal K real copies of the frames."""
    from asrkit.model.attention.base import reorder_state

    beams, att = 3, make(kind)
    memory, lengths = padded_memory([7, 3, 5])
    queries = torch.randn(5, 3 * beams, QUERY_DIM)  # rows: item 0's 3 beams, item 1's, ...
    rows = torch.arange(3).repeat_interleave(beams)
    shared = att.prepare(memory, lengths).shared(beams)
    copied = att.prepare(memory[rows], lengths[rows])
    state_s, state_c = att.initial_state(shared), att.initial_state(copied)
    for step, query in enumerate(queries):
        if step == 3:  # item 1 finished: its rows leave the batch
            keep_items = torch.tensor([0, 2])
            keep_rows = torch.tensor([0, 1, 2, 6, 7, 8])
            shared, state_s = shared.index_select(keep_items), reorder_state(state_s, keep_rows)
            copied, state_c = copied.index_select(keep_rows), reorder_state(state_c, keep_rows)
        query = query[: shared.lengths.shape[0]]
        out_s, out_c = (
            att.step(query, shared, state_s, mode),
            att.step(query, copied, state_c, mode),
        )
        torch.testing.assert_close(out_s.weights, out_c.weights, atol=1e-6, rtol=0)
        torch.testing.assert_close(out_s.context, out_c.context, atol=1e-6, rtol=0)
        state_s, state_c = out_s.state, out_c.state
    assert shared.values.shape[0] == 2 and shared.lengths.shape[0] == 2 * beams
    with pytest.raises(ValueError, match="already shared"):
        shared.shared(2)
