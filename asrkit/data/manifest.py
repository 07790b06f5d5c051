"""The JSON-lines manifest: one utterance per line, the format every command reads and writes.

Required fields: `id`, `audio` (absolute path), `duration` (seconds), `sample_rate`, `speaker`,
`text`. Optional: `chapter`, `gender`, and any other key (kept as-is).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from asrkit.io import UserError, read_jsonl, write_jsonl

REQUIRED = ("id", "audio", "duration", "sample_rate", "speaker", "text")


@dataclass(frozen=True)
class Utterance:
    id: str  # unique utterance id, e.g. "84-121123-0000"
    audio: str  # absolute path of the audio file
    duration: float  # seconds, from the decoded length
    sample_rate: int  # the file's native rate (features are resampled)
    speaker: str
    text: str  # normalised transcript
    chapter: str | None = None
    gender: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other keys, written back unchanged

    def to_json(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None}
        row.update(self.extra)
        return row


def utterance_from_json(row: dict[str, Any], where: str) -> Utterance:
    missing = [key for key in REQUIRED if key not in row]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(missing)}")
    known = {"id", "audio", "duration", "sample_rate", "speaker", "text", "chapter", "gender"}
    try:
        utterance = Utterance(
            id=str(row["id"]),
            audio=str(row["audio"]),
            duration=float(row["duration"]),
            sample_rate=int(row["sample_rate"]),
            speaker=str(row["speaker"]),
            text=str(row["text"]),
            chapter=None if row.get("chapter") is None else str(row["chapter"]),
            gender=row.get("gender"),
            extra={k: v for k, v in row.items() if k not in known},
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise UserError(f"{where}: bad field value ({exc})") from exc
    if not (math.isfinite(utterance.duration) and utterance.duration >= 0):
        raise UserError(
            f"{where}: duration must be a number of seconds >= 0, got {row['duration']}"
        )
    if "\x00" in utterance.audio:
        raise UserError(f"{where}: the audio path holds a NUL byte")
    if utterance.sample_rate <= 0:
        raise UserError(f"{where}: sample_rate must be positive, got {row['sample_rate']}")
    return utterance


def read_manifest(path: Path, allow_empty: bool = False) -> list[Utterance]:
    """Read a manifest; errors name the file and line. An empty manifest is an error."""
    path = Path(path)
    utterances = []
    for number, row in enumerate(read_jsonl(path), 1):
        utterances.append(utterance_from_json(row, f"{path}:{number}"))
    if not utterances and not allow_empty:
        raise UserError(f"{path}: manifest is empty")
    ids = [u.id for u in utterances]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{path}: utterance id {dup!r} appears more than once")
    return utterances


def write_manifest(path: Path, utterances: list[Utterance]) -> int:
    """Write a manifest atomically; returns the number of lines."""
    return write_jsonl(Path(path), (u.to_json() for u in utterances))
