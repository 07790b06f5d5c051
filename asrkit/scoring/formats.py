"""Reading and writing transcript files: sclite trn, Kaldi `text`, and our JSON lines.

- trn: `TEXT (utt-id)` per line (sclite `-i rm`); the id is everything inside the last
  parentheses.
- Kaldi text: `utt-id TEXT` per line (the text may be empty).
- JSON lines: one object per line with `id` and `text` (a manifest, or `attnasr transcribe`
  output); `speaker` and `duration` are picked up when present.

The format is recognised from the content, not the file name: a first line starting with
`{` is JSON lines, a first line ending with `)` whose parentheses hold a single token is trn,
anything else is Kaldi text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from asrkit.io import UserError, atomic_write_text, require_file

_TRN_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")


@dataclass
class TranscriptSet:
    """Texts keyed by utterance id, plus whatever metadata the file carried."""

    path: Path
    format: str  # "trn", "kaldi" or "jsonl"
    texts: dict[str, str] = field(default_factory=dict)
    speakers: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    audio: dict[str, str] = field(default_factory=dict)  # a manifest's recordings

    def add(self, utt_id: str, text: str, where: str) -> None:
        if utt_id in self.texts:
            raise UserError(f"{where}: utterance id {utt_id!r} appears more than once")
        self.texts[utt_id] = text


def detect_format(lines: list[str]) -> str:
    """Guess the transcript format from the first non-empty line."""
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    if _TRN_LINE.match(first):
        return "trn"
    return "kaldi"


def _read_jsonl(result: TranscriptSet, lines: list[str]) -> None:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{result.path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or "id" not in row or "text" not in row:
            raise UserError(f"{where}: expected a JSON object with 'id' and 'text'")
        utt_id = str(row["id"])
        result.add(utt_id, str(row["text"] or ""), where)
        if row.get("speaker") is not None:
            result.speakers[utt_id] = str(row["speaker"])
        if isinstance(row.get("duration"), (int, float)):
            result.durations[utt_id] = float(row["duration"])
        if isinstance(row.get("audio"), str):
            result.audio[utt_id] = row["audio"]


def _read_lines(result: TranscriptSet, lines: list[str]) -> None:
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith(";;"):
            continue
        where = f"{result.path}:{number}"
        if result.format == "trn":
            match = _TRN_LINE.match(line)
            if match is None:
                raise UserError(f"{where}: trn line does not end with '(utterance-id)'")
            result.add(match["id"], match["text"].strip(), where)
        else:
            utt_id, _, text = line.strip().partition(" ")
            result.add(utt_id, text.strip(), where)


def read_transcripts(path: Path) -> TranscriptSet:
    """Read a trn, Kaldi text or JSON-lines transcript file.

    Raises:
        UserError: when the file is missing, unreadable, malformed (naming the line), holds
            an utterance id twice, or holds no utterance at all.
    """
    path = require_file(Path(path))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    result = TranscriptSet(path=path, format=detect_format(lines))
    if result.format == "jsonl":
        _read_jsonl(result, lines)
    else:
        _read_lines(result, lines)
    if not result.texts:
        raise UserError(f"{path}: no utterances found (empty transcript file)")
    return result


def trn_id(utt_id: str, speaker: str | None) -> str:
    """The id written in a trn line: sclite `-i rm` takes the speaker from the prefix before the
    first `-` or `_`, so the speaker is prepended unless the id already starts with it."""
    if speaker is None or utt_id.startswith((f"{speaker}-", f"{speaker}_")):
        return utt_id
    return f"{speaker}-{utt_id}"


def write_trn(path: Path, texts: dict[str, str], speakers: dict[str, str] | None = None) -> None:
    """Write `TEXT (spk-id)` lines, sorted by id, atomically."""
    speakers = speakers or {}
    lines = [f"{texts[i]} ({trn_id(i, speakers.get(i))})\n" for i in sorted(texts)]
    atomic_write_text(Path(path), "".join(lines))
