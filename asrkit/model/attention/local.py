"""Local attention: a softmax restricted to a window of 2D+1 frames (Luong et al. 2015, §3.2).

Both kinds score with the projected bilinear ("general") score of `DotAttention`, Luong's best
local scorer, or with Bahdanau's additive ("concat") score (`score`, spec §3.2), and only ever
touch the window: keys and values are *gathered* at its clamped indices, so a step costs
O(D * d) whatever T is. Positions outside [0, L_b) are masked before the softmax (clamping
alone would score duplicated edge frames, spec P12).

- `local-m` (speech variant, spec §3.1): the centre is the rounded expectation of the previous
  alignment, never moving backwards (`p_i = max(round(sum_j j alpha_{i-1,j}), p_{i-1})`, p_0 = 0).
  The window may be asymmetric, `[p_i - D_l, p_i + D]` (`window_back` = D_l): the centre sits on
  the previous token, so the next one lies ahead of it.
- `local-p` (Luong's predictive form, spec §3.2): `p_i = (S_b - 1) sigmoid(v_p^T tanh(W_p q_i))`
  with the per-item valid length S_b, times a Gaussian `exp(-(j - p_i)^2 / (2 sigma^2))`,
  sigma = D / 2. The weights then sum to less than 1 unless `renormalize`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asrkit.config import AttentionConfig, ConfigError
from asrkit.model.attention.base import (
    AttendMemory,
    AttentionOutput,
    Mode,
    State,
    energy_dtype,
    gather_frames,
    masked_softmax,
    no_autocast,
    scatter_frames,
    weighted_frames,
)
from asrkit.model.attention.dot import DotAttention


class _WindowAttention(DotAttention):
    """Shared window machinery: softmax of window energies over [centre - D_l, centre + D]."""

    stateless = False  # local-m centres on the previous step; both read through gradient sinks

    def __init__(
        self,
        query_dim: int,
        memory_dim: int,
        dim: int,
        window: int,
        scaling: float = 1.0,
        window_back: int | None = None,
        score: str = "general",
    ) -> None:
        super().__init__(query_dim, memory_dim, dim, scaling)
        back = window if window_back is None else window_back
        if window < 0 or back < 0:
            raise ConfigError(
                f"attention.window and attention.window_back must be >= 0, got {window}, {back}"
            )
        if score not in ("general", "concat"):
            raise ConfigError(f"attention.score must be general or concat, got {score!r}")
        self.window = window  # D: frames after the centre
        self.window_back = back  # D_l: frames before the centre
        self.concat = score == "concat"
        if self.concat:
            # w^T tanh(W q + V h + b) on the window's keys V h (additive.py, over W frames only);
            # no 1/sqrt(d) here: the tanh already bounds the energies.
            self.concat_bias = nn.Parameter(torch.zeros(dim))  # b
            self.concat_score = nn.Linear(dim, 1, bias=False)  # w
            self.scaling = scaling

    def window_energies(self, query: Tensor, keys: Tensor) -> Tensor:
        """query (R, query_dim), window keys (R, W, d) -> unscaled energies (R, W), float32."""
        if not self.concat:
            return self.energies(query, keys)
        with no_autocast(query.device):
            dtype = energy_dtype(keys)
            projected = self.query_proj(query.to(dtype)) + self.concat_bias  # (R, d)
            hidden = torch.tanh(keys.to(dtype) + projected.unsqueeze(1))  # (R, W, d)
            return self.concat_score(hidden).squeeze(-1)

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        # Every step reads a window of keys and values: their gradients collect in one buffer
        # each instead of a full-size gradient per step (see `gradient_sink`).
        return super().prepare(memory, lengths).with_sinks(("keys", "values"))

    def window_softmax(
        self, query: Tensor, mem: AttendMemory, centre: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Softmax over each item's window.

        Args:
            query: (B, query_dim).
            mem: prepared memory.
            centre: (B,) long window centres.

        Returns:
            weights (B, W) (0 outside [0, L_b)), frame indices (B, W) long (unclamped) and the
            clamped indices (B, W) safe to gather with; W = D_l + D + 1.
        """
        offsets = torch.arange(-self.window_back, self.window + 1, device=centre.device)
        index = centre.unsqueeze(1) + offsets  # (B, W)
        inside = (index >= 0) & (index < mem.lengths.unsqueeze(1))
        safe = index.clamp(0, mem.values.shape[1] - 1)
        keys = gather_frames(mem.keys["keys"], safe, mem.sinks.get("keys"))  # (B, W, d)
        energies = self.window_energies(query, keys)  # (B, W)
        return masked_softmax(energies, inside, self.scaling), index, safe

    def window_output(
        self, weights: Tensor, safe: Tensor, mem: AttendMemory, state: State
    ) -> AttentionOutput:
        """Window weights (B, W) -> context (B, D) from the gathered frames, weights (B, T)."""
        context = weighted_frames(mem.values, safe, weights, mem.sinks.get("values"))
        full = scatter_frames(weights, safe, mem.values.shape[1])
        return AttentionOutput(context, full, state)


class LocalMAttention(_WindowAttention):
    """Local attention with a monotonic, expectation-driven window centre (local-m, speech).

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: projection size d of the score.
        window: frames D after the centre (in encoder frames).
        scaling: softmax sharpening beta.
        window_back: frames D_l before the centre; None = D (symmetric, Luong's window).
        score: "general" (projected bilinear) or "concat" (additive) window scores.

    Example:
        >>> att = LocalMAttention(query_dim=4, memory_dim=6, dim=8, window=1)
        >>> mem = att.prepare(torch.randn(1, 9, 6), torch.tensor([9]))
        >>> out = att.step(torch.randn(1, 4), mem, att.initial_state(mem), "eval")
        >>> bool((out.weights[0, 2:] == 0).all())
        True
    """

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_dim: int, memory_dim: int) -> LocalMAttention:
        return cls(
            query_dim, memory_dim, cfg.dim, cfg.window, cfg.scaling, cfg.window_back, cfg.score
        )

    def initial_state(self, mem: AttendMemory) -> State:
        """{"centre": (B,) long, the window centre of the next step; starts at frame 0}."""
        return {"centre": torch.zeros_like(mem.lengths)}

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        centre = state["centre"]
        weights, index, safe = self.window_softmax(query, mem, centre)
        with torch.no_grad():
            # Rounded expected position of this step's alignment; the clamp keeps the centre
            # monotonic. An item without valid frames has zero weights and keeps its centre.
            expected = (weights * index.to(weights.dtype)).sum(1).round().long()
            next_centre = torch.maximum(expected, centre)
        return self.window_output(weights, safe, mem, {**state, "centre": next_centre})


class LocalPAttention(_WindowAttention):
    """Luong local-p: predicted centre, window softmax times a Gaussian of width D / 2.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: projection size d of the score and of the position MLP.
        window: half width D (>= 1); sigma = D / 2.
        renormalize: divide by the sum after the Gaussian factor so rows sum to 1.
        scaling: softmax sharpening beta.
        score: "general" (projected bilinear) or "concat" (additive) window scores.
    """

    def __init__(
        self,
        query_dim: int,
        memory_dim: int,
        dim: int,
        window: int,
        renormalize: bool = False,
        scaling: float = 1.0,
        score: str = "general",
    ) -> None:
        if window < 1:
            raise ConfigError(f"attention.window must be >= 1 for local-p, got {window}")
        super().__init__(query_dim, memory_dim, dim, window, scaling, score=score)
        self.position_hidden = nn.Linear(query_dim, dim, bias=False)  # W_p
        self.position_score = nn.Linear(dim, 1, bias=False)  # v_p
        self.renormalize = renormalize
        self.sigma = window / 2

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_dim: int, memory_dim: int) -> LocalPAttention:
        if cfg.window_back is not None:
            # The Gaussian is centred on p: a lopsided window would cut one of its sides.
            raise ConfigError("attention.window_back is for local-m only; local-p is symmetric")
        return cls(
            query_dim, memory_dim, cfg.dim, cfg.window, cfg.renormalize, cfg.scaling, cfg.score
        )

    def position(self, query: Tensor, lengths: Tensor) -> Tensor:
        """Predicted centre p (B,) in [0, L_b - 1] (0-based), float32, differentiable."""
        with no_autocast(query.device):
            q = query.to(energy_dtype(query))
            gate = torch.sigmoid(self.position_score(torch.tanh(self.position_hidden(q))))
            return (lengths - 1).clamp(min=0).to(q.dtype) * gate.squeeze(1)

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        p = self.position(query, mem.lengths)  # (B,)
        weights, index, safe = self.window_softmax(query, mem, p.detach().floor().long())
        # The window is piecewise constant in p; the gradient reaches p through this factor.
        gauss = torch.exp(-((index.to(p.dtype) - p.unsqueeze(1)) ** 2) / (2 * self.sigma**2))
        weights = weights * gauss  # still exactly 0 outside [0, L_b)
        if self.renormalize:
            weights = weights / weights.sum(1, keepdim=True).clamp(min=torch.finfo(p.dtype).tiny)
        return self.window_output(weights, safe, mem, state)
