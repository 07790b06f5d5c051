"""Location-aware attention (Chorowski et al. 2015, "Attention-based models for speech
recognition").

    f_i = F * alpha_{i-1}                       (1-D conv, `channels` filters of width `kernel`)
    e_ij = w^T tanh(W q_i + V h_j + U f_ij + b)

The state is the previous alignment alpha_{i-1} (B, T). It starts uniform over the *valid*
frames, m / L_b (dividing by T_max would leak the batch's padding into every item). Padded
positions of alpha are exactly 0 and the conv pads with zeros, so an item's location features
are the same alone or inside a padded batch.

With `cumulative=True` the conv also reads the coverage sum_{k<i} alpha_k (ESPnet `AttCovLoc`
convention: the sum includes alpha_0), a second input channel. Why it matters: the previous
alignment alone is the attention's only memory of where it is. A BiLSTM listener's last frame
(the forward direction's whole-utterance summary, keyed by the backward direction's start
state) attracts the mass of easily predicted tokens early in training; once alpha_{i-1} sits
there, the position is lost and every later token stays on that frame. The coverage still
says which frames have been read, so the alignment finds its way back (the demo: test
diagonality 0.79 -> 0.95, asrkit/conf/demo.yaml).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asrkit.config import AttentionConfig, ConfigError
from asrkit.model.attention.additive import AdditiveAttention
from asrkit.model.attention.base import (
    AttendMemory,
    AttentionOutput,
    Mode,
    State,
    energy_dtype,
    masked_softmax,
    no_autocast,
    weighted_context,
)


class LocationAttention(AdditiveAttention):
    """Additive attention plus convolutional features of the previous alignment.

    Args:
        query_dim: decoder query size.
        memory_dim: encoder output size.
        dim: energy MLP size d_a.
        channels: conv filters k over the previous alignment.
        kernel: odd conv width r (zero padding keeps T).
        scaling: softmax sharpening beta.
        cumulative: also convolve the cumulative alignment (a second conv input channel).

    Example:
        >>> import torch
        >>> att = LocationAttention(query_dim=4, memory_dim=6, dim=8, channels=2, kernel=3)
        >>> mem = att.prepare(torch.randn(2, 5, 6), torch.tensor([5, 2]))
        >>> att.initial_state(mem)["prev"][1].tolist()
        [0.5, 0.5, 0.0, 0.0, 0.0]
    """

    def __init__(
        self,
        query_dim: int,
        memory_dim: int,
        dim: int,
        channels: int,
        kernel: int,
        scaling: float = 1.0,
        cumulative: bool = False,
    ) -> None:
        super().__init__(query_dim, memory_dim, dim, scaling)
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"attention.kernel must be a positive odd number, got {kernel}")
        self.cumulative = cumulative
        inputs = 2 if cumulative else 1
        self.conv = nn.Conv1d(inputs, channels, kernel, padding=kernel // 2, bias=False)  # F
        self.location_proj = nn.Linear(channels, dim, bias=False)  # U

    @classmethod
    def from_config(
        cls, cfg: AttentionConfig, query_dim: int, memory_dim: int
    ) -> LocationAttention:
        return cls(
            query_dim, memory_dim, cfg.dim, cfg.channels, cfg.kernel, cfg.scaling, cfg.cumulative
        )

    def initial_state(self, mem: AttendMemory) -> State:
        """{"prev": (B, T) uniform over each item's valid frames; all zero when L_b = 0}, plus
        {"cum": the same (B, T)} when cumulative."""
        dtype = energy_dtype(mem.values)
        lengths = mem.lengths.clamp(min=1).to(dtype).unsqueeze(1)
        prev = mem.mask.to(dtype) / lengths
        return {"prev": prev, "cum": prev} if self.cumulative else {"prev": prev}

    def step(self, query: Tensor, mem: AttendMemory, state: State, mode: Mode) -> AttentionOutput:
        prev = state["prev"]  # (B, T)
        channels = [prev, state["cum"]] if self.cumulative else [prev]
        with no_autocast(query.device):
            conv_in = torch.stack(channels, dim=1).to(energy_dtype(prev))  # (B, 1 or 2, T)
            features = self.conv(conv_in).transpose(1, 2)  # (B, T, channels)
            location = self.location_proj(features)  # (B, T, d_a)
        weights = masked_softmax(self.energies(query, mem, location), mem.mask, self.scaling)
        context = weighted_context(weights, mem.values)
        new_state = {**state, "prev": weights}
        if self.cumulative:
            new_state["cum"] = state["cum"] + weights  # padding stays exactly 0
        return AttentionOutput(context, weights, new_state)
