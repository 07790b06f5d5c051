"""`attnasr transcribe` as a library call: inputs -> model -> transcripts -> files and plots.

Example:
    >>> result = run_transcribe(["a.flac"], Path("exp/las_char"), {"beam": 8})  # doctest: +SKIP
    >>> result.transcripts[0].text  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from asrkit.decoding.api import transcribe_files
from asrkit.decoding.inputs import collect_audio
from asrkit.decoding.options import DecodeTiming, Transcript
from asrkit.decoding.writers import (
    FORMATTERS,
    plot_transcript,
    prepare_out_dir,
    resolve_formats,
    write_nbest,
    write_transcripts,
)
from asrkit.features import Fbank, load_audio
from asrkit.io import EXIT_PARTIAL, UserError


@dataclass(frozen=True)
class TranscribeResult:
    """What a transcribe run produced."""

    transcripts: list[Transcript]
    timing: DecodeTiming
    files: list[Path]  # every file written (empty when the result went to stdout)
    stdout: str  # the text meant for standard output ("" when writing to a folder)

    @property
    def failed(self) -> list[Transcript]:
        """The inputs that could not be decoded (each has its reason as `warning`)."""
        return [t for t in self.transcripts if t.failed]

    @property
    def exit_code(self) -> int:
        """0 when every input was decoded, `EXIT_PARTIAL` (3) when some could not be."""
        return EXIT_PARTIAL if self.failed else 0


def run_transcribe(
    audio: list[str],
    model: Path | Sequence[Path],
    overrides: dict[str, Any],
    fmt: str = "txt",
    out: Path | None = None,
    plot: bool = False,
    device: str = "cpu",
    force: bool = False,
    console: Console | None = None,
) -> TranscribeResult:
    """Transcribe audio files, folders or list files with a trained model.

    Args:
        audio: command-line arguments: files, folders, `@list.txt` or .txt/.lst lists.
        model: an experiment folder or a .pt checkpoint; several decode as an ensemble (plots
            show the first one's attention).
        overrides: `DecodeOptions` fields to change from the model's `decode` config
            (None values are ignored).
        fmt: txt, json, srt, vtt, ctm or all.
        out: folder for `<id>.<ext>` files; None prints one file's result instead.
        plot: also write `<id>.png` alignment plots (into `out`, else the current folder).
        device: torch device.
        force: overwrite earlier results in `out` (and existing plots).
        console: for progress and warnings (stderr by default).

    Raises:
        UserError: bad arguments, an output folder with earlier results, or no input that
            could be decoded (nothing is written then). When only some could not be, the
            others are written and `exit_code` is `EXIT_PARTIAL`.
    """
    from asrkit.decoding.api import load_members

    formats = resolve_formats(fmt)
    paths = collect_audio(audio)
    if out is None and (len(paths) > 1 or len(formats) > 1):
        what = f"{len(paths)} audio files" if len(paths) > 1 else "--format all"
        raise UserError(f"{what} give several outputs: choose a folder with --out DIR")
    if out is not None:
        prepare_out_dir(out, force)
    members = load_members(model, device)
    loaded = members[0]
    opts = loaded.decode_options(**overrides)
    transcripts, timing = transcribe_files(members, paths, opts, console=console)
    if all(t.failed for t in transcripts):
        first = transcripts[0].warning
        what = (
            f"none of the {len(transcripts)} inputs could be decoded"
            if len(transcripts) > 1
            else "the input could not be decoded"
        )
        raise UserError(f"{what}, nothing written ({first})")
    files, stdout = [], ""
    if out is not None:
        files = write_transcripts(transcripts, out, formats, timing)
        if opts.nbest > 1:
            write_nbest(out / "nbest.jsonl", transcripts, opts, loaded)
            files.append(out / "nbest.jsonl")
    else:
        stdout = FORMATTERS[formats[0]](transcripts[0])
    if plot:
        files += _plots(loaded, transcripts, out or Path.cwd(), force)
    return TranscribeResult(transcripts, timing, files, stdout)


def _plots(loaded: Any, transcripts: list[Transcript], folder: Path, force: bool) -> list[Path]:
    """One alignment PNG per decoded transcript."""
    fbank = Fbank(loaded.config.features)
    shift = loaded.model.subsampling * loaded.config.features.hop_ms / 1000
    written = []
    for t in transcripts:
        if not t.segments:
            continue  # nothing was decoded (empty or unreadable audio)
        path = folder / f"{t.id}.png"
        if path.exists() and not force:
            raise UserError(f"{path}: exists; use --force to overwrite")
        feats = fbank(load_audio(t.audio, loaded.config.features.sample_rate))
        source = loaded.model.alignment_source
        written.append(plot_transcript(path, t, feats, loaded.tokenizer, shift, source))
    return written


def timing_table(timing: DecodeTiming, files: int) -> Table:
    """Rich table: files, audio seconds, wall seconds, real-time factor."""
    table = Table(title="decoding speed")
    for column in ("files", "audio (s)", "wall (s)", "RTF"):
        table.add_column(column, justify="right")
    table.add_row(
        str(files), f"{timing.audio_seconds:.1f}", f"{timing.wall_seconds:.1f}", f"{timing.rtf:.3f}"
    )
    return table
