"""CTC prefix scoring inside an attention window: exact when the window holds the paths,
independent of the batch, and the same as full scoring when the window covers the input."""

from __future__ import annotations

import torch

from asrkit.decoding.ctc_prefix import CTCPrefixScorer, CTCPrefixState
from asrkit.tokenizer import BLANK_ID, EOS_ID


def _follow(
    scorer: CTCPrefixScorer, labels: list[int], peaks: list[list[int]], candidates: torch.Tensor
) -> list[torch.Tensor]:
    """Increments of `candidates` at each step while the rows extend by `labels` in turn."""
    state: CTCPrefixState = scorer.initial_state()
    rows = torch.arange(scorer.rows)
    steps = []
    for label, peak in zip(labels, peaks, strict=True):
        inc, ext = scorer.score(state, candidates, torch.tensor(peak))
        steps.append(inc)
        col = (candidates[0] == label).nonzero().item()
        chosen = torch.full_like(rows, col)
        state = scorer.select(state, inc, ext, rows, chosen, torch.full_like(rows, label))
    return steps


def _spiky(frames: int, spikes: dict[int, int]) -> torch.Tensor:
    """(1, frames, 6) log-posteriors: blank everywhere except label spikes[frame] there."""
    log_probs = torch.full((frames, 6), -12.0)
    log_probs[:, BLANK_ID] = -0.01
    for frame, label in spikes.items():
        log_probs[frame, label], log_probs[frame, BLANK_ID] = -0.01, -6.0
    return log_probs.log_softmax(-1).unsqueeze(0)


def test_window_wider_than_the_input_is_exact() -> None:
    log_probs = torch.randn(2, 9, 6, generator=torch.Generator().manual_seed(3)).log_softmax(-1)
    lengths, candidates = torch.tensor([9, 7]), torch.tensor([[2, 3, EOS_ID]] * 2)
    peaks = [[0, 6], [4, 1], [8, 3]]
    exact = _follow(CTCPrefixScorer(log_probs, lengths), [2, 3, 2], peaks, candidates)
    wide = _follow(CTCPrefixScorer(log_probs, lengths, margin=20), [2, 3, 2], peaks, candidates)
    for a, b in zip(exact, wide, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_window_around_the_spikes_matches_full_scoring() -> None:
    # Labels 2, 3, 4 spike at frames 3, 9, 15 of 20; the attention looks there.
    log_probs = _spiky(20, {3: 2, 9: 3, 15: 4})
    candidates = torch.tensor([[2, 3, 4, EOS_ID]])
    labels, peaks = [2, 3, 4], [[3], [9], [15]]
    exact = _follow(CTCPrefixScorer(log_probs, torch.tensor([20])), labels, peaks, candidates)
    window = _follow(
        CTCPrefixScorer(log_probs, torch.tensor([20]), margin=2), labels, peaks, candidates
    )
    for step, (a, b) in enumerate(zip(exact, window, strict=True)):
        right = candidates[0].tolist().index(labels[step])
        assert abs(float(a[0, right] - b[0, right])) < 1e-3  # the label the spike supports
        assert abs(float(a[0, -1] - b[0, -1])) < 1e-3  # ending here (blank tail in closed form)
    # Label 3 first, with the attention at frame 3: its spike (frame 9) is outside the window.
    for margin, low, high in [
        (0, -7.0, -5.0),
        (2, -20.0, -9.0),
    ]:  # exact: pay 6 to skip the spike of 2
        scorer = CTCPrefixScorer(log_probs, torch.tensor([20]), margin=margin)
        inc, _ = scorer.score(scorer.initial_state(), torch.tensor([[3]]), torch.tensor([3]))
        assert low < float(inc[0, 0]) < high


def test_window_rows_do_not_depend_on_the_batch() -> None:
    log_probs = torch.randn(2, 12, 6, generator=torch.Generator().manual_seed(5)).log_softmax(-1)
    candidates = torch.tensor([[2, 3, EOS_ID]] * 2)
    peaks = [[1, 8], [3, 9], [6, 11]]
    batched = CTCPrefixScorer(log_probs, torch.tensor([12, 10]), margin=2)
    alone = CTCPrefixScorer(log_probs[1:, :10], torch.tensor([10]), margin=2)
    steps_b = _follow(batched, [2, 3, 2], peaks, candidates)
    steps_a = _follow(alone, [2, 3, 2], [[p[1]] for p in peaks], candidates[1:])
    for b, a in zip(steps_b, steps_a, strict=True):
        assert torch.allclose(b[1], a[0], atol=1e-4)
