"""CTC prefix scoring for joint CTC/attention beam search (Watanabe et al. 2017, §3.3).

For a prefix g the CTC prefix probability psi(g) = sum over all frame paths whose collapsed
labelling starts with g. It is computed incrementally from two forward variables per frame:
r_t^n(g) (paths ending in the last label of g) and r_t^b(g) (paths ending in blank). Adding a
candidate c to g costs one pass over the frames, vectorised here over every hypothesis row
(utterances x beams) and every candidate at once, as in ESPnet's `CTCPrefixScoreTH`.

Padding trick: beyond an utterance's last frame the blank log-prob is set to 0 and every label
to -inf, so r^b simply carries its final value forward and r^n dies. Then the end-of-sentence
score is always read at the last padded frame, and padded and unpadded batches agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from asrkit.tokenizer import BLANK_ID, EOS_ID

LOG_ZERO = -1e10  # finite "log 0": -inf would turn logaddexp(-inf, -inf) into NaN gradients


@dataclass(frozen=True)
class CTCPrefixState:
    """Forward variables of N prefixes.

    Attributes:
        r: (T, 2, N) log r^n and log r^b per frame.
        log_psi: (N,) log prefix probability of each prefix.
        last: (N,) long, last label of each prefix (-1 for the empty prefix).
        length: number of labels in every prefix (all rows advance together).
    """

    r: Tensor
    log_psi: Tensor
    last: Tensor
    length: int


class CTCPrefixScorer:
    """Scores candidate extensions of N prefixes against fixed CTC posteriors.

    Args:
        log_probs: (N, T, V) CTC log-softmax outputs, one row per hypothesis.
        lengths: (N,) valid frames per row.

    Example:
        >>> scorer = CTCPrefixScorer(torch.randn(2, 5, 4).log_softmax(-1), torch.tensor([5, 3]))
        >>> state = scorer.initial_state()
        >>> inc, _ = scorer.score(state, torch.tensor([[1, 2], [3, 1]]))
        >>> inc.shape
        torch.Size([2, 2])
    """

    def __init__(self, log_probs: Tensor, lengths: Tensor) -> None:
        rows, frames, _ = log_probs.shape
        beyond = torch.arange(frames, device=log_probs.device)[None, :] >= lengths[:, None]
        x = log_probs.float().masked_fill(beyond.unsqueeze(2), LOG_ZERO)
        x[..., BLANK_ID] = x[..., BLANK_ID].masked_fill(beyond, 0.0)
        self.x = x.transpose(0, 1).contiguous()  # (T, N, V): the loop runs over time
        self.frames = frames
        self.rows = rows

    def initial_state(self) -> CTCPrefixState:
        """The empty prefix: all-blank paths, psi = 1."""
        r = torch.full((self.frames, 2, self.rows), LOG_ZERO, device=self.x.device)
        r[:, 1] = torch.cumsum(self.x[:, :, BLANK_ID], dim=0)
        zeros = torch.zeros(self.rows, device=self.x.device)
        last = torch.full((self.rows,), -1, dtype=torch.long, device=self.x.device)
        return CTCPrefixState(r, zeros, last, 0)

    def index_select(self, index: Tensor) -> None:
        """Keep only (or repeat) rows `index` of the posteriors (finished utterances leave)."""
        self.x = self.x.index_select(1, index)
        self.rows = index.numel()

    def score(self, state: CTCPrefixState, candidates: Tensor) -> tuple[Tensor, Tensor]:
        """Log-prob increments log psi(g + c) - log psi(g) for each candidate c.

        Args:
            state: the prefixes g, N rows.
            candidates: (N, C) long label ids; EOS_ID scores the complete sequence g.

        Returns:
            increments (N, C), and the forward variables r (T, 2, N, C) of the extended
            prefixes (pass them to `select`).
        """
        frames, rows, count = self.frames, self.rows, candidates.shape[1]
        xs = torch.gather(self.x, 2, candidates.unsqueeze(0).expand(frames, -1, -1))  # (T,N,C)
        blank = self.x[:, :, BLANK_ID].unsqueeze(2)  # (T, N, 1)
        r_sum = torch.logaddexp(state.r[:, 0], state.r[:, 1])  # (T, N)
        # A repeated label needs a blank in between: only r^b paths may be extended by it.
        repeat = (candidates == state.last.unsqueeze(1)).unsqueeze(0)  # (1, N, C)
        # z[t] = (phi_t, r^n_t, r^b_t): both recursions read (r^n_{t-1}; phi_{t-1} or r^b_{t-1}),
        # i.e. z[t-1, 1:2] against the strided pair z[t-1, 0::2], so one frame is 2 tensor ops
        # written in place (the loop is per-step Python overhead, most of a small batch's time).
        z = torch.full((frames, 3, rows, count), LOG_ZERO, device=xs.device)
        z[:, 0] = torch.where(repeat, state.r[:, 1].unsqueeze(2), r_sum.unsqueeze(2))
        log_phi, r = z[:, 0], z[:, 1:]  # (T, N, C), (T, 2, N, C) views
        emit = torch.stack([xs, blank.expand_as(xs)], dim=1)  # (T, 2, N, C)
        if state.length == 0:
            r[0, 0] = xs[0]
        start = max(state.length, 1)
        for t in range(start, frames):
            torch.add(torch.logaddexp(z[t - 1, 1:2], z[t - 1, 0::2]), emit[t], out=r[t])
        if start <= frames:
            # psi(g + c) = sum_t phi_{t-1} x_t(c), plus paths that emitted c at frame start-1.
            emitted = log_phi[start - 1 : frames - 1] + xs[start:]
            log_psi = torch.logsumexp(torch.cat([r[start - 1, 0].unsqueeze(0), emitted]), dim=0)
        else:  # more labels than frames: no CTC path left
            log_psi = torch.full((rows, count), LOG_ZERO, device=xs.device)
        is_eos = candidates == EOS_ID
        log_psi = torch.where(is_eos, r_sum[-1].unsqueeze(1).expand(-1, count), log_psi)
        log_psi = log_psi.masked_fill(candidates == BLANK_ID, LOG_ZERO)
        return log_psi - state.log_psi.unsqueeze(1), r

    def select(
        self,
        state: CTCPrefixState,
        increments: Tensor,
        r: Tensor,
        rows: Tensor,
        cols: Tensor,
        labels: Tensor,
    ) -> CTCPrefixState:
        """State of the chosen extensions: row `rows[i]` extended by its candidate `cols[i]`.

        Args:
            state: the prefixes that were scored.
            increments: (N, C) and r (T, 2, N, C), as returned by `score`.
            rows, cols, labels: (M,) chosen parent row, candidate column and label id.
        """
        log_psi = state.log_psi[rows] + increments[rows, cols]
        return CTCPrefixState(r[:, :, rows, cols], log_psi, labels, state.length + 1)
