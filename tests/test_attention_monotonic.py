"""Monotonic attention and MoChA (spec §12.4 M1-M14, §12.5 C1-C5, C8)."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.config import ConfigError
from asrkit.model.attention.base import valid_mask
from asrkit.model.attention.mocha import MoChAAttention, chunkwise_weights
from asrkit.model.attention.monotonic import (
    MonotonicAttention,
    expected_alignment,
    expected_alignment_recursive,
    hard_alignment,
)

QUERY_DIM, MEMORY_DIM = 6, 5


def legacy_parallel(p: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """The TF/TFA "parallel" form (spec §4.3), kept here only to show it is not exact."""
    keep = torch.log((1 - p).clamp(min=torch.finfo(p.dtype).tiny, max=1.0))
    cumprod = torch.exp(torch.cumsum(keep, -1) - keep)
    return p * cumprod * torch.cumsum(prev / cumprod.clamp(1e-10, 1.0), -1)


def random_problem(
    batch: int, frames: int, steps: int, dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selection probabilities (U, B, T) from energies N(b, s^2) with random b, s, lengths."""
    gen = torch.Generator().manual_seed(seed)
    bias = torch.empty(batch, 1).uniform_(-6, 6, generator=gen)
    scale = torch.empty(batch, 1).uniform_(0.5, 4, generator=gen)
    energies = bias + scale * torch.randn(steps, batch, frames, generator=gen)
    lengths = torch.randint(1, frames + 1, (batch,), generator=gen)
    lengths[0] = frames
    mask = valid_mask(lengths, frames)
    return torch.sigmoid(energies.to(dtype)).masked_fill(~mask, 0.0), mask


def dirac(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    alpha = torch.zeros(mask.shape, dtype=dtype)
    alpha[:, 0] = 1.0
    return alpha


@pytest.mark.parametrize("frames", [1, 7, 300, 1000])
def test_parallel_log_equals_recursive_fp32(frames: int) -> None:
    """M1: parallel-log (fp32) == recursive (fp64 reference) within 1e-5, chained over steps."""
    p, mask = random_problem(6, frames, 6, torch.float64, seed=frames)
    fast, slow = dirac(mask, torch.float32), dirac(mask, torch.float64)
    for p_i in p:
        fast = expected_alignment(p_i.float(), fast)
        slow = expected_alignment_recursive(p_i, slow)
        assert fast.dtype == torch.float32
        assert (fast - slow).abs().max() <= 1e-5
        assert (fast[~mask] == 0).all()


def test_parallel_log_equals_recursive_fp64() -> None:
    p, mask = random_problem(4, 500, 4, torch.float64, seed=3)
    fast = slow = dirac(mask, torch.float64)
    for p_i in p:
        fast, slow = expected_alignment(p_i, fast), expected_alignment_recursive(p_i, slow)
        assert (fast - slow).abs().max() <= 1e-10


def test_binary_p_equals_hard_alignment() -> None:
    """M3: for p in {0, 1}, recursive == hard exactly and parallel-log within 1e-6."""
    gen = torch.Generator().manual_seed(0)
    z = (torch.rand(8, 5, 40, generator=gen) < 0.3).float()
    hard = recursive = parallel = dirac(torch.ones(5, 40, dtype=torch.bool), torch.float32)
    for z_i in z:
        hard = hard_alignment(z_i, hard)
        recursive = expected_alignment_recursive(z_i, recursive)
        parallel = expected_alignment(z_i, parallel)
        assert torch.equal(recursive, hard)
        assert (parallel - hard).abs().max() <= 1e-6


def test_legacy_parallel_fails_the_counterexample() -> None:
    """Spec §4.3: the TF "parallel" form loses the mass; parallel-log does not. Keeps the
    legacy form from being "fixed" into the default."""
    prev = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    assert torch.equal(expected_alignment_recursive(p, prev), expected)
    torch.testing.assert_close(expected_alignment(p, prev), expected, atol=1e-12, rtol=0)
    assert legacy_parallel(p, prev)[0, 3] < 1e-6


def test_mass_never_grows_and_cdf_dominance() -> None:
    """M2/M4: 0 <= sum alpha_i <= sum alpha_{i-1} <= 1; cumsum(alpha_i) <= cumsum(alpha_{i-1})."""
    p, mask = random_problem(6, 80, 10, torch.float32, seed=5)
    prev = dirac(mask, torch.float32)
    for p_i in p:
        alpha = expected_alignment(p_i, prev)
        assert (alpha >= 0).all()
        assert (alpha.sum(1) <= prev.sum(1) + 1e-6).all()
        assert (alpha.cumsum(1) <= prev.cumsum(1) + 1e-6).all()
        prev = alpha


def test_first_step_closed_form_and_initial_spread() -> None:
    """M6/M13: with zero weights p = sigmoid(r) and alpha_1 = p (1 - p)^(j-1); r = -4 spreads
    the first alignment (< 20% of the mass on the first 10 frames)."""
    att = MonotonicAttention(QUERY_DIM, MEMORY_DIM, dim=8, r_init=-4.0, noise_std=0.0)
    for param in att.energy.parameters():
        if param is not att.energy.r:
            torch.nn.init.zeros_(param)
    att.energy.v.data.fill_(1.0)  # v must not be 0 (it is normalised), g = 0 kills it anyway
    mem = att.prepare(torch.randn(1, 200, MEMORY_DIM), torch.tensor([200]))
    out = att.step(torch.randn(1, QUERY_DIM), mem, att.initial_state(mem), "train")
    p = torch.sigmoid(torch.tensor(-4.0))
    closed = p * (1 - p) ** torch.arange(200, dtype=torch.float32)
    torch.testing.assert_close(out.weights[0], closed, atol=1e-6, rtol=1e-5)
    assert out.weights[0, :10].sum() < 0.2


def test_noise_is_added_before_the_sigmoid_in_train_only() -> None:
    """M7: logit(p) - e has std noise_std in train mode and is exactly 0 in eval mode."""
    att = MonotonicAttention(QUERY_DIM, MEMORY_DIM, dim=8, r_init=-1.0, noise_std=1.5)
    mem = att.prepare(torch.randn(100, 1000, MEMORY_DIM), torch.full((100,), 1000))
    query = torch.randn(100, QUERY_DIM)
    with torch.no_grad():
        energies = att.energy(mem.keys["mono"], query.unsqueeze(1)).double()
        train = att.selection_probability(query, mem, "train").double()
        evaluation = att.selection_probability(query, mem, "eval").double()
    noise = torch.log(train) - torch.log1p(-train) - energies
    assert abs(noise.std().item() / 1.5 - 1) < 0.02
    torch.testing.assert_close(evaluation, torch.sigmoid(energies), atol=1e-6, rtol=0)


def sharp_monotonic(chunk: int | None = None, seed: int = 0) -> MonotonicAttention:
    """Random energies of a few units around 0, so scans stop, skip and run off the end."""
    torch.manual_seed(seed)
    args = (QUERY_DIM, MEMORY_DIM, 8)
    att = (
        MonotonicAttention(*args, r_init=-1.0)
        if chunk is None
        else MoChAAttention(*args, chunk=chunk, r_init=-1.0)
    )
    att.energy.g.data.fill_(4.0)
    return att


def hard_run(att: MonotonicAttention, memory, lengths, queries):
    mem = att.prepare(memory, lengths)
    state = att.initial_state(mem)
    outputs = []
    for query in queries:
        out = att.step(query, mem, state, "eval")
        state = out.state
        outputs.append(out)
    return mem, outputs


@pytest.mark.parametrize("seed", range(6))
def test_hard_scan_is_monotonic_linear_and_equals_vectorised(seed: int) -> None:
    """M5/M8/M9/M10: pointers never move back or into padding, zero stays zero, the lazy scan
    equals the vectorised hard formula and costs at most L_b + U - 1 energies per item."""
    att = sharp_monotonic(seed=seed)
    lengths = torch.tensor([30, 17, 5, 1])
    memory = torch.randn(4, 30, MEMORY_DIM)
    queries = torch.randn(12, 4, QUERY_DIM)
    evaluated: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = att.energy_at

    def spy(mem, rows, frames, projected):
        evaluated.append((rows.clone(), frames.clone()))
        return original(mem, rows, frames, projected)

    att.energy_at = spy  # type: ignore[method-assign]
    mem = att.prepare(memory, lengths)
    state = att.initial_state(mem)
    outputs = []
    for query in queries:
        first = len(evaluated)
        out = att.step(query, mem, state, "eval")
        for rows, frames in evaluated[first:]:  # never behind the previous pointer
            assert (frames >= state["pointer"][rows]).all()
            assert (frames <= out.state["pointer"][rows]).all()
        state = out.state
        outputs.append(out)
    per_item = torch.zeros(4, dtype=torch.long)
    for rows, _ in evaluated:
        per_item += torch.bincount(rows, minlength=4)
    assert (per_item <= lengths + len(queries) - 1).all()
    assert att.energy_evaluations == int(per_item.sum())

    prev_hard = torch.zeros(4, 30)
    prev_hard[:, 0] = 1.0
    prev_index = torch.zeros(4, dtype=torch.long)
    was_zero = torch.zeros(4, dtype=torch.bool)
    for query, out in zip(queries, outputs, strict=True):
        with torch.no_grad():
            energies = att.energy(mem.keys["mono"], query.unsqueeze(1))
        z = ((energies > 0) & mem.mask).float()
        prev_hard = hard_alignment(z, prev_hard)
        assert torch.equal(out.weights, prev_hard)
        alive = out.weights.sum(1) == 1
        index = out.weights.argmax(1)
        assert (index[alive] >= prev_index[alive]).all()
        assert (index[alive] < lengths[alive]).all()
        assert not (alive & was_zero).any()
        assert torch.equal(out.state["exhausted"], ~alive)
        prev_index, was_zero = index, ~alive
    assert any(o.weights.sum() > 0 for o in outputs) and outputs[-1].weights.sum() < 4


def test_hard_scan_is_online() -> None:
    """M11: frames after t_i do not change the contexts and pointers of steps 1..i."""
    att = sharp_monotonic(seed=7)
    torch.manual_seed(100)
    memory = torch.randn(1, 40, MEMORY_DIM)
    lengths = torch.tensor([40])
    queries = torch.randn(6, 1, QUERY_DIM)
    _, outputs = hard_run(att, memory, lengths, queries)
    stops = [i for i, o in enumerate(outputs) if int(o.state["pointer"][0]) < 39]
    assert stops, "choose a seed where a step stops before the last frame"
    i = stops[-1]
    t_i = int(outputs[i].state["pointer"][0])
    perturbed = memory.clone()
    perturbed[:, t_i + 1 :] += 10 * torch.randn_like(perturbed[:, t_i + 1 :])
    _, again = hard_run(att, perturbed, lengths, queries)
    for a, b in zip(outputs[: i + 1], again[: i + 1], strict=True):
        assert torch.equal(a.context, b.context)
        assert torch.equal(a.state["pointer"], b.state["pointer"])


def test_saturated_soft_equals_hard() -> None:
    """M12: with |e| >= 20 and no noise, the expected alignment is the hard one (1e-5)."""
    gen = torch.Generator().manual_seed(4)
    z = (torch.rand(10, 3, 500, generator=gen) < 0.05).float()
    soft = hard = dirac(torch.ones(3, 500, dtype=torch.bool), torch.float32)
    for z_i in z:
        soft = expected_alignment(torch.sigmoid(40 * z_i - 20), soft)
        hard = hard_alignment(z_i, hard)
        assert (soft - hard).abs().max() <= 1e-5


def test_gradcheck_parallel_log_and_recursive() -> None:
    """M14/G7: float64 gradcheck of both forms, and finite gradients at p exactly 0 or 1."""
    gen = torch.Generator().manual_seed(0)
    p = (0.01 + 0.98 * torch.rand(2, 7, generator=gen, dtype=torch.float64)).requires_grad_()
    prev = torch.softmax(torch.randn(2, 7, generator=gen, dtype=torch.float64), -1)
    prev.requires_grad_()
    assert torch.autograd.gradcheck(expected_alignment, (p, prev))
    assert torch.autograd.gradcheck(expected_alignment_recursive, (p, prev))
    energies = torch.tensor([[30.0, -30.0, 0.0, 30.0, -30.0]], requires_grad=True)
    prev32 = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]], requires_grad=True)
    alpha = expected_alignment(torch.sigmoid(energies), prev32)
    (alpha * torch.arange(5.0)).sum().backward()
    assert torch.isfinite(energies.grad).all() and torch.isfinite(prev32.grad).all()


def naive_chunkwise(alpha: torch.Tensor, u: torch.Tensor, width: int) -> torch.Tensor:
    """Eq. 17 as a double loop (float64)."""
    beta = torch.zeros_like(alpha)
    frames = alpha.shape[1]
    for b in range(alpha.shape[0]):
        for j in range(frames):
            for k in range(j, min(j + width, frames)):
                chunk = u[b, max(0, k - width + 1) : k + 1]
                beta[b, j] += alpha[b, k] * torch.exp(u[b, j] - torch.logsumexp(chunk, 0))
    return beta


@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_chunkwise_weights_stable_and_mass_preserving(width: int) -> None:
    """C2/C5: equals the naive eq. 17 for a large logit range (with a -30 dip) and keeps the
    row mass; C3: beta is 0 on padding."""
    gen = torch.Generator().manual_seed(width)
    u = 8 * torch.randn(2, 12, generator=gen, dtype=torch.float64)
    u[:, 5] = -30.0
    alpha = torch.rand(2, 12, generator=gen, dtype=torch.float64) / 12
    mask = valid_mask(torch.tensor([12, 9]), 12)
    alpha = alpha * mask
    beta = chunkwise_weights(alpha, u, mask, width)
    reference = naive_chunkwise(alpha, u.masked_fill(~mask, -1e30), width)
    torch.testing.assert_close(beta, reference, atol=1e-10, rtol=0)
    torch.testing.assert_close(beta.sum(1), alpha.sum(1), atol=1e-12, rtol=0)
    assert (beta[1, 9:] == 0).all()
    if width == 1:
        assert torch.equal(beta, alpha)


def test_chunkwise_one_hot_alpha_is_chunk_softmax() -> None:
    """C4: one-hot alpha at t gives the softmax over [max(0, t - w + 1), t]."""
    u = torch.randn(1, 10, dtype=torch.float64)
    mask = torch.ones(1, 10, dtype=torch.bool)
    for t in (0, 1, 6):
        alpha = torch.zeros(1, 10, dtype=torch.float64)
        alpha[0, t] = 1.0
        beta = chunkwise_weights(alpha, u, mask, 3)
        start = max(0, t - 2)
        expected = torch.zeros(1, 10, dtype=torch.float64)
        expected[0, start : t + 1] = torch.softmax(u[0, start : t + 1], 0)
        torch.testing.assert_close(beta, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_mocha_chunk_one_equals_monotonic(mode: str) -> None:
    """C1: MoChA with w = 1 is monotonic attention, soft and hard."""
    mono = sharp_monotonic(seed=3)
    mocha = sharp_monotonic(chunk=1, seed=3)
    mocha.load_state_dict(mono.state_dict(), strict=False)
    mono.noise_std = mocha.noise_std = 0.0
    memory = torch.randn(3, 20, MEMORY_DIM)
    lengths = torch.tensor([20, 11, 4])
    queries = torch.randn(6, 3, QUERY_DIM)
    states = []
    for att in (mono, mocha):
        mem = att.prepare(memory, lengths)
        state = att.initial_state(mem)
        outs = []
        for query in queries:
            out = att.step(query, mem, state, mode)  # type: ignore[arg-type]
            state = out.state
            outs.append(out)
        states.append(outs)
    for a, b in zip(*states, strict=True):
        torch.testing.assert_close(a.weights, b.weights, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.context, b.context, atol=1e-6, rtol=0)


def test_mocha_hard_chunk_cost_and_locality() -> None:
    """C7/C8: <= U w chunk energies, <= T + U - 1 monotonic energies; the context only depends
    on the frames of the chunk [t - w + 1, t]."""
    att = sharp_monotonic(chunk=3, seed=5)
    memory = torch.randn(1, 50, MEMORY_DIM)
    queries = torch.randn(8, 1, QUERY_DIM)
    _, outputs = hard_run(att, memory, torch.tensor([50]), queries)
    assert att.chunk_evaluations <= 8 * 3
    assert att.energy_evaluations <= 50 + 8 - 1
    alive = [(i, int(o.state["pointer"][0])) for i, o in enumerate(outputs) if o.weights.sum() > 0]
    assert alive, "choose a seed where some step stops"
    i, t = alive[-1]
    support = outputs[i].weights[0].nonzero().squeeze(1)
    assert support.min() >= max(0, t - 2) and support.max() == t
    assert math.isclose(float(outputs[i].weights.detach().sum()), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("kind", ["monotonic", "mocha"])
def test_on_exhausted_policies(kind: str) -> None:
    """Spec §4.4: a scan that runs off the end attends nothing ("zero") or the last valid frame
    ("last_frame", the chunk ending there for MoChA); padding is never attended."""
    lengths = torch.tensor([7, 4])
    memory = torch.randn(2, 7, MEMORY_DIM)
    query = torch.randn(2, QUERY_DIM)
    for policy in ("zero", "last_frame"):
        torch.manual_seed(0)
        att = (
            MonotonicAttention(QUERY_DIM, MEMORY_DIM, dim=8, on_exhausted=policy)
            if kind == "monotonic"
            else MoChAAttention(QUERY_DIM, MEMORY_DIM, dim=8, chunk=2, on_exhausted=policy)
        )
        with torch.no_grad():
            att.energy.r.fill_(-1e4)  # no frame ever passes the threshold
        mem = att.prepare(memory, lengths)
        state = att.initial_state(mem)
        for _ in range(2):  # the step that runs off the end, and one after it
            out = att.step(query, mem, state, "eval")
            state = out.state
            assert state["exhausted"].all()
            if policy == "zero":
                assert torch.equal(out.weights, torch.zeros_like(out.weights))
                assert torch.equal(out.context, torch.zeros_like(out.context))
                continue
            assert torch.allclose(out.weights.sum(dim=1), torch.ones(2))
            assert out.weights[1, 4:].abs().sum() == 0  # padding
            assert (
                int(out.weights[0].nonzero().max()) == 6
                and int(out.weights[1].nonzero().max()) == 3
            )
            if kind == "monotonic":
                assert torch.allclose(out.context, memory[[0, 1], [6, 3]])


def test_on_exhausted_rejects_unknown_policy() -> None:
    with pytest.raises(ConfigError, match="on_exhausted"):
        MonotonicAttention(QUERY_DIM, MEMORY_DIM, dim=8, on_exhausted="clamp")


def test_loop_free_scan_finds_the_lazy_scans_frame() -> None:
    """`scan_all_frames` (the exported scan) equals the lazy scan, padding and exhausted
    items included."""
    generator = torch.Generator().manual_seed(0)
    for trial in range(100):
        torch.manual_seed(trial)
        att = MonotonicAttention(8, 6, 16, r_init=float(torch.randn(1)), g_init=3.0).eval()
        frames = int(torch.randint(1, 30, (1,), generator=generator))
        lengths = torch.randint(0, frames + 1, (3,), generator=generator)
        lengths[0] = frames
        mem = att.prepare(torch.randn(3, frames, 6, generator=generator), lengths)
        state = att.initial_state(mem)
        for _ in range(6):
            query = torch.randn(3, 8, generator=generator)
            lazy, loop_free = att.scan(query, mem, state), att.scan_all_frames(query, mem, state)
            assert torch.equal(lazy[0], loop_free[0]) and torch.equal(lazy[1], loop_free[1])
            state = att.step(query, mem, state, "eval").state
