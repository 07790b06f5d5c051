"""`train()`: one experiment from manifests to `EXP/final.pt`, resumable, single or multi-process.

The epoch loop is plain: train on the epoch's batches (`loop.train_one_epoch`), evaluate on the
dev set, plot, keep checkpoints, stop early when the dev WER stops improving. A time budget,
a step limit, Ctrl-C or the end of the epochs all end the same way: last.pt is saved
(resumable), the kept checkpoints are averaged into final.pt.

Example:
    >>> result = train(load_yaml(Path("recipes/digits/conf/global.yaml")),
    ...                Path("data/digits/train.jsonl"), Path("data/digits/test.jsonl"),
    ...                Path("exp/digits_global"))             # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrkit.checkpoint import load_checkpoint
from asrkit.cli.common import console, resolve_device
from asrkit.config import ExperimentConfig, apply_overrides, save_yaml
from asrkit.decoding.constraints import attention_window
from asrkit.decoding.options import DecodeOptions
from asrkit.io import atomic_write_json, read_jsonl, write_jsonl
from asrkit.model.las import LAS, attention_kind_of
from asrkit.tokenizer import tokenizer_from_dict
from asrkit.training import distributed
from asrkit.training.checkpoints import CheckpointKeeper
from asrkit.training.epoch import (
    EpochContext,
    RunState,
    end_of_epoch,
    make_loader,
    run_epoch,
)
from asrkit.training.experiment import (
    check_exp_dir,
    check_resumable,
    load_data,
    warn_if_too_short_for_ctc,
)
from asrkit.training.health import plot_curves
from asrkit.training.loop import Optimisation, Progress
from asrkit.training.provenance import append_session, session_record
from asrkit.training.schedule import build_optimizer


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        exp_dir: the experiment folder.
        final_checkpoint: EXP/final.pt (the averaged model).
        best_dev_wer, best_dev_cer: best greedy dev error rates (fractions; None if no epoch
            finished).
        epochs: epochs completed; steps: optimizer steps.
        audio_seconds_per_second: training throughput (audio seconds per wall second).
        stop_reason: "done", "early-stop", "budget", "max-steps" or "interrupted".
        train_minutes: wall time of the training steps (validation excluded).
        threads: torch CPU threads of the run, over all its processes under DDP (what the
            throughput was measured with).
    """

    exp_dir: Path
    final_checkpoint: Path
    best_dev_wer: float | None
    best_dev_cer: float | None
    epochs: int
    steps: int
    audio_seconds_per_second: float
    stop_reason: str
    train_minutes: float = 0.0
    threads: int = 1
    best_dev_loss: float | None = None  # teacher-forced dev loss of the best-ranked epoch

    def best_line(self) -> str:
        """The summary's "best dev WER", saying how the epoch was chosen when WER could not.

        >>> TrainResult(Path("e"), Path("e/final.pt"), 0.25, 0.1, 3, 90, 20.0, "done").best_line()
        'best dev WER 25.00%'
        >>> TrainResult(Path("e"), Path("e/final.pt"), 2.15, 0.9, 3, 90, 20.0, "done",
        ...             best_dev_loss=1.2).best_line()  # doctest: +NORMALIZE_WHITESPACE
        'best dev WER: none below 100% (dev WERs of 100% and more rank alike, so the epoch
        with the lowest dev loss, 1.200, was kept; its WER is 215.00%)'
        """
        if self.best_dev_wer is None:
            return "best dev WER n/a (no epoch finished)"
        wer = f"{100 * self.best_dev_wer:.2f}%"
        if self.best_dev_wer < 1.0:
            return f"best dev WER {wer}"
        loss = "n/a" if self.best_dev_loss is None else f"{self.best_dev_loss:.3f}"
        return (
            "best dev WER: none below 100% (dev WERs of 100% and more rank alike, so the epoch"
            f" with the lowest dev loss, {loss}, was kept; its WER is {wer})"
        )


def train(
    cfg: ExperimentConfig,
    train_manifest: Path,
    valid_manifest: Path,
    exp_dir: Path,
    *,
    resume: bool = False,
    force: bool = False,
    device: str = "cpu",
    overrides: list[str] | tuple[str, ...] = (),
) -> TrainResult:
    """Train a LAS model; see the module docstring.

    Args:
        cfg: the experiment config; `overrides` (`section.key=value`) are applied on top.
        train_manifest, valid_manifest: JSON-lines manifests.
        exp_dir: output folder; must not hold a run unless `resume` or `force`.
        resume: continue exactly from EXP/checkpoints/last.pt.
        force: delete an earlier run's outputs in `exp_dir` first.
        device: "cpu", "cuda" or "auto" (each torchrun process takes its local GPU).

    Raises:
        UserError: bad manifests, an occupied EXP_DIR, a checkpoint from another config, ...
    """
    cfg = apply_overrides(cfg, list(overrides))
    exp_dir = Path(exp_dir)
    info = distributed.from_env()
    console.quiet = not info.is_main  # one voice per job: rank 0 reports for everyone
    device = distributed.setup(info, resolve_device(device))
    try:
        return _train(
            cfg, Path(train_manifest), Path(valid_manifest), exp_dir, resume, force, device, info
        )
    finally:
        distributed.teardown(info)


def _train(
    cfg: ExperimentConfig,
    train_manifest: Path,
    valid_manifest: Path,
    exp_dir: Path,
    resume: bool,
    force: bool,
    device: str,
    info: distributed.DistInfo,
) -> TrainResult:
    # Decode options are used by every validation: refuse bad ones before the first epoch.
    attention_window(attention_kind_of(cfg), DecodeOptions.from_config(cfg.decode))
    check_exp_dir(exp_dir, resume, force, info.is_main)
    distributed.barrier(info)
    saved = load_checkpoint(exp_dir / "checkpoints" / "last.pt") if resume else None
    if saved is not None:
        check_resumable(saved["config"], cfg, exp_dir / "checkpoints" / "last.pt")
    tokenizer = tokenizer_from_dict(saved["tokenizer"]) if saved else None
    data = load_data(cfg, train_manifest, valid_manifest, tokenizer)
    if info.is_main and not resume:
        save_yaml(cfg, exp_dir / "config.yaml")
        data.tokenizer.save(exp_dir / "tokenizer.json")
        data.cmvn.save(exp_dir / "cmvn.json")
    if info.is_main:
        record = session_record(train_manifest, valid_manifest, info.world_size, device)
        append_session(exp_dir, record)

    _seed_everything(cfg.train.seed)
    model = LAS(cfg, data.tokenizer.vocab_size)
    model.set_cmvn(torch.tensor(data.cmvn.mean), torch.tensor(data.cmvn.std))
    warn_if_too_short_for_ctc(cfg, data, model.subsampling)
    model.to(device)
    train_loader, sampler = make_loader(data.train, cfg, info, training=True)
    opt = _optimisation(cfg, model, len(sampler.batches), info, device)
    longest = max(data.train.frames, default=0) * cfg.features.hop_ms / 1000.0
    keeper = CheckpointKeeper(exp_dir, model, cfg, data.tokenizer, cfg.train.keep_best, longest)
    progress, state = Progress(), RunState()
    if saved is not None:
        model.load_state_dict(saved["model"])
        _restore(saved["train_state"], opt, keeper, progress, state)
        if info.is_main:
            _truncate_metrics(exp_dir, progress.step)
        console.print(f"resuming at epoch {progress.epoch + 1}, step {progress.step}")
    ctx = EpochContext(
        cfg=cfg,
        exp_dir=exp_dir,
        model=model,
        wrapped=distributed.wrap(model, info, device),
        opt=opt,
        data=data,
        train_loader=train_loader,
        sampler=sampler,
        dev_loader=make_loader(data.dev, cfg, info, training=False)[0],
        device=device,
        info=info,
    )
    reason = _epochs(ctx, keeper, progress, state)
    return _finish(ctx, keeper, progress, state, reason)


def _epochs(
    ctx: EpochContext, keeper: CheckpointKeeper, progress: Progress, state: RunState
) -> str:
    """Run epochs until done, early stop, budget, max_steps or Ctrl-C; returns the reason."""
    budget = ctx.cfg.train.max_minutes * 60
    max_steps = ctx.cfg.train.max_steps
    started = time.monotonic()

    def steps_done() -> bool:
        return max_steps > 0 and progress.step >= max_steps

    if steps_done():  # resumed with no steps left to take
        return "max-steps"
    with _interrupt_flag() as interrupted:

        def should_stop() -> bool:
            over = budget > 0 and time.monotonic() - started > budget
            over = over or steps_done()
            return distributed.any_rank(over or interrupted.is_set(), ctx.info, ctx.device)

        def reason() -> str:
            if interrupted.is_set():
                return "interrupted"
            return "max-steps" if steps_done() else "budget"

        while progress.epoch < ctx.cfg.train.max_epochs:
            finished = run_epoch(ctx, progress, should_stop)
            # A stop after the epoch's last batch is a stop at its end: the full path below, so
            # max_steps there repeats a budget that ran out during that epoch's validation.
            if not finished and (interrupted.is_set() or not _epoch_complete(ctx, progress)):
                if not interrupted.is_set():
                    # Stopped mid-epoch: the weights so far also compete for final.pt.
                    # fork_rng: validation must not move the RNG that resume restores.
                    with torch.random.fork_rng():
                        end_of_epoch(ctx, keeper, progress, state, partial=True)
                _save_last(ctx, keeper, progress, state)  # mid-epoch: resume skips done batches
                return reason()
            improved = end_of_epoch(ctx, keeper, progress, state)
            state.bad_epochs = 0 if improved else state.bad_epochs + 1
            progress.epoch += 1
            progress.batch = 0
            progress.totals = {}
            _save_last(ctx, keeper, progress, state)
            if ctx.cfg.train.patience and state.bad_epochs >= ctx.cfg.train.patience:
                return "early-stop"
            if not finished or should_stop():
                return reason()
    return "done"


def _epoch_complete(ctx: EpochContext, progress: Progress) -> bool:
    """True if this rank has trained on every batch of the current epoch."""
    return progress.batch >= ctx.sampler.start + len(ctx.sampler)


def _finish(
    ctx: EpochContext, keeper: CheckpointKeeper, progress: Progress, state: RunState, reason: str
) -> TrainResult:
    final = ctx.exp_dir / "final.pt"
    if ctx.info.is_main:
        final = keeper.finalize()
        metrics = ctx.exp_dir / "metrics.jsonl"
        rows = read_jsonl(metrics) if metrics.is_file() else []
        if ctx.cfg.train.plot_every > 0 and rows:
            plot_curves(ctx.exp_dir / "plots" / "curves.png", rows)
    speed = progress.audio_seconds / max(progress.train_seconds, 1e-9)
    result = TrainResult(
        exp_dir=ctx.exp_dir,
        final_checkpoint=final,
        best_dev_wer=state.best_wer,
        best_dev_cer=state.best_cer,
        epochs=progress.epoch,
        steps=progress.step,
        audio_seconds_per_second=speed,
        stop_reason=reason,
        train_minutes=progress.train_seconds / 60.0,
        threads=torch.get_num_threads() * ctx.info.world_size,
        best_dev_loss=state.best_loss,
    )
    if ctx.info.is_main:
        summary = {k: str(v) if isinstance(v, Path) else v for k, v in result.__dict__.items()}
        atomic_write_json(ctx.exp_dir / "train_result.json", summary)
        messages = {
            "done": "training finished",
            "early-stop": f"stopped early: no better dev epoch for {ctx.cfg.train.patience} epochs",
            "budget": f"stopped at the time budget ({ctx.cfg.train.max_minutes:g} min)",
            "max-steps": f"stopped at train.max_steps ({ctx.cfg.train.max_steps})",
            "interrupted": "interrupted: progress saved",
        }
        console.print(
            f"{messages[reason]}; final model {final}"
            + ("" if reason == "done" else f" (continue with --resume from {keeper.last_path})")
        )
    distributed.barrier(ctx.info)
    return result


def _save_last(
    ctx: EpochContext, keeper: CheckpointKeeper, progress: Progress, state: RunState
) -> None:
    if not ctx.info.is_main:
        return
    opt = ctx.opt
    keeper.save_last(
        {
            "progress": progress.__dict__,
            "run": state.__dict__,
            "best": keeper.state_dict(),
            "optimizer": opt.optimizer.state_dict(),
            "scheduler": opt.scheduler.state_dict(),
            "scaler": opt.scaler.state_dict() if opt.scaler else None,
            "rng": _rng_state(),
        }
    )


def _restore(
    saved: dict[str, Any],
    opt: Optimisation,
    keeper: CheckpointKeeper,
    progress: Progress,
    state: RunState,
) -> None:
    """Put every piece of the saved training state back (the weights are loaded by the caller)."""
    progress.__dict__.update(saved["progress"])
    state.__dict__.update(saved["run"])
    keeper.load_state_dict(saved["best"])
    opt.optimizer.load_state_dict(saved["optimizer"])
    opt.scheduler.load_state_dict(saved["scheduler"])
    if opt.scaler and saved["scaler"]:
        opt.scaler.load_state_dict(saved["scaler"])
    _set_rng_state(saved["rng"])


def _optimisation(
    cfg: ExperimentConfig, model: LAS, batches: int, info: distributed.DistInfo, device: str
) -> Optimisation:
    """Optimizer, schedule (sized for `max_epochs` of `batches` batches) and precision."""
    steps_per_epoch = -(-batches // (info.world_size * cfg.optim.accum_steps))
    optimizer, scheduler = build_optimizer(
        list(model.parameters()), cfg.optim, steps_per_epoch * cfg.train.max_epochs
    )
    dtype = precision_dtype(cfg, device)
    return Optimisation(
        optimizer=optimizer,
        scheduler=scheduler,
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        scaler=torch.amp.GradScaler("cuda") if dtype == torch.float16 else None,
        autocast_dtype=dtype,
        grad_clip=cfg.optim.grad_clip,
        accum_steps=cfg.optim.accum_steps,
        frame_shift=cfg.features.hop_ms / 1000,
    )


def precision_dtype(cfg: ExperimentConfig, device: str) -> torch.dtype | None:
    """bf16 autocast on CUDA or the CPU, fp16 on CUDA only (the CPU trains fp16 runs in fp32:
    it has no fp16 matrix units worth the loss scaling)."""
    if cfg.train.precision == "bf16":
        return torch.bfloat16
    if cfg.train.precision == "fp16" and device.startswith("cuda"):
        return torch.float16
    return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(rng: dict[str, Any]) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


@contextmanager
def _interrupt_flag() -> Iterator[threading.Event]:
    """First Ctrl-C asks the loop to stop at the next step (and save); a second one aborts."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
        console.print("[yellow]Ctrl-C: saving at the end of this step (press again to abort)[/]")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _truncate_metrics(exp_dir: Path, step: int) -> None:
    """Drop metrics logged after the checkpoint we resume from (they will be logged again)."""
    path = exp_dir / "metrics.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        write_jsonl(path, [r for r in rows if r.get("step", 0) <= step])
