"""The `transcribe --stream` / `--stdin` path of the CLI: checks, sources, then `run_stream`."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from asrkit.io import UserError


def stream_command(
    audio: list[str],
    models: list[Path],
    stdin: bool,
    sample_rate: int | None,
    chunk_ms: int,
    endpoint_seconds: float,
    beam: int | None,
    out: Path | None,
    force: bool,
    device: str,  # as given: auto, cpu or cuda
    console: Console,
) -> None:
    """Stream files or stdin with one streaming model.

    Raises:
        UserError: a model that cannot stream (naming why), an ensemble or a beam > 1, files
            together with --stdin, --stdin without --sample-rate, or a rate that does not fit.
    """
    from asrkit.checkpoint import load_model
    from asrkit.decoding.inputs import collect_audio
    from asrkit.streaming.run import file_source, run_stream, stdin_source
    from asrkit.streaming.stream import streaming_problem

    if len(models) != 1:
        raise UserError("--stream decodes with one model, not an ensemble")
    if beam is not None and beam > 1:
        raise UserError(
            f"--stream decodes greedily (--beam 1): a beam's best hypothesis can change with"
            f" later audio, so it cannot be committed early; got --beam {beam}"
        )
    if stdin and audio:
        raise UserError("give audio files or --stdin, not both")
    if stdin and sample_rate is None:
        raise UserError("--stdin needs --sample-rate (the rate of the raw 16-bit PCM)")
    if device == "cuda":  # one utterance, one step at a time: the CPU is the place for it
        raise UserError("--stream decodes on the CPU; leave --device at auto or cpu")
    loaded = load_model(models[0], "cpu")
    problem = streaming_problem(loaded)
    if problem is not None:
        raise UserError(problem)
    rate = loaded.config.features.sample_rate
    chunk = max(1, rate * chunk_ms // 1000)
    if stdin:
        assert sample_rate is not None
        sources = [stdin_source(sys.stdin.buffer, sample_rate, rate, chunk)]
    else:
        paths = collect_audio(audio)
        sources = [file_source(p, rate, chunk, sample_rate) for p in paths]
    opts = loaded.decode_options(beam=1)
    run_stream(loaded, sources, opts, endpoint_seconds, out, force, console)
