"""`attnasr demo [--out DIR] [--attention KIND] [--minutes M] [--force] [--device ...]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asrkit.cli.common import DeviceOption, console, resolve_device, user_errors


@user_errors
def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for every output.")] = Path("demo-run"),
    attention: Annotated[
        str, typer.Option("--attention", help="Attention kind or family (global, local, ...).")
    ] = "location",
    minutes: Annotated[
        float | None,
        typer.Option("--minutes", help="Cap on training time (default 4; at most 60 epochs)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the demo outputs in --out.")] = (
        False
    ),
    device: DeviceOption = "auto",
    streaming: Annotated[
        bool,
        typer.Option(
            "--streaming",
            help="Train a streaming model (left-to-right listener; monotonic, mocha or local-m"
            " attention) for transcribe --stream.",
        ),
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", hidden=True, help="Use only N training utterances.")
    ] = None,
) -> None:
    """Train a small LAS on the embedded synthetic corpus for a few CPU minutes, transcribe its
    held-out speakers and write the transcripts, WER report and attention plots to --out."""
    from asrkit.demo import print_summary, run_demo

    result = run_demo(
        out,
        attention=attention,
        minutes=minutes,
        force=force,
        device=resolve_device(device),
        limit=limit,
        console=console,
        streaming=streaming,
    )
    print_summary(result, console)


def register(app: typer.Typer) -> None:
    """Add `demo` to `app`."""
    app.command(name="demo")(demo_command)
