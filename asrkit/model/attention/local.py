"""Local attention: a softmax restricted to a window of 2D+1 frames (Luong et al. 2015, §3.2).

Both kinds score with the projected bilinear ("general") score of `DotAttention`, Luong's best
local scorer, with Bahdanau's additive ("concat") score (`score`, spec §3.2), or with the
location-aware score of Chorowski et al. (2015) ("location": the additive score plus a conv of
the previous alignment around the window, as in the windowed training of Bahdanau et al. 2016).
They only ever touch the window: keys and values are *gathered* at its clamped indices, so a
step costs O((D + K) * d) whatever T is. Positions outside [0, L_b) are masked before the
softmax (clamping alone would score duplicated edge frames, spec P12).

- `local-m` (speech variant, spec §3.1): the centre is the rounded expectation (or the median,
  `centre`) of the previous alignment, never moving backwards
  (`p_i = max(round(sum_j j alpha_{i-1,j}), p_{i-1})`, p_0 = 0). The window may be asymmetric,
  `[p_i - D_l, p_i + D]` (`window_back` = D_l): the centre sits on the previous token, so the
  next one lies ahead of it. The median is the first frame where the cumulative weight
  reaches 1/2: a second peak far ahead (a stray frame) pulls the expectation between the two
  peaks, onto no frame the alignment chose, while the median stays on the main peak.
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
    frame_state = ("prev",)  # the previous alignment, with the location score

    def __init__(
        self,
        query_dim: int,
        memory_dim: int,
        dim: int,
        window: int,
        scaling: float = 1.0,
        window_back: int | None = None,
        score: str = "general",
        channels: int = 10,
        kernel: int = 31,
        centre: str = "expectation",
    ) -> None:
        super().__init__(query_dim, memory_dim, dim, scaling)
        back = window if window_back is None else window_back
        if window < 0 or back < 0:
            raise ConfigError(
                f"attention.window and attention.window_back must be >= 0, got {window}, {back}"
            )
        if score not in ("general", "concat", "location"):
            raise ConfigError(f"attention.score must be general, concat or location, got {score!r}")
        if score == "location" and (kernel < 1 or kernel % 2 == 0):
            raise ConfigError(f"attention.kernel must be a positive odd number, got {kernel}")
        if centre not in ("expectation", "median"):
            raise ConfigError(f"attention.centre must be expectation or median, got {centre!r}")
        self.window = window  # D: frames after the centre
        self.window_back = back  # D_l: frames before the centre
        self.concat = score in ("concat", "location")
        self.location = score == "location"
        self.median = centre == "median"  # how local-m moves its centre; local-p predicts it
        if self.concat:
            # w^T tanh(W q + V h + b) on the window's keys V h (additive.py, over W frames only);
            # no 1/sqrt(d) here: the tanh already bounds the energies.
            self.concat_bias = nn.Parameter(torch.zeros(dim))  # b
            self.concat_score = nn.Linear(dim, 1, bias=False)  # w
            self.scaling = scaling
        if self.location:
            # + U (F * alpha_{i-1}) inside the tanh (location.py); the conv reads the previous
            # alignment over the window widened by K // 2 on each side, so no padding is needed.
            self.conv = nn.Conv1d(1, channels, kernel, bias=False)  # F
            self.location_proj = nn.Linear(channels, dim, bias=False)  # U

    def initial_state(self, mem: AttendMemory) -> State:
        """{"prev": (B, T), the alignment before the first token: all mass on frame 0 (where
        the first window starts); zero for an item without frames} with the location score."""
        if not self.location:
            return {}
        prev = torch.zeros_like(mem.mask, dtype=energy_dtype(mem.values))
        prev[:, 0] = (mem.lengths > 0).to(prev.dtype)
        return {"prev": prev}

    def window_location(self, prev: Tensor, index: Tensor) -> Tensor:
        """Location term (R, W, d) at the window's frames index (R, W) from the previous
        alignment prev (R, T); frames outside [0, T) read 0, as the global conv's padding."""
        half = self.conv.kernel_size[0] // 2
        width = index.shape[1] + 2 * half
        frames = index[:, :1] - half + torch.arange(width, device=index.device)  # (R, W + 2h)
        inside = (frames >= 0) & (frames < prev.shape[1])
        with no_autocast(prev.device):
            dtype = energy_dtype(prev)
            read = prev.gather(1, frames.clamp(0, prev.shape[1] - 1)).to(dtype) * inside
            features = self.conv(read.unsqueeze(1)).transpose(1, 2)  # (R, W, channels)
            return self.location_proj(features)

    def window_energies(
        self, query: Tensor, keys: Tensor, location: Tensor | None = None
    ) -> Tensor:
        """query (R, query_dim), window keys (R, W, d), optional location term (R, W, d) ->
        unscaled energies (R, W), float32."""
        if not self.concat:
            return self.energies(query, keys)
        with no_autocast(query.device):
            dtype = energy_dtype(keys)
            projected = self.query_proj(query.to(dtype)) + self.concat_bias  # (R, d)
            hidden = keys.to(dtype) + projected.unsqueeze(1)  # (R, W, d)
            if location is not None:
                hidden = hidden + location.to(dtype)
            return self.concat_score(torch.tanh(hidden)).squeeze(-1)

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        # Every step reads a window of keys and values: their gradients collect in one buffer
        # each instead of a full-size gradient per step (see `gradient_sink`).
        return super().prepare(memory, lengths).with_sinks(("keys", "values"))

    def window_softmax(
        self, query: Tensor, mem: AttendMemory, centre: Tensor, state: State | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Softmax over each item's window.

        Args:
            query: (B, query_dim).
            mem: prepared memory.
            centre: (B,) long window centres.
            state: the step's state; its "prev" alignment feeds the location score.

        Returns:
            weights (B, W) (0 outside [0, L_b)), frame indices (B, W) long (unclamped) and the
            clamped indices (B, W) safe to gather with; W = D_l + D + 1.
        """
        offsets = torch.arange(-self.window_back, self.window + 1, device=centre.device)
        index = centre.unsqueeze(1) + offsets  # (B, W)
        inside = (index >= 0) & (index < mem.lengths.unsqueeze(1))
        safe = index.clamp(0, mem.values.shape[1] - 1)
        keys = gather_frames(mem.keys["keys"], safe, mem.sinks.get("keys"))  # (B, W, d)
        location = None
        if self.location:
            if state is None or "prev" not in state:
                raise ValueError("the location score needs the previous alignment (state)")
            location = self.window_location(state["prev"], index)
        energies = self.window_energies(query, keys, location)  # (B, W)
        return masked_softmax(energies, inside, self.scaling), index, safe

    def window_output(
        self, weights: Tensor, safe: Tensor, mem: AttendMemory, state: State
    ) -> AttentionOutput:
        """Window weights (B, W) -> context (B, D) from the gathered frames, weights (B, T);
        the full weights become the state's "prev" with the location score."""
        context = weighted_frames(mem.values, safe, weights, mem.sinks.get("values"))
        full = scatter_frames(weights, safe, mem.values.shape[1])
        if self.location:
            state = {**state, "prev": full}
        return AttentionOutput(context, full, state)


class LocalMAttention(_WindowAttention):
    """Local attention with a monotonic window centre from the previous alignment (local-m).

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: projection size d of the score.
        window: frames D after the centre (in encoder frames).
        scaling: softmax sharpening beta.
        window_back: frames D_l before the centre; None = D (symmetric, Luong's window).
        score: "general" (projected bilinear), "concat" (additive) or "location" (additive plus
            location features) window scores.
        channels: conv filters over the previous alignment (location score only).
        kernel: odd conv width over the previous alignment (location score only).
        centre: "expectation" (rounded mean position) or "median" of the previous alignment.

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
            query_dim,
            memory_dim,
            cfg.dim,
            cfg.window,
            cfg.scaling,
            cfg.window_back,
            cfg.score,
            cfg.channels,
            cfg.kernel,
            cfg.centre,
        )

    def step_is_final(self, state: State, new_state: State, mem: AttendMemory) -> Tensor:
        """The whole window [centre - D_l, centre + D] lies within the frames so far."""
        return state["centre"] + self.window < mem.lengths

    def initial_state(self, mem: AttendMemory) -> State:
        """{"centre": (B,) long, the window centre of the next step; starts at frame 0}, plus
        the previous alignment with the location score (see `_WindowAttention`)."""
        return {**super().initial_state(mem), "centre": torch.zeros_like(mem.lengths)}

    def next_centre(self, weights: Tensor, index: Tensor, centre: Tensor) -> Tensor:
        """The centre of the next step (B,) from this step's window weights (B, W) at frames
        index (B, W): their rounded expectation or median, never behind `centre`. An item
        without valid frames has zero weights and keeps its centre."""
        if self.median:
            # First window column where the cumulative weight reaches 1/2.
            column = (weights.cumsum(1) < 0.5).sum(1).clamp(max=weights.shape[1] - 1)
            position = index.gather(1, column.unsqueeze(1)).squeeze(1)
            position = torch.where(weights.sum(1) > 0, position, centre)
        else:
            position = (weights * index.to(weights.dtype)).sum(1).round().long()
        return torch.maximum(position, centre)

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        centre = state["centre"]
        weights, index, safe = self.window_softmax(query, mem, centre, state)
        with torch.no_grad():
            next_centre = self.next_centre(weights, index, centre)
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
        score: "general" (projected bilinear), "concat" (additive) or "location" window scores.
        channels: conv filters over the previous alignment (location score only).
        kernel: odd conv width over the previous alignment (location score only).
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
        channels: int = 10,
        kernel: int = 31,
    ) -> None:
        if window < 1:
            raise ConfigError(f"attention.window must be >= 1 for local-p, got {window}")
        super().__init__(query_dim, memory_dim, dim, window, scaling, None, score, channels, kernel)
        self.position_hidden = nn.Linear(query_dim, dim, bias=False)  # W_p
        self.position_score = nn.Linear(dim, 1, bias=False)  # v_p
        self.renormalize = renormalize
        self.sigma = window / 2

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_dim: int, memory_dim: int) -> LocalPAttention:
        if cfg.window_back is not None:
            # The Gaussian is centred on p: a lopsided window would cut one of its sides.
            raise ConfigError("attention.window_back is for local-m only; local-p is symmetric")
        if cfg.centre != "expectation":
            raise ConfigError("attention.centre is for local-m only; local-p predicts its centre")
        return cls(
            query_dim,
            memory_dim,
            cfg.dim,
            cfg.window,
            cfg.renormalize,
            cfg.scaling,
            cfg.score,
            cfg.channels,
            cfg.kernel,
        )

    def position(self, query: Tensor, lengths: Tensor) -> Tensor:
        """Predicted centre p (B,) in [0, L_b - 1] (0-based), float32, differentiable."""
        with no_autocast(query.device):
            q = query.to(energy_dtype(query))
            gate = torch.sigmoid(self.position_score(torch.tanh(self.position_hidden(q))))
            return (lengths - 1).clamp(min=0).to(q.dtype) * gate.squeeze(1)

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        p = self.position(query, mem.lengths)  # (B,)
        weights, index, safe = self.window_softmax(query, mem, p.detach().floor().long(), state)
        # The window is piecewise constant in p; the gradient reaches p through this factor.
        gauss = torch.exp(-((index.to(p.dtype) - p.unsqueeze(1)) ** 2) / (2 * self.sigma**2))
        weights = weights * gauss  # still exactly 0 outside [0, L_b)
        if self.renormalize:
            weights = weights / weights.sum(1, keepdim=True).clamp(min=torch.finfo(p.dtype).tiny)
        return self.window_output(weights, safe, mem, state)
