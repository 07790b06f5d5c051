"""Batched greedy search: the most probable token at every step, for a batch of utterances.

Finished utterances leave the batch (their rows are dropped from the decoder state and the
attention memory), so a batch costs about as much as its longest output, not B times it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from asrkit.decoding.constraints import (
    attention_window,
    build_hypothesis,
    constrain,
    encode,
    eval_mode,
    length_limits,
    normalized,
    repeat_runs,
    update_repeat_runs,
)
from asrkit.decoding.options import DecodeOptions, Hypothesis
from asrkit.model.attention.base import reorder_state
from asrkit.tokenizer import EOS_ID, Tokenizer

if TYPE_CHECKING:
    from asrkit.model.las import LAS


def greedy_search(
    model: LAS,
    feats: Tensor,
    feat_lengths: Tensor,
    opts: DecodeOptions,
    tokenizer: Tokenizer | None = None,
    encoded: tuple[Tensor, Tensor] | None = None,
) -> list[Hypothesis]:
    """Greedy decoding of a padded batch.

    Args:
        model: the LAS model (switched to eval mode for the search, then restored).
        feats: (B, T, n_mels) raw log-mel features (the model applies CMVN).
        feat_lengths: (B,) valid frames.
        opts: length limits, <eos> threshold and loop guard (beam and CTC weight unused).
        tokenizer: fills `Hypothesis.text` when given.
        encoded: `model.encode(feats, feat_lengths)` when the caller has it already.

    Returns:
        One `Hypothesis` per utterance, in input order.

    Example:
        >>> from asrkit.testing import tiny_model, dummy_batch
        >>> batch = dummy_batch()
        >>> hyps = greedy_search(tiny_model(), batch.feats, batch.feat_lengths, DecodeOptions())
        >>> len(hyps)
        3
    """
    window = attention_window(model.attention_kind, opts)
    with eval_mode(model):
        _, enc_lengths, mem = encode(model, feats, feat_lengths, encoded)
        batch = feats.shape[0]
        min_len, max_len = length_limits(enc_lengths, opts)
        state = model.speller.initial_state(mem)
        items = torch.arange(batch, device=feats.device)  # original index of each live row
        prev = torch.full((batch,), EOS_ID, dtype=torch.long, device=feats.device)
        history = torch.zeros(batch, 0, dtype=torch.long, device=feats.device)
        runs = repeat_runs(history, opts.repeat_ngram)
        step_weights: list[list[Tensor]] = [[] for _ in range(batch)]
        step_log_probs: list[list[float]] = [[] for _ in range(batch)]
        results: list[Hypothesis | None] = [None] * batch
        while items.numel() > 0:
            out = model.speller.step(prev, state, mem, "eval", window)
            log_probs = torch.log_softmax(out.logits.double(), dim=-1)  # as in beam search
            allowed = constrain(log_probs, history, runs, min_len[items], max_len[items], opts)
            token = allowed.argmax(dim=1)  # (N,)
            token_lp = log_probs.gather(1, token.unsqueeze(1)).squeeze(1).tolist()
            for row, item in enumerate(items.tolist()):
                step_weights[item].append(out.weights[row])
                step_log_probs[item].append(token_lp[row])
            history = torch.cat([history, token.unsqueeze(1)], dim=1)
            runs = update_repeat_runs(runs, history)
            ended = token == EOS_ID
            for row in ended.nonzero().squeeze(1).tolist():
                item = int(items[row])
                tokens, frames = history[row, :-1].tolist(), int(enc_lengths[item])
                lps, weights = step_log_probs[item], step_weights[item]
                results[item] = _hypothesis(tokens, lps, weights, frames, opts, tokenizer)
            state, prev = out.state, token
            if bool(ended.any()):  # drop finished rows; copying memory only when needed
                keep = (~ended).nonzero().squeeze(1)
                items, history, prev = items[keep], history[keep], token[keep]
                runs = runs[keep]
                state = reorder_state(state, keep)
                mem = mem.index_select(keep)
    return [hyp for hyp in results if hyp is not None]


def _hypothesis(
    tokens: list[int],
    log_probs: list[float],
    weights: list[Tensor],
    frames: int,
    opts: DecodeOptions,
    tokenizer: Tokenizer | None,
) -> Hypothesis:
    """The finished hypothesis of one utterance; `log_probs` and `weights` include <eos>."""
    score = normalized(sum(log_probs), len(tokens), opts.length_penalty)
    stacked = torch.stack(weights)  # (U+1, T')
    return build_hypothesis(tokens, log_probs[:-1], stacked, frames, score, tokenizer)
