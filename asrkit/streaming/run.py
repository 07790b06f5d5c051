"""`attnasr transcribe --stream`: feed files (or raw PCM on stdin) to a `Stream` in chunks, as a
live source would, and report partial and final hypotheses as JSON lines.

Each line is one event: `{"type": "partial", "id", "seconds", "text", "words"}` when the
committed text grew (`seconds`: audio received so far), and `{"type": "final", "id",
"seconds", "text", "words": [{"word", "start", "end", "confidence", "emitted"}]}` at the end
(`emitted`: the audio seconds received when the word's last unit was committed, so
`emitted - end` is how long after the word ended the stream showed it).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import soundfile as sf
import torch
from rich.console import Console

from asrkit.checkpoint import LoadedModel
from asrkit.decoding.options import DecodeOptions
from asrkit.features import load_audio
from asrkit.io import UserError, atomic_write_text, ensure_writable_dir, refuse_overwrite
from asrkit.streaming.stream import Partial, Stream, StreamResult


class Sink(Protocol):
    """Where events go: stdout, or a buffer written to a file at the end."""

    def write(self, text: str) -> int: ...

    def flush(self) -> None: ...


@dataclass(frozen=True)
class StreamSource:
    """One input: an id and its audio in chunks of mono float32 samples at the model's rate."""

    id: str
    chunks: Iterator[torch.Tensor]


def file_source(path: Path, rate: int, chunk: int, expected_rate: int | None) -> StreamSource:
    """A file cut into chunks (resampled to the model's rate first).

    Raises:
        UserError: unreadable audio, or a file whose rate is not `expected_rate` (when given).
    """
    if expected_rate is not None:
        try:
            native = sf.info(str(path)).samplerate
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UserError(f"{path}: not readable as audio ({exc})") from exc
        if native != expected_rate:
            raise UserError(
                f"{path}: recorded at {native} Hz, not the --sample-rate {expected_rate} given"
            )
    wave = load_audio(path, rate)
    return StreamSource(
        Path(path).stem, (wave[i : i + chunk] for i in range(0, wave.numel(), chunk))
    )


def stdin_source(stream: IO[bytes], rate: int, model_rate: int, chunk: int) -> StreamSource:
    """Raw 16-bit little-endian mono PCM (`arecord -f S16_LE -c 1 -r 16000 -t raw`) in chunks.

    Raises:
        UserError: a rate other than the model's, or input that ends in the middle of a sample.
    """
    if rate != model_rate:
        raise UserError(
            f"--sample-rate {rate}: the model reads {model_rate} Hz audio; record or resample"
            f" at {model_rate} Hz (arecord -r {model_rate}, sox ... -r {model_rate})"
        )

    def chunks() -> Iterator[torch.Tensor]:
        received = 0
        while True:
            data = stream.read(2 * chunk)
            if not data:
                return
            received += len(data)
            if len(data) % 2:
                more = stream.read(1)
                if not more:
                    raise UserError(
                        f"stdin ended in the middle of a sample ({received} bytes; 16-bit"
                        " samples come in pairs of bytes)"
                    )
                data, received = data + more, received + 1
            pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
            yield torch.from_numpy(pcm)

    return StreamSource("stdin", chunks())


def stream_one(
    loaded: LoadedModel,
    source: StreamSource,
    opts: DecodeOptions,
    endpoint_seconds: float,
    emit: Sink,
    console: Console,
) -> StreamResult:
    """Run one source through a `Stream`, writing its events to `emit` as they come."""
    stream = Stream(loaded, opts, endpoint_seconds)
    for samples in source.chunks:
        for partial in stream.accept(samples):
            _partial_event(source.id, partial, emit, console)
    result = stream.finish()
    words = [
        {
            "word": w.word,
            "start": w.start,
            "end": w.end,
            "confidence": w.confidence,
            "emitted": round(e, 3),
        }
        for w, e in zip(result.words, result.emitted, strict=False)
    ]
    row = {"type": "final", "id": source.id, "seconds": round(result.duration, 3)}
    emit.write(json.dumps({**row, "text": result.text, "words": words}) + "\n")
    emit.flush()
    console.print(f"[bold]{source.id}[/] {result.text}", highlight=False)
    return result


def _partial_event(utt_id: str, partial: Partial, emit: Sink, console: Console) -> None:
    row = {"type": "partial", "id": utt_id, "seconds": round(partial.seconds, 3)}
    emit.write(json.dumps({**row, "text": partial.text, "words": partial.words}) + "\n")
    emit.flush()
    console.print(f"[dim]{partial.seconds:7.2f} s[/] {partial.text}", highlight=False)


def run_stream(
    loaded: LoadedModel,
    sources: list[StreamSource],
    opts: DecodeOptions,
    endpoint_seconds: float,
    out: Path | None,
    force: bool,
    console: Console,
) -> list[StreamResult]:
    """Stream every source; events go to stdout, or to `OUT/<id>.stream.jsonl` (with the
    final text in `OUT/<id>.txt`).

    Raises:
        UserError: earlier results in `out` without `force`.
    """
    if out is not None:
        ensure_writable_dir(out)
    results = []
    for source in sources:
        if out is None:
            results.append(stream_one(loaded, source, opts, endpoint_seconds, sys.stdout, console))
            continue
        events, text = out / f"{source.id}.stream.jsonl", out / f"{source.id}.txt"
        refuse_overwrite([events, text], force)
        lines = io.StringIO()  # written out atomically once the stream has finished
        result = stream_one(loaded, source, opts, endpoint_seconds, lines, console)
        atomic_write_text(events, lines.getvalue())
        atomic_write_text(text, result.text + "\n")
        results.append(result)
    return results
