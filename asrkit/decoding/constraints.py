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
    return enc, enc_lengths, model.speller.attention.prepare(enc, enc_lengths)


def length_limits(enc_lengths: Tensor, opts: DecodeOptions) -> tuple[Tensor, Tensor]:
    """(B,) minimum and maximum number of output tokens before <eos>."""
    frames = enc_lengths.double()
    max_len = torch.floor(frames * opts.max_len_ratio).long().clamp_min(1)
    min_len = torch.ceil(frames * opts.min_len_ratio).long().minimum(max_len)
    return min_len, max_len


def repeat_blocked(history: Tensor, n: int) -> Tensor:
    """(N, t) tokens so far -> (N,) the token that would complete a back-to-back repeat of
    the last n-gram (-1 when none): with ... a b c | a b, n = 3, token c is blocked."""
    rows, t = history.shape
    blocked = torch.full((rows,), -1, dtype=torch.long, device=history.device)
    if n <= 0 or t < 2 * n - 1:
        return blocked
    previous = history[:, t - 2 * n + 1 : t - n + 1]  # (N, n) the n-gram before
    current = history[:, t - n + 1 :]  # (N, n-1) the start of the next one
    repeats = (previous[:, :-1] == current).all(dim=1)
    return torch.where(repeats, previous[:, -1], blocked)


def constrain(
    log_probs: Tensor,
    history: Tensor,
    min_len: Tensor,
    max_len: Tensor,
    opts: DecodeOptions,
) -> Tensor:
    """Mask the next-token log-probabilities with -inf where a token is not allowed.

    Args:
        log_probs: (N, V) log-softmax of the speller.
        history: (N, t) tokens emitted so far (t is the step index, equal for every row).
        min_len, max_len: (N,) length limits of each row's utterance.
        opts: eos_threshold and repeat_ngram are used.

    Returns:
        (N, V): blank never allowed; the loop guard's token blocked; <eos> only after
        min_len and within eos_threshold of the best token; only <eos> at max_len.
    """
    step = history.shape[1]
    out = log_probs.clone()
    out[:, BLANK_ID] = NEG_INF  # the padding id is never an output
    blocked = repeat_blocked(history, opts.repeat_ngram)
    has_block = blocked >= 0
    if bool(has_block.any()):
        rows = has_block.nonzero().squeeze(1)
        out[rows, blocked[rows]] = NEG_INF
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
