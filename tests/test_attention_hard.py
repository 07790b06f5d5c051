"""Stochastic hard attention and its REINFORCE loss (spec §12.6)."""

from __future__ import annotations

import torch

from asrkit.model.attention.hard import StochasticHardAttention

QUERY_DIM, MEMORY_DIM, FRAMES = 3, 4, 4


def toy(expected_prob: float = 0.0) -> StochasticHardAttention:
    torch.manual_seed(0)
    return StochasticHardAttention(QUERY_DIM, MEMORY_DIM, dim=5, expected_prob=expected_prob)


def test_sampling_law_and_padding() -> None:
    """H1: sampled frames follow alpha (within 4 standard errors); padding is never drawn."""
    att = toy()
    n = 100_000
    memory = torch.randn(1, FRAMES + 2, MEMORY_DIM).expand(n, -1, -1)
    mem = att.prepare(memory, torch.full((n,), FRAMES))
    query = torch.randn(1, QUERY_DIM).expand(n, -1)
    with torch.no_grad():
        alpha = att.log_probs(query[:1], mem.index_select(torch.tensor([0]))).exp()[0]
        out = att.step(query, mem, {}, "train")
    counts = out.weights.sum(0)
    assert (counts[FRAMES:] == 0).all()
    freq = counts[:FRAMES] / n
    se = (alpha[:FRAMES] * (1 - alpha[:FRAMES]) / n).sqrt()
    assert ((freq - alpha[:FRAMES]).abs() <= 4 * se).all()
    torch.testing.assert_close(out.log_prob, alpha.log()[out.weights.argmax(1)], atol=1e-5, rtol=0)


def test_reinforce_estimator_is_unbiased() -> None:
    """H2: on an enumerable toy (T = 4), the gradient of `auxiliary_loss` with reward f(s)
    averages to -grad sum_s alpha_s f(s), within 3 standard errors, per query component."""
    att = toy()
    att.entropy_weight = 0.0
    n = 200_000
    memory = torch.randn(1, FRAMES, MEMORY_DIM)
    mem = att.prepare(memory.expand(n, -1, -1), torch.full((n,), FRAMES))
    reward_table = torch.tensor([1.0, -2.0, 0.5, 3.0])
    base_query = torch.randn(1, QUERY_DIM)

    query = base_query.expand(n, -1).clone().requires_grad_(True)
    out = att.step(query, mem, {}, "train")
    reward = reward_table[out.weights.argmax(1)]
    loss = att.auxiliary_loss(out.log_prob, out.entropy, reward)  # first batch: b = 0
    (per_sample,) = torch.autograd.grad(loss * n, query)  # row k = -f(s_k) grad log p(s_k)
    estimate, se = per_sample.mean(0), per_sample.std(0) / n**0.5

    exact_query = base_query.clone().requires_grad_(True)
    alpha = att.log_probs(exact_query, mem.index_select(torch.tensor([0]))).exp()[0]
    (exact,) = torch.autograd.grad(-(alpha * reward_table).sum(), exact_query)
    assert ((estimate - exact[0]).abs() <= 3 * se).all(), (estimate, exact, se)


def test_baseline_update_and_entropy_term() -> None:
    """The baseline starts at the first mean reward, then decays; H5: the entropy term's
    gradient is the analytic grad of -lambda_e H(alpha)."""
    att = toy()
    log_prob = torch.zeros(3, requires_grad=True)
    entropy = torch.ones(3, requires_grad=True)
    att.auxiliary_loss(log_prob, entropy, torch.tensor([1.0, 2.0, 3.0]))
    assert float(att.baseline) == 2.0
    loss = att.auxiliary_loss(log_prob, entropy, torch.tensor([4.0, 4.0, 4.0]))
    assert abs(float(att.baseline) - (0.9 * 2.0 + 0.1 * 4.0)) < 1e-6
    loss.backward()
    # advantage uses the old baseline (2.0): d loss / d log_prob = -lambda_r (4 - 2) / B
    torch.testing.assert_close(log_prob.grad, torch.full((3,), -2.0 / 3))
    torch.testing.assert_close(entropy.grad, torch.full((3,), -att.entropy_weight / 3))
    with torch.no_grad():
        att.auxiliary_loss(log_prob, entropy, torch.tensor([100.0, 100.0, 100.0]))
    assert abs(float(att.baseline) - 2.2) < 1e-6  # evaluation does not move the baseline


def test_expected_branch_and_deterministic_eval() -> None:
    """H4/H6: the expected branch is exactly the soft context with no REINFORCE credit; eval
    attends the argmax, identically on every call."""
    att = toy(expected_prob=1.0)
    memory, lengths = torch.randn(2, 6, MEMORY_DIM), torch.tensor([6, 4])
    mem = att.prepare(memory, lengths)
    query = torch.randn(2, QUERY_DIM)
    out = att.step(query, mem, {}, "train")
    soft = att.log_probs(query, mem).exp().masked_fill(~mem.mask, 0)
    torch.testing.assert_close(out.weights, soft)
    torch.testing.assert_close(out.context, torch.bmm(soft.unsqueeze(1), memory).squeeze(1))
    assert (out.log_prob == 0).all()
    first, second = att.step(query, mem, {}, "eval"), att.step(query, mem, {}, "eval")
    assert torch.equal(first.weights, second.weights)
    assert torch.equal(first.weights.argmax(1), soft.argmax(1))
