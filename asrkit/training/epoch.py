"""One epoch of a run: the training pass with its progress bar, then validation, plots,
metrics and checkpoints (what `run.train` repeats)."""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from asrkit.cli.common import console
from asrkit.config import ExperimentConfig
from asrkit.data.collate import collate
from asrkit.data.dataset import SpeechDataset
from asrkit.data.sampler import FrameBatchSampler
from asrkit.decoding.greedy import greedy_search
from asrkit.decoding.options import DecodeOptions
from asrkit.io import read_jsonl
from asrkit.model.las import LAS, Batch
from asrkit.model.transformer_decoder import TransformerDecoder
from asrkit.plotting import plot_heads
from asrkit.training import distributed, health
from asrkit.training.checkpoints import CheckpointKeeper, dev_rank
from asrkit.training.experiment import Data
from asrkit.training.loop import EvalResult, Optimisation, evaluate, train_one_epoch
from asrkit.training.loop import Progress as LoopProgress
from asrkit.training.schedule import guide_weight_at, sampling_prob_at


@dataclass
class RunState:
    """Run-level state saved in last.pt besides the loop counters (`loop.Progress`)."""

    best_wer: float | None = None
    best_cer: float | None = None
    best_loss: float | None = None  # dev loss of the best epoch (ranks epochs at >= 100% WER)
    bad_epochs: int = 0  # epochs without a better dev rank (early stopping)
    warned_alignment: bool = False
    health: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class EpochContext:
    """The fixed pieces of a run that every epoch uses."""

    cfg: ExperimentConfig
    exp_dir: Path
    model: LAS  # the bare model (evaluation, checkpoints)
    wrapped: nn.Module  # the model the optimizer steps through (DDP-wrapped when distributed)
    opt: Optimisation
    data: Data
    train_loader: torch.utils.data.DataLoader
    sampler: FrameBatchSampler
    dev_loader: torch.utils.data.DataLoader
    device: str
    info: distributed.DistInfo


def _ignore_sigint(worker_id: int) -> None:
    # Ctrl-C reaches every process of the group; the workers must not die of it, the main
    # process finishes the step and saves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(
    dataset: SpeechDataset, cfg: ExperimentConfig, info: distributed.DistInfo, training: bool
) -> tuple[torch.utils.data.DataLoader, FrameBatchSampler]:
    """A loader over frame-capped batches; this rank's share when distributed.

    Training batches are shuffled and padded to the same count on every rank (DDP steps
    together); evaluation batches are length-sorted and each is scored once, by one rank.
    """
    sampler = FrameBatchSampler(
        dataset.frames,
        cfg.train.max_frames,
        cfg.train.seed,
        shuffle=training,
        rank=info.rank,
        world_size=info.world_size,
        sortagrad=cfg.train.sortagrad,
        pad=training,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.train.num_workers,
        worker_init_fn=_ignore_sigint if cfg.train.num_workers else None,
        # A private generator: creating an iterator must not draw from the global RNG, whose
        # state is part of the exact-resume contract (dropout, scheduled sampling).
        generator=torch.Generator(),
    )
    return loader, sampler


def append_metrics(exp_dir: Path, row: dict[str, Any]) -> None:
    with (Path(exp_dir) / "metrics.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def run_epoch(ctx: EpochContext, progress: LoopProgress, should_stop: Callable[[], bool]) -> bool:
    """Train on the rest of the current epoch; False if stopped (budget or Ctrl-C)."""
    cfg = ctx.cfg
    ctx.sampler.set_epoch(progress.epoch, start=progress.batch)
    ctx.data.train.set_epoch(progress.epoch)
    prob = sampling_prob_at(progress.epoch, cfg.train)
    bar = Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not ctx.info.is_main,
        transient=False,
    )
    total = progress.batch + len(ctx.sampler)
    task = bar.add_task(
        "train", total=total, completed=progress.batch, epoch=progress.epoch + 1, status=""
    )

    def on_step(stats: dict[str, float]) -> None:
        speed = progress.audio_seconds / max(progress.train_seconds, 1e-9)
        status = (
            f"loss {stats['loss']:.3f} lr {stats['lr']:.2e} "
            f"{speed:.0f} audio-s/s step {progress.step}"
        )
        bar.update(task, completed=progress.batch, status=status)
        if ctx.info.is_main and progress.step % cfg.train.log_every == 0:
            append_metrics(ctx.exp_dir, _train_row(progress, stats, speed))

    with bar:
        return train_one_epoch(
            ctx.wrapped,
            ctx.train_loader,
            ctx.opt,
            progress,
            device=ctx.device,
            sampling_prob=prob,
            guide_weight=guide_weight_at(progress.epoch, cfg.train),
            should_stop=should_stop,
            on_step=on_step,
        )


def _train_row(progress: LoopProgress, stats: dict[str, float], speed: float) -> dict[str, Any]:
    keys = ("loss", "att_loss", "ctc_loss", "guide_loss", "acc", "lr")
    return {
        "kind": "train",
        "epoch": progress.epoch + 1,
        "step": progress.step,
        **{k: stats[k] for k in keys},
        "audio_seconds_per_second": speed,
    }


def end_of_epoch(
    ctx: EpochContext,
    keeper: CheckpointKeeper,
    progress: LoopProgress,
    state: RunState,
    partial: bool = False,
) -> bool:
    """Validate, plot, log and keep checkpoints (rank 0); True if the epoch ranks best so far
    (by `dev_rank`, the order the checkpoint keeper uses).

    `partial`: the epoch was cut short by the time budget; its checkpoint is named
    `epoch-<n>-partial.pt` so the completed epoch of a resumed run does not replace it.
    """
    improved = False
    result = _validate(ctx)  # every rank scores its share of the dev set
    if ctx.info.is_main:
        scores = _plots(ctx, state, progress.epoch + 1)
        improved = record_if_best(state, result.wer, result.cer, result.loss)
        keeper.add_epoch(progress.epoch + 1, result.wer, result.cer, partial, result.loss)
        row = {**_dev_row(progress, result, scores), "partial": partial}
        append_metrics(ctx.exp_dir, row)
        if _plot_now(ctx.cfg, progress.epoch + 1):
            rows = read_jsonl(ctx.exp_dir / "metrics.jsonl")
            health.plot_curves(ctx.exp_dir / "plots" / "curves.png", rows)
        _report(ctx, state, row, progress.step)
    return distributed.any_rank(improved, ctx.info, ctx.device)


def record_if_best(state: RunState, wer: float, cer: float, loss: float) -> bool:
    """Keep the epoch's dev scores in `state` if they rank best so far; True if they did."""
    if state.best_wer is not None:
        best_loss = math.inf if state.best_loss is None else state.best_loss  # older last.pt
        best = dev_rank(state.best_wer, state.best_cer or 0.0, best_loss)
        if dev_rank(wer, cer, loss) >= best:
            return False
    state.best_wer, state.best_cer, state.best_loss = wer, cer, loss
    return True


def _validate(ctx: EpochContext) -> EvalResult:
    opts = DecodeOptions.from_config(ctx.cfg.decode, beam=1)
    tokenizer = ctx.data.tokenizer

    def decode(model: LAS, batch: Batch) -> list[str]:
        hyps = greedy_search(model, batch.feats, batch.feat_lengths, opts, tokenizer)
        return [h.text for h in hyps]

    with Progress(console=console, transient=True, disable=not ctx.info.is_main) as bar:
        task = bar.add_task("validating", total=len(ctx.dev_loader))
        return evaluate(
            ctx.model,
            ctx.dev_loader,
            tokenizer,
            decode,
            device=ctx.device,
            on_batch=lambda: bar.advance(task),
            reduce=lambda counts: distributed.sum_all(counts, ctx.device),
        )


def _plots(ctx: EpochContext, state: RunState, epoch: int) -> dict[str, float]:
    """Attention plots of the first dev utterances and the health figure; returns the scores."""
    count = min(ctx.cfg.train.plot_utterances, len(ctx.data.dev))
    if count == 0:
        return {"diagonality": 0.0, "monotonicity": 0.0, "focus": 0.0}
    examples = [ctx.data.dev[i] for i in range(count)]
    batch = collate(examples).to(ctx.device)
    out = ctx.model.teacher_forced(batch)
    with torch.no_grad():
        _, enc_lengths = ctx.model.encode(batch.feats, batch.feat_lengths)
    matrices, plots = [], ctx.exp_dir / "plots"
    tokenizer = ctx.data.tokenizer
    for i, example in enumerate(examples):
        tokens = example.tokens.tolist()
        weights = out.weights[i, : len(tokens) + 1, : int(enc_lengths[i])].cpu()  # (U+1, T')
        matrices.append(weights)
        if not _plot_now(ctx.cfg, epoch):
            continue
        labels = [tokenizer.pieces[t] for t in tokens] + ["<eos>"]
        frame_shift = ctx.model.subsampling * ctx.cfg.features.hop_ms / 1000
        source = ctx.model.alignment_source
        title = f"{example.id} (epoch {epoch}{'; ' + source if source else ''})"
        health.plot_attention(
            plots / f"attention-{i + 1}.png", example.feats, weights, labels, frame_shift, title
        )
        if out.head_weights is not None:  # every head of that block, one panel each
            heads = out.head_weights[i, :, : len(tokens) + 1, : int(enc_lengths[i])].cpu()
            decoder = ctx.model.speller
            assert isinstance(decoder, TransformerDecoder)  # the only one with head weights
            heads_title = f"{example.id} (epoch {epoch}; every head of {decoder.alignment_block})"
            plot_heads(
                plots / f"attention-heads-{i + 1}.png", heads, labels, frame_shift, heads_title
            )
    scores = health.mean_health(matrices)
    state.health.append({"epoch": epoch, **scores})
    if _plot_now(ctx.cfg, epoch):
        health.plot_health(plots / "health.png", matrices, state.health)
    return scores


def _plot_now(cfg: ExperimentConfig, epoch: int) -> bool:
    return cfg.train.plot_every > 0 and epoch % cfg.train.plot_every == 0


def _dev_row(
    progress: LoopProgress, result: EvalResult, scores: dict[str, float]
) -> dict[str, Any]:
    means = progress.epoch_means()
    return {
        "kind": "dev",
        "epoch": progress.epoch + 1,
        "step": progress.step,
        "loss": result.loss,
        "acc": result.acc,
        "cer": result.cer,
        "wer": result.wer,
        "train_loss": means["loss"],
        "train_acc": means["acc"],
        **scores,
        "aligned": health.is_aligned(scores),
        "audio_seconds_per_second": progress.audio_seconds / max(progress.train_seconds, 1e-9),
    }


def _report(ctx: EpochContext, state: RunState, row: dict[str, Any], step: int) -> None:
    console.print(
        f"epoch {row['epoch']}: dev loss {row['loss']:.3f} acc {100 * row['acc']:.1f}% "
        f"CER {100 * row['cer']:.1f}% WER {100 * row['wer']:.1f}% | diagonality "
        f"{row['diagonality']:.2f} monotonicity {row['monotonicity']:.2f}",
        highlight=False,
    )
    if (
        step >= ctx.cfg.train.align_check_steps
        and not row["aligned"]
        and not state.warned_alignment
    ):
        state.warned_alignment = True
        advice = health.not_aligned_advice(row, step, ctx.cfg.attention)
        console.print(f"[bold yellow]warning:[/] {advice}", highlight=False)
