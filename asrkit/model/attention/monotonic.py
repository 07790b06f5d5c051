"""Monotonic attention (Raffel et al. 2017, "Online and linear-time attention by enforcing
monotonic alignments"; spec §4).

Energy (weight-normalised, spec §4.1): e_ij = g v^T/||v|| tanh(W q_i + V h_j + b) + r, with r
negative (default -4) so the first alignments spread over many frames and every frame gets
gradient. Selection probability p_ij = sigmoid(e_ij + noise), noise ~ N(0, noise_std^2) in
train mode only, and p = 0 on padding.

- train mode: the *expected* alignment alpha_i (rows sum to <= 1; the missing mass is the
  chance the scan ran off the end) from alpha_{i-1} and p_i with the exact parallel-log form
  (`expected_alignment`); `expected_alignment_recursive` is the sequential reference.
- eval mode: hard, left-to-right and lazy. The state holds an int pointer and an `exhausted`
  flag per item; energies are computed one frame at a time from the pointer, only until the
  first e > threshold (strict), so an utterance costs at most T + U - 1 energy evaluations and
  a step never touches the frames behind the pointer. An exhausted item gets a zero context and
  zero weights from then on (policy "zero", consistent with the expected-alignment objective),
  or attends its last frame (policy "last_frame", spec §4.4).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asrkit.config import AttentionConfig, ConfigError
from asrkit.model.attention.base import (
    AttendMemory,
    Attention,
    AttentionOutput,
    Mode,
    State,
    by_item,
    energy_dtype,
    gather_frames,
    no_autocast,
    valid_mask,
    weighted_context,
)


def expected_alignment(p: Tensor, prev: Tensor) -> Tensor:
    """Expected monotonic alignment, parallel-log form (spec §4.3), exact to ~1e-7 in fp32.

    q_j = sum_{l<=j} alpha_{i-1,l} prod_{l<=m<j} (1 - p_m) is evaluated as
    log q_j = S_j + logcumsumexp_j(log alpha_{i-1} - S), S_j = sum_{l<j} log(1 - p_l), then
    alpha_i = p * q. Unlike the TF "parallel" form it never divides by a cumprod, so it stays
    exact for long T and for binary p.

    Args:
        p: (B, T) selection probabilities, 0 on padding.
        prev: (B, T) previous alignment alpha_{i-1}.

    Returns:
        (B, T) alignment alpha_i, float32 (float64 for float64 inputs).
    """
    out_dtype = torch.promote_types(energy_dtype(p), prev.dtype)
    with no_autocast(p.device):
        # float64 inside: S + logcumsumexp(-S) cancels with an error ~ |S| * ulp, and |S| grows
        # with T (16 per saturated frame at the eps clamp); the op is O(B T), cheap next to the
        # O(B T d) energies, and the result is cast back.
        p, prev = p.double(), prev.double()
        finfo = torch.finfo(torch.float64)
        # Clamps keep p = 1 and alpha = 0 finite (no -inf into logcumsumexp, no NaN gradient).
        log_keep = torch.log((1 - p).clamp(min=finfo.eps))
        exclusive = torch.cumsum(log_keep, dim=-1) - log_keep  # S_j
        log_prev = torch.log(prev.clamp(min=finfo.tiny))
        log_q = exclusive + torch.logcumsumexp(log_prev - exclusive, dim=-1)
        return (p * torch.exp(log_q)).to(out_dtype)


def expected_alignment_recursive(p: Tensor, prev: Tensor) -> Tensor:
    """Reference sequential scan (spec §4.3): q_j = (1 - p_{j-1}) q_{j-1} + alpha_{i-1,j}.

    O(T) Python steps; used by tests to check `expected_alignment`. Shapes as there.
    """
    q = prev[:, 0]
    columns = [p[:, 0] * q]
    for j in range(1, p.shape[1]):
        q = (1 - p[:, j - 1]) * q + prev[:, j]
        columns.append(p[:, j] * q)
    return torch.stack(columns, dim=1)


def hard_alignment(z: Tensor, prev: Tensor) -> Tensor:
    """Vectorised hard monotonic alignment for binary z (spec §4.3 "hard" mode).

    Args:
        z: (B, T) in {0, 1}: 1 where the scan would stop (e > threshold), 0 on padding.
        prev: (B, T) previous hard alignment, one-hot or all zero.

    Returns:
        (B, T) one-hot at the first j >= t_{i-1} with z_j = 1, or all zero.
    """
    reachable = z * torch.cumsum(prev, dim=-1)
    stay = torch.cumprod(1 - reachable, dim=-1)
    before = torch.cat([torch.ones_like(stay[:, :1]), stay[:, :-1]], dim=-1)  # exclusive
    return reachable * before


class MonotonicEnergy(nn.Module):
    """e = g v^T/||v|| tanh(W q + V h + b) + r (Raffel et al. 2017, App. G; spec §4.1).

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: energy MLP size d_a.
        r_init: initial offset r; None for no offset (MoChA's chunk energy, under a softmax).
        g_init: initial gain g; None for 1/sqrt(d_a).
    """

    def __init__(
        self,
        query_dim: int,
        memory_dim: int,
        dim: int,
        r_init: float | None,
        g_init: float | None = None,
    ) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_dim, dim, bias=False)  # W
        self.key_proj = nn.Linear(memory_dim, dim)  # V and b
        nn.init.zeros_(self.key_proj.bias)
        self.v = nn.Parameter(torch.randn(dim) / dim)  # v ~ N(0, (1/d_a)^2)
        self.g = nn.Parameter(torch.tensor(dim**-0.5 if g_init is None else float(g_init)))
        self.r = None if r_init is None else nn.Parameter(torch.tensor(float(r_init)))

    def project(self, query: Tensor) -> Tensor:
        """query (..., query_dim) -> W q (..., d_a), float32."""
        with no_autocast(query.device):
            return self.query_proj(query.to(energy_dtype(query)))

    def score(self, keys: Tensor, projected: Tensor) -> Tensor:
        """keys (..., d_a) = `key_proj(h)`, projected (..., d_a) = `project(q)` -> (...) float32."""
        with no_autocast(keys.device):
            dtype = torch.promote_types(energy_dtype(keys), projected.dtype)
            hidden = torch.tanh(keys.to(dtype) + projected.to(dtype))
            direction = self.v.to(dtype) / self.v.to(dtype).norm()
            energies = self.g.to(dtype) * (hidden @ direction)
            return energies if self.r is None else energies + self.r.to(dtype)

    def forward(self, keys: Tensor, query: Tensor) -> Tensor:
        """Energies for keys (..., d_a) and a broadcastable query (..., query_dim)."""
        return self.score(keys, self.project(query))


def item_energies(energy: MonotonicEnergy, keys: Tensor, query: Tensor) -> Tensor:
    """Energies (B * G, T) of queries (B * G, query_dim) against keys (B, T, d_a) of B items
    (G consecutive rows share an item, see `AttendMemory`)."""
    queries = by_item(query, keys.shape[0]).unsqueeze(2)  # (B, G, 1, query_dim)
    return energy(keys.unsqueeze(1), queries).flatten(0, 1)


class MonotonicAttention(Attention):
    """Soft expected alignment in training, linear-time hard scan at inference.

    `energy_evaluations` counts the (item, frame) energies computed in eval mode, so tests can
    check the T + U - 1 bound; reset it by assigning 0.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: energy MLP size d_a.
        r_init: initial energy offset r (negative; -4 for speech).
        noise_std: std of the pre-sigmoid Gaussian noise in train mode.
        g_init: initial energy gain g; None for 1/sqrt(d_a).
        threshold: eval stops at the first frame with e > threshold (p > sigmoid(threshold)).
        on_exhausted: eval, after the scan ran off the end: "zero" context and weights, or
            "last_frame" (attend frame L_b - 1).

    Example:
        >>> att = MonotonicAttention(query_dim=4, memory_dim=6, dim=8)
        >>> mem = att.prepare(torch.randn(1, 7, 6), torch.tensor([7]))
        >>> out = att.step(torch.randn(1, 4), mem, att.initial_state(mem), "eval")
        >>> att.energy_evaluations <= 7
        True
    """

    frame_state = ("alpha",)
    # True while exporting: the hard scan without a loop (`scan_all_frames`), same result
    loop_free: bool = False

    def __init__(
        self,
        query_dim: int,
        memory_dim: int,
        dim: int,
        r_init: float = -4.0,
        noise_std: float = 1.0,
        g_init: float | None = None,
        threshold: float = 0.0,
        on_exhausted: str = "zero",
    ) -> None:
        super().__init__(query_dim, memory_dim)
        if on_exhausted not in ("zero", "last_frame"):
            raise ConfigError(
                f"attention.on_exhausted must be zero or last_frame, not {on_exhausted!r}"
            )
        self.energy = MonotonicEnergy(query_dim, memory_dim, dim, r_init, g_init)
        self.noise_std = noise_std
        self.threshold = threshold
        self.on_exhausted = on_exhausted
        self.energy_evaluations = 0

    @classmethod
    def from_config(
        cls, cfg: AttentionConfig, query_dim: int, memory_dim: int
    ) -> MonotonicAttention:
        return cls(
            query_dim,
            memory_dim,
            cfg.dim,
            cfg.r_init,
            cfg.noise_std,
            cfg.g_init,
            on_exhausted=cfg.on_exhausted,
        )

    def prepare(self, memory: Tensor, lengths: Tensor) -> AttendMemory:
        mask = valid_mask(lengths, memory.shape[1])
        return AttendMemory(memory, mask, lengths, {"mono": self.energy.key_proj(memory)})

    def initial_state(self, mem: AttendMemory) -> State:
        """alpha_0 = delta at frame 0 (B, T); pointer (B,) = 0; exhausted (B,) = (L_b == 0)."""
        alpha = torch.zeros(mem.mask.shape, dtype=energy_dtype(mem.values), device=mem.mask.device)
        alpha[:, 0] = 1.0
        return {
            "alpha": alpha * mem.mask,
            "pointer": torch.zeros_like(mem.lengths),
            "exhausted": mem.lengths == 0,
        }

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        if mode == "train":
            return self._soft_step(query, mem, state)
        return self._hard_step(query, mem, state)

    def selection_probability(self, query: Tensor, mem: AttendMemory, mode: Mode) -> Tensor:
        """p (B, T) = sigmoid(e + noise), noise only in train mode, exactly 0 on padding."""
        energies = item_energies(self.energy, mem.keys["mono"], query)  # (B, T) float32
        if mode == "train" and self.noise_std > 0:
            energies = energies + self.noise_std * torch.randn_like(energies)
        return torch.sigmoid(energies).masked_fill(~mem.mask, 0.0)

    def _soft_step(self, query: Tensor, mem: AttendMemory, state: State) -> AttentionOutput:
        p = self.selection_probability(query, mem, "train")
        alpha = expected_alignment(p, state["alpha"])
        weights = self.soft_weights(alpha, query, mem)
        context = weighted_context(weights, mem.values)
        return AttentionOutput(context, weights, {**state, "alpha": alpha})

    def soft_weights(self, alpha: Tensor, query: Tensor, mem: AttendMemory) -> Tensor:
        """Weights used for the context given the expected alignment (MoChA overrides)."""
        return alpha

    def energy_at(
        self, mem: AttendMemory, rows: Tensor, frames: Tensor, projected: Tensor
    ) -> Tensor:
        """Energies (n,) of the (rows[k], frames[k]) pairs only; counted in `energy_evaluations`.

        `projected` is the (B, d_a) projected query of the step, computed once.
        """
        self.energy_evaluations += int(rows.numel())
        return self.energy.score(mem.keys["mono"][rows // mem.group, frames], projected[rows])

    def scan(self, query: Tensor, mem: AttendMemory, state: State) -> tuple[Tensor, Tensor]:
        """Advance each live pointer to the first frame >= it with e > threshold.

        Each loop iteration evaluates one frame for every item still searching, so the loop
        runs (frames advanced + 1) times, not T times.

        Returns:
            pointer (B,) long and exhausted (B,) bool after this step (an item that ran off the
            end has pointer L_b).
        """
        projected = self.energy.project(query)  # (B, d_a), once per step
        pointer = state["pointer"].clone()
        stopped = torch.zeros_like(state["exhausted"])
        searching = ~state["exhausted"] & (pointer < mem.lengths)
        while bool(searching.any()):
            rows = searching.nonzero().squeeze(1)
            hit = self.energy_at(mem, rows, pointer[rows], projected) > self.threshold
            stopped[rows[hit]] = True
            pointer[rows[~hit]] += 1
            searching = searching & ~stopped & (pointer < mem.lengths)
        return pointer, state["exhausted"] | ~stopped

    def scan_all_frames(
        self, query: Tensor, mem: AttendMemory, state: State
    ) -> tuple[Tensor, Tensor]:
        """`scan`'s result from every frame's energy at once, with no loop: O(T) per step
        instead of the frames advanced, for graphs without control flow (ONNX export).

        The first frame at or after the pointer with e > threshold (argmax of a boolean row
        picks the first True); an item finds none and is exhausted, with pointer L_b.
        """
        energies = item_energies(self.energy, mem.keys["mono"], query)  # (B, T)
        frames = torch.arange(energies.shape[1], device=energies.device).unsqueeze(0)
        live = ~state["exhausted"].unsqueeze(1)
        hits = (energies > self.threshold) & mem.mask & live
        hits = hits & (frames >= state["pointer"].unsqueeze(1))
        found = hits.any(dim=1)
        first = hits.to(torch.int64).argmax(dim=1)
        pointer = torch.where(
            found, first, torch.where(state["exhausted"], state["pointer"], mem.lengths)
        )
        return pointer, state["exhausted"] | ~found

    def _hard_step(self, query: Tensor, mem: AttendMemory, state: State) -> AttentionOutput:
        with torch.no_grad():
            scan = self.scan_all_frames if self.loop_free else self.scan
            pointer, exhausted = scan(query, mem, state)
        frames, attends = self.attended_frame(pointer, exhausted, mem)
        weights, context = self.hard_output(frames, attends, query, mem)
        alive = (~exhausted).to(state["alpha"].dtype).unsqueeze(1)
        alpha = torch.zeros_like(state["alpha"]).scatter(1, frames.unsqueeze(1), alive)
        new_state = {**state, "alpha": alpha, "pointer": pointer, "exhausted": exhausted}
        return AttentionOutput(context, weights, new_state)

    def step_is_final(self, state: State, new_state: State, mem: AttendMemory) -> Tensor:
        """The scan stopped on a frame it has: later frames cannot move it (a scan that ran
        off the end of the frames so far may stop on one still to come)."""
        return ~new_state["exhausted"]

    def attended_frame(
        self, pointer: Tensor, exhausted: Tensor, mem: AttendMemory
    ) -> tuple[Tensor, Tensor]:
        """(B,) frame each item attends and (B,) bool whether it attends at all.

        An exhausted item attends nothing ("zero") or its last frame ("last_frame").
        """
        last = (mem.lengths - 1).clamp_min(0)
        if self.on_exhausted == "last_frame":
            return torch.where(exhausted, last, pointer.minimum(last)), mem.lengths > 0
        return pointer.clamp(max=mem.mask.shape[1] - 1), ~exhausted

    def hard_output(
        self, frames: Tensor, attends: Tensor, query: Tensor, mem: AttendMemory
    ) -> tuple[Tensor, Tensor]:
        """Weights (B, T) one-hot at `frames` and context h_frame (B, D); 0 where not `attends`."""
        context = gather_frames(mem.values, frames.unsqueeze(1)).squeeze(1)  # (B, D)
        context = context * attends.unsqueeze(1).to(context.dtype)
        weights = torch.zeros(mem.mask.shape, dtype=energy_dtype(mem.values), device=frames.device)
        weights = weights.scatter(1, frames.unsqueeze(1), attends.to(weights.dtype).unsqueeze(1))
        return weights, context
