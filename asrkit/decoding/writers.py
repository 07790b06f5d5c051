"""Transcript writers: txt, json, srt, vtt and ctm, alignment plots, and the output-folder
rules.

Subtitle cues group consecutive words into lines of at most ~7 s and 42 characters (the
usual broadcast line length). Timestamps are rounded to milliseconds: SRT always has hours
and a comma (`00:01:02,345`), WebVTT has hours only from one hour on and a dot (`01:02.345`).
CTM lines are `<file> 1 <start> <dur> <word> <conf>` (NIST), sorted by time.

Example:
    >>> t = Transcript("a", "a.wav", "HI THERE", [WordTiming("HI", 0.5, 0.8, 0.9),
    ...     WordTiming("THERE", 0.8, 1.2, 0.7)], 1.5, None)
    >>> print(format_srt(t))
    1
    00:00:00,500 --> 00:00:01,200
    HI THERE
    <BLANKLINE>
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from asrkit.decoding.options import DecodeOptions, DecodeTiming, Transcript, WordTiming
from asrkit.io import (
    EXIT_PARTIAL,
    EXIT_USER_ERROR,
    UserError,
    atomic_write_json,
    atomic_write_text,
    ensure_writable_dir,
    write_jsonl,
)
from asrkit.plotting import plot_alignment
from asrkit.tokenizer import EOS_ID, Tokenizer

FORMATS = ("txt", "json", "srt", "vtt", "ctm")
CUE_SECONDS = 7.0
CUE_CHARS = 42
RESULT_SUFFIXES = (*(f".{f}" for f in FORMATS), ".png")
SUMMARY_FILES = ("transcripts.jsonl", "timing.json", "summary.json")


def format_txt(t: Transcript) -> str:
    return t.text + "\n"


def transcript_dict(t: Transcript) -> dict[str, Any]:
    """JSON view: id, audio, text, words [{word, start, end, confidence}], duration, segments."""
    row: dict[str, Any] = {
        "id": t.id,
        "audio": t.audio,
        "text": t.text,
        "duration": round(t.duration, 3),
        "words": [
            {"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence}
            for w in t.words
        ],
        "segments": [
            {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text} for s in t.segments
        ],
    }
    if t.warning:
        row["warning"] = t.warning
    if t.failed:
        row["failed"] = True
    return row


def run_summary(transcripts: list[Transcript]) -> dict[str, Any]:
    """What `summary.json` says of a run: inputs, how many were decoded, every input that could
    not be (with the reason), every warning, and the exit code the command returns."""
    failed = [t for t in transcripts if t.failed]
    code = 0
    if failed:
        code = EXIT_PARTIAL if len(failed) < len(transcripts) else EXIT_USER_ERROR
    return {
        "inputs": len(transcripts),
        "decoded": len(transcripts) - len(failed),
        "failed": [{"id": t.id, "audio": t.audio, "reason": t.warning} for t in failed],
        "warnings": [
            {"id": t.id, "audio": t.audio, "warning": t.warning}
            for t in transcripts
            if t.warning and not t.failed
        ],
        "exit_code": code,
    }


def format_json(t: Transcript) -> str:
    return json.dumps(transcript_dict(t), indent=2, ensure_ascii=False) + "\n"


def cues(words: list[WordTiming]) -> list[tuple[float, float, str]]:
    """Group words into subtitle cues (start, end, text) of <= CUE_SECONDS and CUE_CHARS."""
    out: list[tuple[float, float, str]] = []
    line: list[WordTiming] = []
    for word in words:
        text = " ".join(w.word for w in [*line, word])
        if line and (len(text) > CUE_CHARS or word.end - line[0].start > CUE_SECONDS):
            out.append((line[0].start, line[-1].end, " ".join(w.word for w in line)))
            line = []
        line.append(word)
    if line:
        out.append((line[0].start, line[-1].end, " ".join(w.word for w in line)))
    return [(start, max(end, start + 0.001), text.replace("-->", "->")) for start, end, text in out]


def timestamp(seconds: float, vtt: bool) -> str:
    """`HH:MM:SS,mmm` (SRT) or `[HH:]MM:SS.mmm` (WebVTT)."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    if vtt:
        head = f"{hours:02d}:" if hours else ""
        return f"{head}{minutes:02d}:{secs:02d}.{ms:03d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def format_srt(t: Transcript) -> str:
    blocks = [
        f"{i}\n{timestamp(a, False)} --> {timestamp(b, False)}\n{text}\n"
        for i, (a, b, text) in enumerate(cues(t.words), 1)
    ]
    return "\n".join(blocks)


def format_vtt(t: Transcript) -> str:
    blocks = [
        f"{timestamp(a, True)} --> {timestamp(b, True)}\n{text}\n" for a, b, text in cues(t.words)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def format_ctm(t: Transcript) -> str:
    lines = [
        f"{t.id} 1 {w.start:.3f} {max(w.end - w.start, 0.0):.3f} {w.word} {w.confidence:.4f}\n"
        for w in sorted(t.words, key=lambda w: w.start)
    ]
    return "".join(lines)


FORMATTERS = {
    "txt": format_txt,
    "json": format_json,
    "srt": format_srt,
    "vtt": format_vtt,
    "ctm": format_ctm,
}


def resolve_formats(name: str) -> list[str]:
    """`all` or one format name -> the list of formats to write."""
    if name == "all":
        return list(FORMATS)
    if name not in FORMATS:
        raise UserError(f"unknown format {name!r} (valid: {', '.join(FORMATS)}, all)")
    return [name]


def prepare_out_dir(out_dir: Path, force: bool) -> Path:
    """Create `out_dir`; refuse one that holds earlier results unless `force`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and not force:
        earlier = [
            p.name
            for p in out_dir.iterdir()
            if p.suffix in RESULT_SUFFIXES or p.name in (*SUMMARY_FILES, "nbest.jsonl")
        ]
        if earlier:
            raise UserError(
                f"{out_dir}: holds earlier results ({sorted(earlier)[0]}, ...); "
                "use --force to overwrite"
            )
    return ensure_writable_dir(out_dir)


def write_transcripts(
    transcripts: list[Transcript], out_dir: Path, formats: list[str], timing: DecodeTiming
) -> list[Path]:
    """Write `<id>.<ext>` per transcript and format, plus transcripts.jsonl, timing.json and
    summary.json (`run_summary`). An input that could not be decoded gets no `<id>.<ext>`
    files (an empty one would read as "silence"); it is listed in transcripts.jsonl with
    `"failed": true` and in summary.json.

    The folder must have been checked with `prepare_out_dir`. Returns the files written.
    """
    written = []
    for t in transcripts:
        for fmt in formats if not t.failed else ():
            path = out_dir / f"{t.id}.{fmt}"
            atomic_write_text(path, FORMATTERS[fmt](t))
            written.append(path)
    lines = "".join(json.dumps(transcript_dict(t), ensure_ascii=False) + "\n" for t in transcripts)
    atomic_write_text(out_dir / "transcripts.jsonl", lines)
    timing_row = {
        "files": len(transcripts),
        "audio_seconds": round(timing.audio_seconds, 3),
        "wall_seconds": round(timing.wall_seconds, 3),
        "rtf": round(timing.rtf, 4),
    }
    atomic_write_json(out_dir / "timing.json", timing_row)
    atomic_write_json(out_dir / "summary.json", run_summary(transcripts))
    summaries = [out_dir / name for name in SUMMARY_FILES]
    return [*written, *summaries]


def write_nbest(path: Path, transcripts: list[Transcript], opts: DecodeOptions, model: Any) -> int:
    """`nbest.jsonl` (`asrkit.decoding.fusion.nbest_row`) of the inputs decoded in one piece
    (a long file cut into segments has no single N-best list); returns the rows written."""
    from asrkit.decoding.fusion import nbest_row, units_digest

    joint_ctc = model.model.ctc is not None and opts.ctc_weight > 0
    units = units_digest(model.tokenizer.pieces)
    rows = [
        nbest_row(t.id, t.hypothesis.alternatives, opts, joint_ctc, units)
        for t in transcripts
        if t.hypothesis is not None and t.hypothesis.alternatives
    ]
    return write_jsonl(path, rows)


def stitched_alignment(t: Transcript, frame_shift: float) -> tuple[Tensor, list[int]]:
    """Attention of every segment placed at its time offset: (sum U_s + 1, T_file') weights
    and the token ids of the rows (EOS_ID for each segment's <eos> step)."""
    width = max(1, math.ceil(t.duration / frame_shift))
    blocks, labels = [], []
    for seg in t.segments:
        if seg.hypothesis is None:
            continue
        att = seg.hypothesis.attention
        offset = min(round(seg.start / frame_shift), width)
        block = torch.zeros(att.shape[0], width)
        span = min(att.shape[1], width - offset)
        block[:, offset : offset + span] = att[:, :span]
        blocks.append(block)
        labels.extend([*seg.hypothesis.tokens, EOS_ID])
    weights = torch.cat(blocks) if blocks else torch.zeros(0, width)
    return weights, labels


def plot_transcript(
    path: Path,
    t: Transcript,
    feats: Tensor,
    tokenizer: Tokenizer,
    frame_shift: float,
    source: str = "",
) -> Path:
    """The alignment PNG of one transcript (long audio: all segments on one time axis).

    Args:
        path: PNG to write.
        t: the transcript.
        feats: (T, n_mels) log-mel features of the whole file.
        tokenizer: for the token labels.
        frame_shift: seconds per encoder frame.
        source: which attention weights these are (a Transformer decoder's block and heads),
            added to the title; empty for the LSTM speller's single attention.
    """
    weights, ids = stitched_alignment(t, frame_shift)
    labels = [tokenizer.pieces[i] for i in ids]
    title = f"{t.id} ({source})" if source else t.id
    return plot_alignment(path, feats, weights, labels, frame_shift, title)
