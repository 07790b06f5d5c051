"""What greedy and beam search share: length limits, the <eos> rules, the loop guard, and
turning a finished token sequence into a `Hypothesis`.

Both searches apply exactly the same `constrain` to the per-step log-probabilities, which is
what makes beam search with K = 1 reproduce greedy search token for token.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from asrkit.decoding.options import DecodeOptions, Hypothesis
from asrkit.io import UserError
from asrkit.model.attention import MEMBERS
from asrkit.model.speller import AttentionWindow
from asrkit.tokenizer import BLANK_ID, EOS_ID, Tokenizer

if TYPE_CHECKING:
    from asrkit.model.attention.base import AttendMemory
    from asrkit.model.las import LAS

NEG_INF = float("-inf")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Search in eval mode (no dropout, hard attention scans) and restore the caller's mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def encode(
    model: LAS, feats: Tensor, feat_lengths: Tensor, encoded: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor, AttendMemory]:
    """Encoder outputs (B, T', H), their lengths (B,) and the prepared attention memory;
    `encoded` reuses outputs the caller already has (e.g. for CTC word times)."""
    enc, enc_lengths = encoded if encoded is not None else model.encode(feats, feat_lengths)
    return enc, enc_lengths, model.speller.prepare(enc, enc_lengths)


def attention_window(kind: str, opts: DecodeOptions) -> AttentionWindow | None:
    """The decoding-time attention window of `opts` for attention `kind` (None when off).

    Raises:
        UserError: a window asked of a kind outside the global family (local and monotonic
            kinds read their own windows).
    """
    if opts.att_window <= 0:
        return None
    if kind not in MEMBERS["global"]:
        raise UserError(
            f"--att-window (decode.att_window) applies to global attention "
            f"({', '.join(MEMBERS['global'])}); this model uses {kind}"
        )
    return AttentionWindow(behind=opts.att_window_back, ahead=opts.att_window)


def length_limits(enc_lengths: Tensor, opts: DecodeOptions) -> tuple[Tensor, Tensor]:
    """(B,) minimum and maximum number of output tokens before <eos>."""
    frames = enc_lengths.double()
    max_len = torch.floor(frames * opts.max_len_ratio).long().clamp_min(1)
    min_len = torch.ceil(frames * opts.min_len_ratio).long().minimum(max_len)
    return min_len, max_len


def repeat_blocked(history: Tensor, runs: Tensor, copies: int, step: int | None = None) -> Tensor:
    """Tokens that would complete the `copies`-th back-to-back copy of an n-gram, n <= max_n.

    With copies = 4, "a b c a b c a b c a b" blocks c (a fourth "a b c"), whatever the cycle
    length up to max_n: an attention decoder that loops repeats a whole phrase ("the window
    behind the window behind ..."), which is many characters long, while a real repetition
    ("two two") stays within three copies. Counting copies instead of forbidding any repeat
    keeps "TWO TWO" decodable with character units (its 4-gram "TWO▁" repeats once).

    Args:
        history: (N, w) the last w tokens emitted, w >= min(step, max_n) (beam search keeps
            only these), or the whole history.
        runs: (N, max_n) `repeat_runs` of that history; max_n = 0 disables the guard.
        copies: the copy that is blocked (>= 2).
        step: tokens emitted so far; None when `history` is whole (step = w).

    Returns:
        (N, max_n) long: for each row and cycle length n, the blocked token, or -1.
    """
    width, max_n = history.shape[1], runs.shape[1]
    t = width if step is None else step
    n = torch.arange(1, max_n + 1, device=history.device)
    # The last copies * n - 1 tokens are copies - 1 whole n-cycles and all but one token of
    # the next: (copies - 1) * n - 1 trailing tokens equal the token n before each of them.
    periodic = (runs >= (copies - 1) * n - 1) & (copies * n - 1 <= t)
    previous = history[:, (width - n).clamp_min(0)] if width else torch.zeros_like(runs)
    return torch.where(periodic, previous, torch.full_like(runs, -1))


def update_repeat_runs(runs: Tensor, history: Tensor, step: int | None = None) -> Tensor:
    """`repeat_runs` of `history` from those of `history[:, :-1]` (rows already aligned).

    Args:
        runs: (N, max_n) counts before the newest token.
        history: (N, w) the last w tokens including the newest, w >= min(step, max_n + 1),
            or the whole history.
        step: tokens emitted so far, the newest included; None when `history` is whole.

    Returns:
        (N, max_n): per cycle length n, how many tokens in a row, ending with the newest,
        equal the token n before them. O(N max_n) per step, where recounting from the
        history would cost O(N max_n^2) (a tenth of a batched beam step).
    """
    width, max_n = history.shape[1], runs.shape[1]
    t = width if step is None else step
    if t == 0 or max_n == 0:
        return runs
    n = torch.arange(1, max_n + 1, device=history.device)
    earlier = history[:, (width - 1 - n).clamp_min(0)]  # (N, max_n): the token n back
    match = (earlier == history[:, -1:]) & (n <= t - 1)
    return torch.where(match, runs + 1, torch.zeros_like(runs))


def repeat_runs(history: Tensor, max_n: int) -> Tensor:
    """Trailing n-back match counts (N, max_n) of a whole history (see `update_repeat_runs`)."""
    runs = torch.zeros(history.shape[0], max(max_n, 0), dtype=torch.long, device=history.device)
    for t in range(1, history.shape[1] + 1):
        runs = update_repeat_runs(runs, history[:, :t])
    return runs


def constrain(
    log_probs: Tensor,
    history: Tensor,
    runs: Tensor,
    min_len: Tensor,
    max_len: Tensor,
    opts: DecodeOptions,
    step: int | None = None,
) -> Tensor:
    """Mask the next-token log-probabilities with -inf where a token is not allowed.

    Args:
        log_probs: (N, V) log-softmax of the speller.
        history: (N, t) tokens emitted so far (t is the step index, equal for every row), or
            only the last opts.repeat_ngram of them with `step` = t.
        runs: (N, opts.repeat_ngram) `repeat_runs` of the history, for the loop guard.
        min_len, max_len: (N,) length limits of each row's utterance.
        opts: eos_threshold, repeat_ngram and repeat_copies are used.
        step: tokens emitted so far when `history` holds only the recent ones.

    Returns:
        (N, V): blank never allowed; the loop guard's token blocked; <eos> only after
        min_len and within eos_threshold of the best token; only <eos> at max_len.
    """
    step = history.shape[1] if step is None else step
    out = log_probs.clone()
    out[:, BLANK_ID] = NEG_INF  # the padding id is never an output
    blocked = repeat_blocked(history, runs, opts.repeat_copies, step)
    rows, cycles = (blocked >= 0).nonzero(as_tuple=True)
    if rows.numel():
        out[rows, blocked[rows, cycles]] = NEG_INF
    best = out.max(dim=1).values
    eos = out[:, EOS_ID]
    eos_ok = (eos >= best - opts.eos_threshold) & (step >= min_len)
    out[:, EOS_ID] = torch.where(eos_ok, eos, NEG_INF)
    # At the maximum length the hypothesis must end, whatever <eos> scored.
    forced = torch.full_like(out, NEG_INF)
    forced[:, EOS_ID] = log_probs[:, EOS_ID]
    return torch.where((step >= max_len).unsqueeze(1), forced, out)


def normalized(score: float, num_tokens: int, length_penalty: float) -> float:
    """Rank finished hypotheses by score / (tokens + <eos>)**length_penalty."""
    return score / (num_tokens + 1) ** length_penalty if math.isfinite(score) else score


def build_hypothesis(
    tokens: list[int],
    token_log_probs: list[float],
    weights: Tensor,
    enc_length: int,
    score: float,
    tokenizer: Tokenizer | None,
) -> Hypothesis:
    """Assemble a `Hypothesis`; weights (len(tokens) + 1, T') are cropped to enc_length."""
    attention = weights[:, :enc_length].float().cpu()
    frames = attention[: len(tokens)].argmax(dim=1).tolist() if tokens else []
    return Hypothesis(
        tokens=tokens,
        text=tokenizer.decode(tokens) if tokenizer is not None else "",
        score=score,
        attention=attention,
        token_frames=frames,
        token_log_probs=token_log_probs,
    )
