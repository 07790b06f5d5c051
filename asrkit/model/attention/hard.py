"""Stochastic hard attention trained with REINFORCE (Xu et al. 2015, "Show, attend and tell",
§4.1; spec §6).

alpha_i = masked softmax of additive energies; in train mode a frame s_i ~ Categorical(alpha_i)
is sampled (Gumbel-max over the masked log-softmax, so padding is never drawn) and
c_i = h_{s_i}. The sample is not differentiable: the speller sums `log_prob` and `entropy` over
the steps and calls `auxiliary_loss`, the score-function (REINFORCE) term with a moving-average
baseline and an entropy bonus.

As in Xu et al., with probability `expected_prob` (0.5) per example and step, training uses the
expected (soft) context instead of the sample; such a step returns the soft weights and a zero
`log_prob` (the sample did not influence the output, so it gets no REINFORCE credit) and is
trained by backpropagation like soft attention. Eval mode attends the argmax frame,
deterministically.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from asrkit.config import AttentionConfig
from asrkit.model.attention.additive import AdditiveAttention
from asrkit.model.attention.base import (
    AttendMemory,
    AttentionOutput,
    Mode,
    State,
    weighted_context,
)


class StochasticHardAttention(AdditiveAttention):
    """Additive scorer, one sampled (train) or argmax (eval) frame per step.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: energy MLP size d_a.
        baseline_decay: b <- decay * b + (1 - decay) * mean reward after each update.
        reinforce_weight: lambda_r, weight of the score-function term.
        entropy_weight: lambda_e, weight of the entropy bonus.
        expected_prob: per-example probability of using the soft context in training.
        scaling: softmax sharpening beta.
    """

    def __init__(
        self,
        query_dim: int,
        memory_dim: int,
        dim: int,
        baseline_decay: float = 0.9,
        reinforce_weight: float = 1.0,
        entropy_weight: float = 0.01,
        expected_prob: float = 0.5,
        scaling: float = 1.0,
    ) -> None:
        super().__init__(query_dim, memory_dim, dim, scaling)
        self.baseline_decay = baseline_decay
        self.reinforce_weight = reinforce_weight
        self.entropy_weight = entropy_weight
        self.expected_prob = expected_prob
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))

    @classmethod
    def from_config(
        cls, cfg: AttentionConfig, query_dim: int, memory_dim: int
    ) -> StochasticHardAttention:
        return cls(
            query_dim,
            memory_dim,
            cfg.dim,
            baseline_decay=cfg.baseline_decay,
            reinforce_weight=cfg.reinforce_weight,
            entropy_weight=cfg.entropy_weight,
            scaling=cfg.scaling,
        )

    def log_probs(self, query: Tensor, mem: AttendMemory) -> Tensor:
        """Masked log-softmax (B, T) in float32; padded frames hold a huge negative, not -inf."""
        dtype = torch.promote_types(mem.keys["keys"].dtype, torch.float32)
        scores = self.energies(query, mem) * self.scaling
        return torch.log_softmax(scores.masked_fill(~mem.mask, torch.finfo(dtype).min), dim=-1)

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        log_p = self.log_probs(query, mem)  # (B, T)
        probs = log_p.exp().masked_fill(~mem.mask, 0.0)
        has_frame = (mem.lengths > 0).unsqueeze(1)
        if mode != "train":
            one_hot = F.one_hot(probs.argmax(-1), probs.shape[1]).to(probs.dtype) * has_frame
            return AttentionOutput(weighted_context(one_hot, mem.values), one_hot, state)
        gumbel = -torch.empty_like(log_p).exponential_().log()  # Gumbel(0, 1): -log Exp(1)
        sample = (log_p.detach() + gumbel).masked_fill(~mem.mask, float("-inf")).argmax(-1)
        one_hot = F.one_hot(sample, probs.shape[1]).to(probs.dtype) * has_frame
        use_expected = (torch.rand_like(probs[:, :1]) < self.expected_prob) | ~has_frame  # (B, 1)
        weights = torch.where(use_expected, probs, one_hot)
        log_prob = log_p.gather(1, sample.unsqueeze(1)).masked_fill(use_expected, 0.0)
        entropy = -(probs * log_p.masked_fill(~mem.mask, 0.0)).sum(-1)
        context = weighted_context(weights, mem.values)
        return AttentionOutput(context, weights, state, log_prob.squeeze(1), entropy)

    def auxiliary_loss(self, log_prob_sum: Tensor, entropy_sum: Tensor, reward: Tensor) -> Tensor:
        """REINFORCE loss -mean(lambda_r (R - b) log p(s) + lambda_e H), then update b.

        The baseline used is the one from *before* this batch, so it is independent of the
        current samples and the estimator stays unbiased; the first batch initialises it. It is
        only updated when autograd is enabled (training, not a no_grad dev-set evaluation).

        Args:
            log_prob_sum: (B,) sum over steps of `log_prob`.
            entropy_sum: (B,) sum over steps of `entropy`.
            reward: (B,) per-utterance log-likelihood of the reference (detached here).

        Returns:
            Scalar loss to add to the training loss.
        """
        reward = reward.detach().to(log_prob_sum.dtype)
        advantage = reward - self.baseline.to(reward.dtype)
        loss = -(
            self.reinforce_weight * advantage * log_prob_sum + self.entropy_weight * entropy_sum
        ).mean()
        if not torch.is_grad_enabled():
            return loss  # a dev-set loss under no_grad must not move the training baseline
        with torch.no_grad():
            mean = reward.mean().to(self.baseline.dtype)
            decayed = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean
            self.baseline.copy_(torch.where(self.baseline_ready, decayed, mean))
            self.baseline_ready.fill_(True)
        return loss
