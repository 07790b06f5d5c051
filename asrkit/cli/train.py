"""`attnasr train CONFIG --train TRAIN.jsonl --valid DEV.jsonl --out EXP_DIR [...]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asrkit.cli.common import DeviceOption, console, user_errors
from asrkit.io import EXIT_INTERRUPTED


@user_errors
def train_command(
    config: Annotated[
        Path, typer.Argument(help="Experiment YAML, e.g. recipes/mini/conf/local.yaml.")
    ],
    train: Annotated[Path, typer.Option("--train", help="Training manifest (JSON lines).")],
    valid: Annotated[Path, typer.Option("--valid", help="Dev manifest: loss, greedy CER/WER.")],
    out: Annotated[Path, typer.Option("--out", help="Experiment folder (EXP_DIR) to write.")],
    attention: Annotated[
        str | None, typer.Option("--attention", help="Attention kind or family (global, ...).")
    ] = None,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="Override train.max_epochs.")
    ] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Stop cleanly after this many minutes.")
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(
            "--max-steps",
            help="Stop after this many optimizer steps (repeats a budget-stopped run's steps).",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue exactly from EXP_DIR/checkpoints/last.pt.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Start over in an EXP_DIR that holds a run.")
    ] = False,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override section.key=value (repeatable).")
    ] = None,
    device: DeviceOption = "auto",
) -> None:
    """Train a LAS model; EXP_DIR then works as --model for transcribe and evaluate.

    Runs unchanged under `torchrun --nproc_per_node N` (DDP).
    """
    from asrkit.config import load_yaml
    from asrkit.training.run import train as run_training

    options = [f"attention.kind={attention}"] if attention else []
    options += [f"train.max_epochs={max_epochs}"] if max_epochs is not None else []
    options += [f"train.max_minutes={max_minutes}"] if max_minutes is not None else []
    options += [f"train.max_steps={max_steps}"] if max_steps is not None else []
    result = run_training(
        load_yaml(config),
        train,
        valid,
        out,
        resume=resume,
        force=force,
        device=device,
        overrides=[*(overrides or []), *options],
    )
    console.print(f"{result.best_line()}; model: {result.final_checkpoint}", highlight=False)
    if result.stop_reason == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)  # saved and resumable, but a stage script must not go on


def register(app: typer.Typer) -> None:
    """Add `train` to `app`."""
    app.command("train")(train_command)
