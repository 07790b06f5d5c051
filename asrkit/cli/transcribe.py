"""`attnasr transcribe AUDIO... --model EXP`: speech to text, subtitles and alignment plots."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from asrkit.cli.common import (
    AttWindowOption,
    BeamOption,
    CtcWeightOption,
    CtcWindowOption,
    DeviceOption,
    LengthBonusOption,
    LengthPenaltyOption,
    LmOption,
    LmWeightOption,
    NbestOption,
    console,
    fusion_overrides,
    resolve_device,
    user_errors,
)
from asrkit.io import UserError


class OutputFormat(str, Enum):
    txt = "txt"
    json = "json"
    srt = "srt"
    vtt = "vtt"
    ctm = "ctm"
    all = "all"


class TimestampSource(str, Enum):
    auto = "auto"
    attention = "attention"
    ctc = "ctc"


@user_errors
def transcribe(
    model: Annotated[
        list[Path],
        typer.Option(
            "--model",
            help="Experiment folder or .pt checkpoint; repeat it to decode with an ensemble.",
        ),
    ],
    audio: Annotated[
        list[str] | None, typer.Argument(help="Audio files, folders or @list.txt files.")
    ] = None,
    beam: BeamOption = None,
    ctc_weight: CtcWeightOption = None,
    ctc_window: CtcWindowOption = None,
    att_window: AttWindowOption = None,
    length_penalty: LengthPenaltyOption = None,
    lm: LmOption = None,
    lm_weight: LmWeightOption = None,
    length_bonus: LengthBonusOption = None,
    nbest: NbestOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.txt
    ),
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for DIR/<name>.<format> files.")
    ] = None,
    plot: Annotated[bool, typer.Option("--plot", help="Write an alignment PNG per file.")] = False,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Files (or segments) decoded together.")
    ] = None,
    device: DeviceOption = "auto",
    timestamps: Annotated[
        TimestampSource,
        typer.Option("--timestamps", help="Word times from CTC alignment or attention."),
    ] = TimestampSource.auto,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite earlier results in --out.")
    ] = False,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="Decode while feeding the audio in chunks, as a live source: partial and final"
            " hypotheses as JSON lines (streaming models only; greedy).",
        ),
    ] = False,
    stdin: Annotated[
        bool,
        typer.Option("--stdin", help="Stream raw 16-bit mono PCM from stdin (with --sample-rate)."),
    ] = False,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", help="Rate of the --stdin PCM (or that files must have)."),
    ] = None,
    chunk_ms: Annotated[
        int, typer.Option("--chunk-ms", min=10, help="--stream: milliseconds of audio per chunk.")
    ] = 160,
    endpoint_seconds: Annotated[
        float,
        typer.Option(
            "--endpoint-seconds",
            min=0.0,
            help="--stream: audio after the decoder's end of sentence that starts the next"
            " segment (0 = one segment).",
        ),
    ] = 1.0,
) -> None:
    """Transcribe audio: one file prints to stdout, several go to --out DIR; prints the RTF.

    With --stream (or --stdin) a streaming model decodes while the audio is fed in chunks;
    partial and final hypotheses go to stdout as JSON lines, or to DIR/<id>.stream.jsonl.

    Exit codes: 0 every input decoded; 1 an error, or no input could be decoded (nothing is
    written); 3 some inputs could not be decoded (the others are written, the failures are
    listed in DIR/summary.json).
    """
    if stream or stdin:
        from asrkit.streaming.cli import stream_command

        stream_command(audio or [], model, stdin, sample_rate, chunk_ms, endpoint_seconds,
                       beam, out, force, device, console)  # fmt: skip
        return
    if not audio:
        raise UserError("give audio files, folders or @list.txt (or --stdin with --stream)")
    from asrkit.decoding.run import run_transcribe, timing_table

    overrides = {
        "beam": beam,
        "ctc_weight": ctc_weight,
        "ctc_window": ctc_window,
        "att_window": att_window,
        "length_penalty": length_penalty,
        "batch_size": batch_size,
        "timestamps": timestamps.value,
        **fusion_overrides(lm, lm_weight, length_bonus, nbest),
    }
    result = run_transcribe(
        audio, model, overrides, fmt.value, out, plot, resolve_device(device), force, console
    )
    sys.stdout.write(result.stdout)
    if result.files:
        console.print(f"wrote {len(result.files)} files to {out or Path.cwd()}")
    console.print(timing_table(result.timing, len(result.transcripts)))
    if result.failed:
        where = f"; listed in {out / 'summary.json'}" if out is not None else ""
        console.print(
            f"[yellow]{len(result.failed)} of {len(result.transcripts)} inputs could not be"
            f" decoded (warnings above){where}; exit code {result.exit_code}[/]",
            highlight=False,
        )
        raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add `transcribe` to `app`."""
    app.command("transcribe")(transcribe)
