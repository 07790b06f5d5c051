"""Word times from the attention alignment or from CTC forced alignment.

Attention: each token sits at the encoder frame its attention row peaks on (made monotone with
a running maximum, since an untrained or confused model may look back); a word starts at its
first token's frame and ends where the next word starts (the last word: one frame after its
last token).

CTC: a Viterbi alignment of the decoded tokens over the blank-augmented 2L+1 state lattice
(`torchaudio.functional.forced_align` was removed in torchaudio 2.9, so it is done here); a
word spans the frames of its tokens' first to last emission.

Times are encoder frames x `frame_shift` (subsampling x 10 ms) plus the segment offset;
confidence is the mean attention-decoder probability of the word's tokens.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from asrkit.decoding.options import Hypothesis, WordTiming
from asrkit.tokenizer import BLANK_ID, SPACE, Tokenizer


def word_groups(tokens: list[int], tokenizer: Tokenizer) -> list[list[int]]:
    """Token positions of each word (a bare `▁` separator belongs to no word)."""
    groups: list[list[int]] = []
    for pos, (token, start) in enumerate(zip(tokens, tokenizer.word_starts(tokens), strict=True)):
        if tokenizer.pieces[token] == SPACE:
            continue
        if start or not groups:
            groups.append([])
        groups[-1].append(pos)
    return groups


def _confidence(hyp: Hypothesis, positions: list[int]) -> float:
    if not hyp.token_log_probs:
        return 0.0
    probs = [math.exp(hyp.token_log_probs[p]) for p in positions]
    return sum(probs) / len(probs)


def _words(
    hyp: Hypothesis,
    tokenizer: Tokenizer,
    spans: list[tuple[int, int]],
    frame_shift: float,
    offset: float,
) -> list[WordTiming]:
    """Words from per-word frame spans [start, end)."""
    words = []
    for positions, (start, end) in zip(word_groups(hyp.tokens, tokenizer), spans, strict=True):
        text = tokenizer.decode([hyp.tokens[p] for p in positions])
        words.append(
            WordTiming(
                word=text,
                start=round(offset + start * frame_shift, 3),
                end=round(offset + end * frame_shift, 3),
                confidence=round(_confidence(hyp, positions), 4),
            )
        )
    return words


def attention_word_times(
    hyp: Hypothesis, tokenizer: Tokenizer, frame_shift: float, offset: float = 0.0
) -> list[WordTiming]:
    """Word times from the attention argmax of each token.

    Args:
        hyp: a hypothesis with `token_frames`.
        tokenizer: for word boundaries and word text.
        frame_shift: seconds per encoder frame.
        offset: start of the decoded segment in the file, in seconds.
    """
    groups = word_groups(hyp.tokens, tokenizer)
    if not groups:
        return []
    frames = torch.tensor(hyp.token_frames).cummax(dim=0).values.tolist()
    starts = [frames[g[0]] for g in groups]
    ends = [*starts[1:], frames[groups[-1][-1]] + 1]
    spans = [(s, max(e, s + 1)) for s, e in zip(starts, ends, strict=True)]
    return _words(hyp, tokenizer, spans, frame_shift, offset)


def ctc_viterbi(log_probs: Tensor, tokens: list[int]) -> list[tuple[int, int]] | None:
    """Forced alignment of `tokens` to CTC posteriors.

    Args:
        log_probs: (T, V) CTC log-probabilities of one utterance (valid frames only).
        tokens: the label sequence (no blanks).

    Returns:
        Per token, the [first, last + 1) frames where it is emitted; None when the tokens
        cannot fit in T frames (repeats need a blank between them).
    """
    frames, labels = log_probs.shape[0], len(tokens)
    repeats = sum(a == b for a, b in itertools.pairwise(tokens))
    if labels == 0 or frames < labels + repeats:
        return None
    ext = torch.full((2 * labels + 1,), BLANK_ID, dtype=torch.long)
    ext[1::2] = torch.tensor(tokens)
    # State s may come from s-1, and from s-2 when s is a label unlike the one before it.
    skip = torch.zeros(2 * labels + 1, dtype=torch.bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    emit = log_probs.float()[:, ext]  # (T, S)
    neg = torch.tensor(float("-inf"))
    score = torch.full((2 * labels + 1,), float("-inf"))
    score[:2] = emit[0, :2]
    back = torch.zeros(frames, 2 * labels + 1, dtype=torch.long)
    for t in range(1, frames):
        stay = score
        step = torch.cat([neg.view(1), score[:-1]])
        jump = torch.where(skip, torch.cat([neg.repeat(2), score[:-2]]), neg)
        options = torch.stack([stay, step, jump])  # (3, S)
        best, arg = options.max(dim=0)
        score, back[t] = best + emit[t], arg
    last = 2 * labels if score[-1] >= score[-2] else 2 * labels - 1
    path = [last]
    for t in range(frames - 1, 0, -1):
        path.append(path[-1] - int(back[t, path[-1]]))
    path.reverse()
    spans: list[list[int]] = [[-1, -1] for _ in range(labels)]
    for t, state in enumerate(path):
        if state % 2 == 1:
            span = spans[state // 2]
            span[0] = t if span[0] < 0 else span[0]
            span[1] = t + 1
    return [(a, b) for a, b in spans]


def ctc_word_times(
    hyp: Hypothesis,
    tokenizer: Tokenizer,
    ctc_log_probs: Tensor,
    frame_shift: float,
    offset: float = 0.0,
) -> list[WordTiming] | None:
    """Word times from CTC forced alignment; None when the alignment is impossible.

    Args:
        hyp: the decoded tokens.
        tokenizer: for word boundaries and word text.
        ctc_log_probs: (T_valid', V) CTC log-probabilities of the segment.
        frame_shift: seconds per encoder frame.
        offset: start of the segment in the file, in seconds.
    """
    spans = ctc_viterbi(ctc_log_probs, hyp.tokens)
    if spans is None:
        return None
    groups = word_groups(hyp.tokens, tokenizer)
    word_spans = [(spans[g[0]][0], spans[g[-1]][1]) for g in groups]
    return _words(hyp, tokenizer, word_spans, frame_shift, offset)
