"""The training loop, written once and read top to bottom: `train_one_epoch` and `evaluate`.

The model contract is `loss, stats = model(batch, sampling_prob, guide_weight)`; everything else
here is the optimisation around it (mixed precision, accumulation, clipping, schedule) and
bookkeeping.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torchaudio.functional import edit_distance

from asrkit.model.las import LAS, Batch
from asrkit.tokenizer import Tokenizer
from asrkit.training.distributed import sum_over_ranks

AVERAGED = ("loss", "att_loss", "ctc_loss", "acc")  # token-weighted averages over an epoch


@dataclass
class Progress:
    """Counters that survive a resume (saved in last.pt).

    Attributes:
        epoch: 0-based epoch in progress.
        batch: batches of this epoch already consumed by optimizer steps (resume skips them).
        step: optimizer steps since the start of the run.
        audio_seconds: training audio seen by all ranks together, and `train_seconds` the
            wall time spent on it.
        totals: token-weighted sums of this epoch's stats (`tokens`, `frames` and AVERAGED).
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    audio_seconds: float = 0.0
    train_seconds: float = 0.0
    totals: dict[str, float] = field(default_factory=dict)

    def epoch_means(self) -> dict[str, float]:
        tokens = max(self.totals.get("tokens", 0.0), 1.0)
        return {k: self.totals.get(k, 0.0) / tokens for k in AVERAGED}


@dataclass(frozen=True)
class Optimisation:
    """What one optimizer step needs besides the model and the batches."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None  # fp16 on CUDA only: scales the loss to avoid underflow
    autocast_dtype: torch.dtype | None  # bf16/fp16 mixed precision, None for fp32
    grad_clip: float
    accum_steps: int
    frame_shift: float  # seconds per input frame, for audio-seconds-per-second


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    opt: Optimisation,
    progress: Progress,
    *,
    device: str,
    sampling_prob: float = 0.0,
    guide_weight: float = 0.0,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[dict[str, float]], None] = lambda stats: None,
) -> bool:
    """Train on `batches` (the rest of the current epoch); returns False if stopped early.

    `progress` is updated in place at every optimizer step; `should_stop` is asked at the same
    boundaries (time budget, Ctrl-C), so a stop never leaves half-accumulated gradients and a
    resume continues with the next batch. `model` may be wrapped in DDP.
    """
    model.train()
    pending = 0  # micro-batches whose gradients are accumulated but not yet applied
    step_audio = 0.0  # seconds of audio in those micro-batches (this rank)
    started = time.perf_counter()
    for batch in batches:
        batch = batch.to(device)
        last_micro = pending + 1 == opt.accum_steps
        # DDP all-reduces gradients on every backward; skip it until the last micro-batch.
        sync = (
            contextlib.nullcontext()
            if last_micro or not hasattr(model, "no_sync")
            else model.no_sync()
        )
        with sync:
            with autocast(device, opt.autocast_dtype):
                loss, stats = model(batch, sampling_prob=sampling_prob, guide_weight=guide_weight)
            # Dividing by accum_steps makes k accumulated micro-batches one averaged batch.
            scaled = loss / opt.accum_steps
            (opt.scaler.scale(scaled) if opt.scaler else scaled).backward()
        _accumulate(progress.totals, stats)
        step_audio += float(batch.feat_lengths.sum()) * opt.frame_shift
        pending += 1
        if pending == opt.accum_steps:
            stats["lr"] = _apply_step(model, opt)
            # the audio of every rank, so throughput under DDP is the whole job's
            progress.audio_seconds += sum_over_ranks(step_audio, device)
            step_audio = 0.0
            progress.step += 1
            progress.batch += pending
            pending = 0
            progress.train_seconds += time.perf_counter() - started
            started = time.perf_counter()
            on_step(stats)
            if should_stop():
                return False
    if pending:  # the epoch's tail: a smaller accumulated step rather than dropped gradients
        _apply_step(model, opt)
        progress.audio_seconds += sum_over_ranks(step_audio, device)
        progress.step += 1
        progress.batch += pending
        progress.train_seconds += time.perf_counter() - started
    return True


def _apply_step(model: nn.Module, opt: Optimisation) -> float:
    """Clip, step, advance the schedule; returns the learning rate that was used."""
    lr = opt.optimizer.param_groups[0]["lr"]
    if opt.scaler:
        opt.scaler.unscale_(opt.optimizer)  # clip the true gradients, not the scaled ones
    # Clipping the global norm keeps one bad batch (e.g. a CTC spike) from wrecking the LSTMs.
    nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
    if opt.scaler:
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
    else:
        opt.optimizer.step()
    opt.scheduler.step()
    opt.optimizer.zero_grad(set_to_none=True)
    return float(lr)


def _accumulate(totals: dict[str, float], stats: dict[str, float]) -> None:
    tokens = stats["tokens"]
    totals["tokens"] = totals.get("tokens", 0.0) + tokens
    totals["frames"] = totals.get("frames", 0.0) + stats["frames"]
    for key in AVERAGED:
        totals[key] = totals.get(key, 0.0) + stats[key] * tokens


def autocast(device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision in `dtype` on `device`'s type; no context for fp32 (dtype None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


@dataclass(frozen=True)
class EvalResult:
    """Dev-set results: token-weighted loss/accuracy (teacher forced) and greedy error rates.

    `cer` is over characters including spaces (as jiwer's cer), `wer` over words; both are
    total edits / total reference length.
    """

    loss: float
    acc: float
    cer: float
    wer: float


@torch.no_grad()
def evaluate(
    model: LAS,
    batches: Iterable[Batch],
    tokenizer: Tokenizer,
    decode: Callable[[LAS, Batch], list[str]],
    *,
    device: str,
    on_batch: Callable[[], None] = lambda: None,
    reduce: Callable[[list[float]], list[float]] = lambda counts: counts,
) -> EvalResult:
    """Loss, token accuracy and greedy CER/WER of `model` (unwrapped LAS) on `batches`.

    Args:
        decode: batch -> hypothesis texts (greedy search, batched).
        on_batch: progress callback.
        reduce: sums the counts over the ranks that scored the other shares of the dev set
            (`distributed.sum_all`); the identity when one process scores all of it.
    """
    model.eval()
    totals: dict[str, float] = {}
    errors = {"chars": 0, "char_edits": 0, "words": 0, "word_edits": 0}
    for batch in batches:
        batch = batch.to(device)
        _, stats = model(batch)
        _accumulate(totals, stats)
        texts = decode(model, batch)
        rows = zip(batch.tokens.tolist(), batch.token_lengths.tolist(), texts, strict=True)
        for ref_ids, length, hyp in rows:
            ref = tokenizer.decode(ref_ids[:length])
            errors["chars"] += len(ref)
            errors["char_edits"] += edit_distance(list(ref), list(hyp))
            errors["words"] += len(ref.split())
            errors["word_edits"] += edit_distance(ref.split(), hyp.split())
        on_batch()
    keys = ("tokens", "loss", "acc")
    counts = reduce([totals.get(k, 0.0) for k in keys] + [float(v) for v in errors.values()])
    summed = dict(zip([*keys, *errors], counts, strict=True))
    tokens = max(summed["tokens"], 1.0)
    return EvalResult(
        loss=summed["loss"] / tokens,
        acc=summed["acc"] / tokens,
        cer=summed["char_edits"] / max(summed["chars"], 1.0),
        wer=summed["word_edits"] / max(summed["words"], 1.0),
    )
