"""Shallow fusion and N-best lists: how an LM's scores join the search, and how finished
hypotheses are re-ranked afterwards with other weights or another LM.

The search ranks a finished hypothesis by

    score = (1 - c) * attention + c * ctc + w * lm + bonus * units     (with joint CTC)
    score = attention + w * lm + bonus * units                         (without)

over (units + 1) ** length_penalty. An N-best list keeps the three sums apart for each
hypothesis (`Alternative`), so `rescore` can recombine them (or replace `lm` by another LM's
score, `lm_sequence_scores`) without decoding again; with the decode-time weights it gives the
search's own order back (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from asrkit.decoding.options import Alternative, DecodeOptions
from asrkit.tokenizer import EOS_ID


@dataclass(frozen=True)
class ExtensionScores:
    """The separate scores of every extension (N, W), aligned with the joint scores: what
    N-best lists report and `rescore` recombines with other weights."""

    attention: Tensor
    ctc: Tensor | None  # CTC prefix increments, None without joint CTC scoring
    lm: Tensor | None  # LM log-probs, None without fusion

    def at(self, row: Tensor, col: Tensor) -> Tensor:
        """(A, 2K, 3) attention, CTC, LM scores of the extensions (row, col); 0 where absent."""
        picked = [
            m[row, col] if m is not None else None for m in (self.attention, self.ctc, self.lm)
        ]
        zeros = torch.zeros_like(picked[0])
        return torch.stack([p if p is not None else zeros for p in picked], dim=-1)


def fuse(
    joint: Tensor, candidates: Tensor | None, lm_log_probs: Tensor | None, opts: DecodeOptions
) -> tuple[Tensor, Tensor | None]:
    """Shallow fusion of the (N, W) extension scores (W = V, or the C candidates' ids
    `candidates`): + lm_weight * LM log-prob, + length_bonus for every unit but <eos>; and
    the LM log-probs of the extensions (N, W), None without an LM."""
    lm = None
    if lm_log_probs is not None:
        lm = lm_log_probs if candidates is None else lm_log_probs.gather(1, candidates)
        joint = joint + opts.lm_weight * lm
    if opts.length_bonus:
        ids = candidates if candidates is not None else torch.arange(joint.shape[1])
        joint = joint + opts.length_bonus * (ids.to(joint.device) != EOS_ID)
    return joint, lm


@dataclass(frozen=True)
class FusionWeights:
    """The weights `rescore` recombines an N-best list with."""

    ctc_weight: float = 0.0  # ignored for a list decoded without joint CTC
    lm_weight: float = 0.0
    length_bonus: float = 0.0
    length_penalty: float = 1.0


def combined(alt: Alternative, weights: FusionWeights, joint_ctc: bool) -> float:
    """The search's score of `alt` under `weights`, length-normalised as it ranks them."""
    units = len(alt.tokens)
    if joint_ctc:
        acoustic = (1 - weights.ctc_weight) * alt.attention + weights.ctc_weight * alt.ctc
    else:
        acoustic = alt.attention
    score = acoustic + weights.lm_weight * alt.lm + weights.length_bonus * units
    return score / (units + 1) ** weights.length_penalty if math.isfinite(score) else score


def rescore(
    alternatives: list[Alternative], weights: FusionWeights, joint_ctc: bool
) -> list[Alternative]:
    """`alternatives` re-ranked under `weights` (each `rank` recomputed), best first; of
    equal ranks the one the search ranked first stays first."""
    ranked = [(combined(a, weights, joint_ctc), i, a) for i, a in enumerate(alternatives)]
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return [Alternative(a.tokens, a.text, r, a.attention, a.ctc, a.lm) for r, _, a in ranked]


@torch.no_grad()
def lm_sequence_scores(lm: torch.nn.Module, token_lists: list[list[int]]) -> list[float]:
    """Each token list's log-probability under `lm`, <eos> included (what fusion summed)."""
    if not token_lists:
        return []
    lengths = torch.tensor([len(t) + 1 for t in token_lists])
    inputs = torch.full((len(token_lists), int(lengths.max())), EOS_ID, dtype=torch.long)
    targets = torch.full_like(inputs, EOS_ID)
    for i, tokens in enumerate(token_lists):
        inputs[i, 1 : len(tokens) + 1] = torch.tensor(tokens, dtype=torch.long)
        targets[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    was_training = lm.training
    lm.eval()
    log_probs = torch.log_softmax(lm(inputs, lengths).double(), dim=-1)
    lm.train(was_training)
    picked = log_probs.gather(2, targets.unsqueeze(2)).squeeze(2)  # (B, U)
    valid = torch.arange(inputs.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    return (picked * valid).sum(dim=1).tolist()


def units_digest(pieces: list[str]) -> str:
    """A short fingerprint of a vocabulary: an N-best list and an LM must share it."""
    import hashlib

    return hashlib.sha256("\n".join(pieces).encode()).hexdigest()[:16]


def nbest_row(
    utt_id: str, alternatives: list[Alternative], opts: DecodeOptions, joint_ctc: bool, units: str
) -> dict[str, object]:
    """One line of `nbest.jsonl`: the hypotheses and the weights they were ranked with."""
    return {
        "id": utt_id,
        "units": units,
        "joint_ctc": joint_ctc,
        "weights": {
            "ctc_weight": opts.ctc_weight,
            "lm_weight": opts.lm_weight,
            "length_bonus": opts.length_bonus,
            "length_penalty": opts.length_penalty,
        },
        "lm": opts.lm,
        "nbest": [
            {
                "text": a.text,
                "tokens": a.tokens,
                "rank": a.rank,
                "attention": a.attention,
                "ctc": a.ctc,
                "lm": a.lm,
            }
            for a in alternatives
        ],
    }
