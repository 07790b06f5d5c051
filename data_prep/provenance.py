"""What a prepared part was made from, so that "already prepared" means "from these inputs".

Beside every manifest `DIR/<name>.jsonl` a preparer writes `DIR/<name>.inputs.json`: the
preparer, its options, and two fingerprints of the files it read. Transcript files (a table,
`*.trans.txt`, `.txt` files) are fingerprinted by content, so touching one changes nothing;
audio files by absolute path, size and modification time, since hashing hours of audio would
cost as much as preparing it. A path that was named but missing counts too, so an audio file
that appears later is a change. A re-run compares the record it would write with the one on
disk: the same means the part is current and is kept; different means the user changed an
input, and the part is refused with the change named instead of silently kept or replaced
(`--force` redoes it).

Example:
    >>> record = input_record("table", {"verify": False}, [Path("list.csv")], [Path("a.wav")])
    >>> save_record(Path("data"), "list", record)
    >>> changes(record, load_record(Path("data"), "list"))
    []
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from asrkit.io import atomic_write_json, file_sha256

RECORD_VERSION = 1  # bump when the fingerprints are computed differently


def inputs_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.inputs.json"


def _content(path: Path) -> str:
    return file_sha256(path) if path.is_file() else "missing"


def _size_and_time(path: Path) -> str:
    # A folder named where a file should be counts as missing: its time changes whenever a
    # file is written into it (this very part's outputs, perhaps).
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}\t{stat.st_mtime_ns}" if path.is_file() else "missing"


def _fingerprint(paths: Iterable[Path], state_of: Callable[[Path], str]) -> dict[str, Any]:
    """sha256 over "absolute path, state" of every distinct path, sorted, and their count."""
    distinct = sorted({Path(p).absolute() for p in paths})
    digest = hashlib.sha256()
    for path in distinct:
        digest.update(f"{path}\t{state_of(path)}\n".encode())
    return {"files": len(distinct), "sha256": digest.hexdigest()}


def input_record(
    preparer: str,
    options: dict[str, Any],
    text_files: Iterable[Path],
    audio_files: Iterable[Path],
) -> dict[str, Any]:
    """The record of one part: who made it, with which options, from which files.

    Args:
        preparer: "librispeech", "folder", "table" or "fsdd".
        options: every option that changes the output (JSON values).
        text_files: files whose content gives the transcripts (and speakers, genders).
        audio_files: every audio path the preparer looked at, present or not.
    """
    return {
        "version": RECORD_VERSION,
        "preparer": preparer,
        "options": options,
        "transcripts": _fingerprint(text_files, _content),
        "audio": _fingerprint(audio_files, _size_and_time),
    }


def save_record(out_dir: Path, name: str, record: dict[str, Any]) -> None:
    atomic_write_json(inputs_path(out_dir, name), record)


def load_record(out_dir: Path, name: str) -> dict[str, Any] | None:
    """The saved record, or None when there is none (a part prepared by an older attnasr) or
    it cannot be read (then nothing can be told about the part's inputs either)."""
    path = inputs_path(out_dir, name)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def changes(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """What differs between the record a re-run would write and the saved one, in words.

    >>> a = input_record("table", {"verify": False}, [], [])
    >>> changes({**a, "options": {"verify": True}}, a)
    ['option verify was False, now True']
    """
    if old.get("version") != new["version"]:
        return [f"recorded by another attnasr version ({old.get('version')})"]
    found = []
    if old.get("preparer") != new["preparer"]:
        found.append(f"made by 'prepare {old.get('preparer')}', now 'prepare {new['preparer']}'")
    old_options = old.get("options") or {}
    for key in sorted(set(old_options) | set(new["options"])):
        before, now = old_options.get(key), new["options"].get(key)
        if before != now:
            found.append(f"option {key} was {before}, now {now}")
    for what in ("transcripts", "audio"):
        before, now = old.get(what) or {}, new[what]
        if before.get("sha256") != now["sha256"]:
            count, now_count = before.get("files"), now["files"]
            files = f"{now_count}" if count == now_count else f"{count} -> {now_count}"
            label = "transcript files" if what == "transcripts" else "audio files"
            found.append(f"{label} changed ({files} files)")
    return found
