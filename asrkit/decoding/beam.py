"""Batched beam search over utterances and beams, with optional joint CTC prefix scoring.

Rows are laid out as B blocks of K beams: (B*K, ...). Every step:
  1. the speller scores the next token for every row, `constrain` applies the shared rules;
  2. with a CTC head and ctc_weight > 0, the top candidates of each row are rescored:
     (1 - w) * attention + w * CTC prefix increment (Watanabe et al. 2017);
  3. per utterance the best 2K (row, token) extensions are ranked: the first K that are not
     <eos> continue, and an <eos> ranked above the K-th continuation finishes a hypothesis
     (fairseq's rule, so K = 1 is exactly greedy search);
  4. an utterance is done once it holds K finished hypotheses; its rows leave the batch.
Nothing per row grows with the output length: each step keeps its attention weights, tokens,
token log-probs and back-pointers, and only the best finished hypothesis of an utterance is
traced back, once (a row carries just its last `repeat_ngram` + 1 tokens, for the loop guard).
The K beams of an utterance share its encoder frames and attention keys (`AttendMemory.shared`):
nothing is copied K times, and dropping a finished utterance moves 1/K of the bytes.

With a language model (`lm`, `opts.lm_weight` > 0) every extension also scores
lm_weight * its LM log-prob, and every unit but <eos> gets `opts.length_bonus` (shallow fusion,
Gulcehre et al. 2015; the LM state is one more per-row state the search reorders). Weight 0
leaves the LM out entirely, so it is then the search without an LM exactly.

`ensemble_beam_search` runs the same search over several models at once: every row's next-token
log-probabilities are the mean of the models' (a log-linear combination, the rule the joint CTC
score already follows), and so are the CTC prefix increments, each model scoring the prefixes
with its own CTC head, since two models' CTC spikes need not fall on the same frames. With one
model it is `beam_search` exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from asrkit.decoding.constraints import (
    NEG_INF,
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
from asrkit.decoding.ctc_prefix import LOG_ZERO, CTCPrefixScorer, CTCPrefixState, Extensions
from asrkit.decoding.fusion import ExtensionScores, fuse
from asrkit.decoding.options import Alternative, DecodeOptions, Hypothesis
from asrkit.model.attention.base import AttendMemory, State, group_rows, reorder_state
from asrkit.tokenizer import EOS_ID, Tokenizer

if TYPE_CHECKING:
    from asrkit.lm.model import LanguageModel
    from asrkit.model.las import LAS
    from asrkit.model.speller import AttentionWindow, SpellerStep


@dataclass(frozen=True)
class _Ended:
    """A finished hypothesis: where to trace it from and how it scored. It holds `step`
    tokens (every row advances one token per step)."""

    rank: float  # length-normalised score
    score: float
    step: int  # step at which <eos> was emitted
    row: int  # its row in that step's layout
    parts: tuple[float, float, float]  # its attention, CTC and LM log-prob sums (`Alternative`)


@dataclass
class _Trail:
    """What each step chose, per row of the layout after it: enough to trace a hypothesis
    back from any (step, row) without copying histories along the beam."""

    weights: list[Tensor]  # per step (N_t, T') attention weights, layout of step t
    parents: list[Tensor]  # per step (N_{t+1},) row of the previous layout
    tokens: list[Tensor]  # per step (N_{t+1},) token each row appended
    log_probs: list[Tensor]  # per step (N_{t+1},) its attention log-prob


@dataclass
class _Beams:
    """The mutable state of one batched search (rows = live utterances x K)."""

    items: list[int]  # original utterance index of each live block
    scores: Tensor  # (N,) joint log-prob of each row's prefix
    recent: Tensor  # (N, <= repeat_ngram + 1) the last tokens, all the loop guard reads
    runs: Tensor  # (N, repeat_ngram) loop-guard counts of the history (`update_repeat_runs`)
    min_len: Tensor  # (N,)
    max_len: Tensor  # (N,)
    parts: Tensor  # (N, 3) float64: each prefix's attention, CTC and LM log-prob sums


@dataclass
class _Member:
    """What the search holds for one model of the ensemble (one for plain beam search)."""

    model: LAS
    window: AttentionWindow | None
    mem: AttendMemory  # shared by the K beams of each live utterance
    state: State  # speller state, rows in the beams' layout
    scorer: CTCPrefixScorer | None  # None without a CTC head or with ctc_weight 0
    ctc: CTCPrefixState | None  # the rows' prefixes, for `scorer`


def _initial_beams(enc_lengths: Tensor, ctc_lengths: Tensor | None, opts: DecodeOptions) -> _Beams:
    """K rows per utterance (B*K), only the first live, with their length limits.

    Args:
        enc_lengths: (B,) encoder frames of the first model (the length ratios read these).
        ctc_lengths: (B,) the fewest encoder frames of any model that CTC-scores, or None.
    """
    batch, k, device = enc_lengths.shape[0], opts.beam, enc_lengths.device
    rows = torch.arange(batch, device=device).repeat_interleave(k)  # (B*K,)
    min_len, max_len = length_limits(enc_lengths[rows], opts)
    if ctc_lengths is not None:  # CTC emits at most one label per frame
        max_len = max_len.minimum(ctc_lengths[rows])
        min_len = min_len.minimum(max_len)
    # Scores in float64: over hundreds of steps float32 sums blur near-ties (eps 3e-5 at
    # -400), and which of two near-equal prefixes survives would depend on padding.
    first = torch.full((batch, k), NEG_INF, dtype=torch.float64, device=device)
    first[:, 0] = 0.0  # only one live beam at the start, so the K expansions differ
    empty = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
    return _Beams(
        items=list(range(batch)),
        scores=first.view(-1),
        recent=empty,
        runs=repeat_runs(empty, opts.repeat_ngram),
        min_len=min_len,
        max_len=max_len,
        parts=torch.zeros(batch * k, 3, dtype=torch.float64, device=device),
    )


def beam_search(
    model: LAS,
    feats: Tensor,
    feat_lengths: Tensor,
    opts: DecodeOptions,
    tokenizer: Tokenizer | None = None,
    encoded: tuple[Tensor, Tensor] | None = None,
    lm: LanguageModel | None = None,
) -> list[Hypothesis]:
    """Beam search of a padded batch; results do not depend on the batch composition.

    Args:
        model: the LAS model (switched to eval mode for the search, then restored).
        feats: (B, T, n_mels) raw log-mel features.
        feat_lengths: (B,) valid frames.
        opts: beam, ctc_weight (used when the model has a CTC head), length_penalty and the
            shared rules (eos_threshold, length ratios, repeat_ngram).
        tokenizer: fills `Hypothesis.text` when given.
        encoded: `model.encode(feats, feat_lengths)` when the caller has it already.
        lm: a language model over the same units, fused with `opts.lm_weight`.

    Returns:
        The best finished hypothesis of each utterance, in input order.
    """
    return ensemble_beam_search([model], [feats], feat_lengths, opts, tokenizer, [encoded], lm)


def ensemble_beam_search(
    models: Sequence[LAS],
    feats: Sequence[Tensor],
    feat_lengths: Tensor,
    opts: DecodeOptions,
    tokenizer: Tokenizer | None = None,
    encoded: Sequence[tuple[Tensor, Tensor] | None] | None = None,
    lm: LanguageModel | None = None,
) -> list[Hypothesis]:
    """Beam search of a padded batch over the mean scores of several models.

    Args:
        models: LAS models sharing one tokenizer (each switched to eval mode, then restored).
        feats: per model (B, T, n_mels) raw log-mel features (models with speaker CMN may
            shift them differently); all share `feat_lengths`.
        feat_lengths: (B,) valid frames.
        opts: as for `beam_search`; ctc_weight applies to the models that have a CTC head.
        tokenizer: fills `Hypothesis.text` when given.
        encoded: per model its `encode` outputs, or None, when the caller has them already.
        lm: a language model over the same units, fused with `opts.lm_weight`.

    Returns:
        The best finished hypothesis of each utterance, in input order; its attention weights
        (plots, attention word times) are the first model's.
    """
    k, batch = opts.beam, feat_lengths.shape[0]
    encoded = list(encoded) if encoded is not None else [None] * len(models)
    with ExitStack() as stack:
        for model in [*models, *([lm] if lm is not None else [])]:
            stack.enter_context(eval_mode(model))
        members, enc_lengths = [], []
        for model, x, done in zip(models, feats, encoded, strict=True):
            member, lengths = _start_member(model, x, feat_lengths, done, opts)
            members.append(member)
            enc_lengths.append(lengths)
        ctc_lengths = [n for m, n in zip(members, enc_lengths, strict=True) if m.scorer]
        least = torch.stack(ctc_lengths).amin(dim=0) if ctc_lengths else None
        beams = _initial_beams(enc_lengths[0], least, opts)
        ended: list[list[_Ended]] = [[] for _ in range(batch)]
        trail = _Trail([], [], [], [])
        prev = torch.full((batch * k,), EOS_ID, dtype=torch.long, device=feat_lengths.device)
        fused = lm is not None and opts.lm_weight > 0
        lm_state = lm.initial_state(batch * k, prev.device) if lm is not None and fused else {}
        while beams.items:
            outs = [m.model.speller.step(prev, m.state, m.mem, "eval", m.window) for m in members]
            lm_lp = None
            if lm is not None and fused:
                lm_lp, lm_state = lm.log_probs(prev, lm_state)
            trail.weights.append(outs[0].weights)
            step = len(trail.weights) - 1  # tokens every row holds so far
            parent, prev, prev_lp = _advance(beams, outs, members, opts, ended, step, lm_lp)
            for member, out in zip(members, outs, strict=True):
                member.state = reorder_state(out.state, parent)
            lm_state = reorder_state(lm_state, parent)
            blocks = _finished_blocks(beams, ended, k)
            if blocks is not None:
                keep = group_rows(blocks, k)
                parent, prev, prev_lp = parent[keep], prev[keep], prev_lp[keep]
                _compact(beams, members, keep, blocks)
                lm_state = reorder_state(lm_state, keep)
            trail.parents.append(parent)
            trail.tokens.append(prev)
            trail.log_probs.append(prev_lp)
    lengths = enc_lengths[0]
    hyps = [_trace(ended[i], trail, int(lengths[i]), tokenizer) for i in range(batch)]
    if opts.nbest > 1:
        hyps = [
            dataclasses.replace(
                h, alternatives=_alternatives(ended[i], trail, opts.nbest, tokenizer)
            )
            for i, h in enumerate(hyps)
        ]
    return hyps


def _start_member(
    model: LAS,
    feats: Tensor,
    feat_lengths: Tensor,
    encoded: tuple[Tensor, Tensor] | None,
    opts: DecodeOptions,
) -> tuple[_Member, Tensor]:
    """One model's search state for B utterances x K beams, and its (B,) encoder lengths."""
    enc, enc_lengths, mem = encode(model, feats, feat_lengths, encoded)
    mem = mem.shared(opts.beam)  # the K beams of an utterance read its frames, not K copies
    ctc_lp = model.ctc_log_probs(enc) if opts.ctc_weight > 0 else None
    scorer = None
    if ctc_lp is not None:
        scorer = CTCPrefixScorer(ctc_lp, enc_lengths, opts.ctc_window, group=opts.beam)
    window = attention_window(model.attention_kind, opts)
    state = model.speller.initial_state(mem)
    ctc = scorer.initial_state() if scorer is not None else None
    return _Member(model, window, mem, state, scorer, ctc), enc_lengths


def _mean_log_probs(outs: list[SpellerStep]) -> Tensor:
    """(N, V) float64 log-softmax of the speller, averaged over the models."""
    log_probs = [torch.log_softmax(out.logits.double(), dim=-1) for out in outs]
    return log_probs[0] if len(log_probs) == 1 else torch.stack(log_probs).mean(dim=0)


def _ctc_increments(
    members: list[_Member], outs: list[SpellerStep], candidates: Tensor, opts: DecodeOptions
) -> tuple[Tensor, Tensor, list[tuple[_Member, Tensor, Extensions]]]:
    """Mean CTC prefix increments (N, C) of the candidates over the models that score them,
    where any of them rules a prefix out (N, C) bool, and each such model's own increments
    and extensions (for `CTCPrefixScorer.select`)."""
    scored = []
    for member, out in zip(members, outs, strict=True):
        if member.scorer is None or member.ctc is None:
            continue
        peaks = out.weights.argmax(dim=1) if opts.ctc_window > 0 else None
        increment, ext = member.scorer.score(member.ctc, candidates, peaks)
        scored.append((member, increment, ext))
    increments = [increment.double() for _, increment, _ in scored]
    mean = increments[0] if len(increments) == 1 else torch.stack(increments).mean(dim=0)
    impossible = torch.stack([inc <= LOG_ZERO / 2 for _, inc, _ in scored]).any(dim=0)
    return mean, impossible, scored


def _joint_scores(
    allowed: Tensor, members: list[_Member], outs: list[SpellerStep], opts: DecodeOptions
) -> tuple[Tensor, Tensor | None, list[tuple[_Member, Tensor, Extensions]], ExtensionScores]:
    """Extension scores: the attention's (N, V) `allowed` log-probs alone, or with CTC the
    joint (1 - w) * attention + w * CTC increment of the top candidates (N, C), those
    candidates' ids (None without CTC), each scoring model's increments (`_ctc_increments`)
    and the separate scores."""
    if not any(m.scorer is not None for m in members):
        return allowed, None, [], ExtensionScores(allowed, None, None)
    count = min(opts.candidates, allowed.shape[1])
    candidates = allowed.topk(count, dim=1).indices  # (N, C) pre-beam by attention
    att = allowed.gather(1, candidates)
    increments, impossible, scored = _ctc_increments(members, outs, candidates, opts)
    w = opts.ctc_weight
    joint = (1 - w) * att + w * increments
    # A prefix CTC cannot produce is dropped, not ranked by the float noise of -1e10.
    joint = joint.masked_fill((att == NEG_INF) | impossible, NEG_INF)
    return joint, candidates, scored, ExtensionScores(att, increments, None)


def _advance(
    beams: _Beams,
    outs: list[SpellerStep],
    members: list[_Member],
    opts: DecodeOptions,
    ended: list[list[_Ended]],
    step: int,
    lm_log_probs: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Score every extension, record finished ones, keep K per utterance.

    Args:
        outs: each model's speller step for every row (logits; attention weights place the
            CTC window).
        members: the models' search states; their CTC prefixes advance here.
        step: tokens every row holds so far.
        lm_log_probs: (N, V) the fused language model's next-unit log-probs, or None.

    Returns:
        parent (N,) row of each new row in the previous layout, its new token (N,) and that
        token's attention log-prob (N,).
    """
    k, blocks = opts.beam, len(beams.items)
    log_probs = _mean_log_probs(outs)  # (N, V)
    allowed = constrain(
        log_probs, beams.recent, beams.runs, beams.min_len, beams.max_len, opts, step
    )
    joint, candidates, scored, parts = _joint_scores(allowed, members, outs, opts)
    joint, lm = fuse(joint, candidates, lm_log_probs, opts)
    parts = dataclasses.replace(parts, lm=lm)
    width = joint.shape[1]
    total = (beams.scores.unsqueeze(1) + joint).view(blocks, k * width)
    top_scores, top_index = total.topk(2 * k, dim=1)  # (A, 2K)
    row = top_index // width + torch.arange(blocks, device=total.device).unsqueeze(1) * k
    col = top_index % width
    token = candidates[row, col] if candidates is not None else col
    is_eos = token == EOS_ID
    continuing = ~is_eos
    before = torch.cumsum(continuing.long(), dim=1) - continuing.long()  # exclusive count
    keep = continuing & (before < k)  # exactly K per block (at most K <eos> among 2K)
    finish = is_eos & (before < k) & torch.isfinite(top_scores)
    sums = beams.parts[row] + parts.at(row, col)  # (A, 2K, 3) with each extension
    for a, j in finish.nonzero().tolist():
        score = float(top_scores[a, j])
        rank = normalized(score, step, opts.length_penalty)
        split = (float(sums[a, j, 0]), float(sums[a, j, 1]), float(sums[a, j, 2]))
        ended[beams.items[a]].append(_Ended(rank, score, step, int(row[a, j]), split))
    parent, new_col, new_token = row[keep], col[keep], token[keep]  # (A*K,) in block order
    beams.scores = top_scores[keep]
    beams.parts = sums[keep]
    recent = torch.cat([beams.recent[parent], new_token.unsqueeze(1)], dim=1)
    beams.runs = update_repeat_runs(beams.runs[parent], recent, step + 1)
    beams.recent = recent[:, -(opts.repeat_ngram + 1) :]
    for member, increment, ext in scored:
        assert member.scorer is not None and member.ctc is not None
        member.ctc = member.scorer.select(member.ctc, increment, ext, parent, new_col, new_token)
    return parent, new_token, log_probs[parent, new_token]


def _finished_blocks(beams: _Beams, ended: list[list[_Ended]], k: int) -> Tensor | None:
    """Blocks (live utterances) to keep when some utterance is done (K finished, or no live
    beam), else None."""
    alive = torch.isfinite(beams.scores).view(-1, k).any(dim=1).tolist()
    done = [len(ended[item]) >= k or not alive[a] for a, item in enumerate(beams.items)]
    if not any(done):
        return None
    blocks = [a for a, d in enumerate(done) if not d]
    beams.items = [beams.items[a] for a in blocks]
    return torch.tensor(blocks, dtype=torch.long, device=beams.scores.device)


def _compact(beams: _Beams, members: list[_Member], keep: Tensor, blocks: Tensor) -> None:
    """Drop the rows `keep` (of the blocks `blocks`) of finished utterances."""
    beams.scores, beams.recent, beams.runs, beams.parts = (
        beams.scores[keep],
        beams.recent[keep],
        beams.runs[keep],
        beams.parts[keep],
    )
    beams.min_len, beams.max_len = beams.min_len[keep], beams.max_len[keep]
    for member in members:
        member.state, member.mem = (
            reorder_state(member.state, keep),
            member.mem.index_select(blocks),
        )
        if member.scorer is not None and member.ctc is not None:
            member.scorer.index_select(blocks)
            member.ctc = member.ctc.take(keep)


def _alternatives(
    ended: list[_Ended], trail: _Trail, n: int, tokenizer: Tokenizer | None
) -> list[Alternative]:
    """The `n` best finished hypotheses (by rank, the earliest of equals first, as `_trace`
    picks the best) with their separate scores."""
    ranked = sorted(enumerate(ended), key=lambda pair: (-pair[1].rank, pair[0]))[:n]
    out = []
    for _, e in ranked:
        row, tokens = e.row, []
        for step in range(e.step - 1, -1, -1):
            tokens.append(int(trail.tokens[step][row]))
            row = int(trail.parents[step][row])
        tokens.reverse()
        text = tokenizer.decode(tokens) if tokenizer is not None else ""
        out.append(Alternative(tokens, text, e.rank, *e.parts))
    return out


def _trace(
    ended: list[_Ended], trail: _Trail, enc_length: int, tokenizer: Tokenizer | None
) -> Hypothesis:
    """Best finished hypothesis: its tokens, their log-probs and its attention rows, gathered
    along the back-pointers."""
    if not ended:  # every beam was blocked: nothing to say rather than a wrong guess
        empty = torch.zeros(1, enc_length)
        return build_hypothesis([], [], empty, enc_length, NEG_INF, tokenizer)
    best = max(ended, key=lambda e: e.rank)  # first of equals: the earliest finished
    row, rows, tokens, log_probs = best.row, [trail.weights[best.step][best.row]], [], []
    for step in range(best.step - 1, -1, -1):  # the token of step s sits in layout s + 1
        tokens.append(int(trail.tokens[step][row]))
        log_probs.append(float(trail.log_probs[step][row]))
        row = int(trail.parents[step][row])
        rows.append(trail.weights[step][row])
    attention = torch.stack(rows[::-1])  # (U+1, T')
    return build_hypothesis(
        tokens[::-1], log_probs[::-1], attention, enc_length, best.rank, tokenizer
    )
