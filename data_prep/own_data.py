"""Your own recordings as manifests: a folder of audio + `.txt` files, or a TSV/CSV table.

Both write the same `DIR/<name>.jsonl` as LibriSpeech (text normalised the LibriSpeech way), so
every later command treats them alike. The speaker defaults to the audio file's parent folder.

Example:
    >>> prepare_folder(Path("my_recordings"), Path("data")).path
    PosixPath('data/my_recordings.jsonl')
    >>> prepare_table(Path("list.tsv"), Path("data"), name="mine").utterances
    12
"""

from __future__ import annotations

import csv
from pathlib import Path

from asrkit.io import UserError, ensure_writable_dir, require_dir, require_file
from asrkit.scoring.normalize import normalize_librispeech
from data_prep.common import (
    AUDIO_EXTENSIONS,
    BAD_LINE,
    EMPTY_TRANSCRIPT,
    MISSING_AUDIO,
    NO_TRANSCRIPT,
    BuildOptions,
    Candidate,
    PartReport,
    Problem,
    absolute,
    prepare_part,
)
from data_prep.provenance import input_record


def _utt_id(path: Path, root: Path) -> str:
    """`root/spk/a.wav` -> "spk-a": unique within the folder, readable in reports."""
    relative = absolute(path).relative_to(absolute(root)).with_suffix("")
    return "-".join(relative.parts)


def prepare_folder(
    folder: Path,
    out_dir: Path,
    name: str | None = None,
    jobs: int = 1,
    force: bool = False,
    verify: bool = False,
    show_progress: bool = True,
) -> PartReport:
    """Manifest of every audio file under `folder` (recursively) with a sibling `.txt`.

    `a/b.wav` is transcribed by `a/b.txt`; its id is "a-b" and its speaker "a" (the parent
    folder's name). Audio without a `.txt` and a `.txt` without audio are problems.

    Args:
        folder: the recordings.
        out_dir: DATA_DIR.
        name: manifest stem; default the folder's name.
        jobs: threads reading audio headers.
        force: overwrite an existing manifest.
        verify: decode every audio file completely (finds truncated files; slower).
        show_progress: draw progress bars.
    """
    folder = require_dir(Path(folder))
    name = name or absolute(folder).name
    out_dir = ensure_writable_dir(Path(out_dir))
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    if not audio:
        raise UserError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    texts = [p for p in files if p.suffix.lower() == ".txt"]
    record = input_record("folder", {"verify": verify}, texts, audio)
    candidates, problems = _folder_candidates(folder, audio, texts)
    build = BuildOptions(jobs=jobs, verify=verify, show_progress=show_progress)
    return prepare_part(name, candidates, problems, out_dir, record, force, build)


def _folder_candidates(
    folder: Path, audio: list[Path], texts: list[Path]
) -> tuple[list[Candidate], list[Problem]]:
    """Each audio file paired with its sibling .txt, and the files left unpaired."""
    candidates, problems = [], []
    audio_stems = {p.with_suffix("") for p in audio}
    for path in audio:
        utt_id = _utt_id(path, folder)
        transcript = path.with_suffix(".txt")
        if not transcript.is_file():
            problems.append(Problem(NO_TRANSCRIPT, utt_id, str(path), f"no {transcript.name}"))
            continue
        text = normalize_librispeech(transcript.read_text(encoding="utf-8", errors="replace"))
        if not text:
            problems.append(Problem(EMPTY_TRANSCRIPT, utt_id, str(transcript), ""))
            continue
        speaker = path.parent.name if path.parent != folder else absolute(folder).name
        candidates.append(Candidate(id=utt_id, audio=path, text=text, speaker=speaker))
    for path in texts:
        if path.with_suffix("") not in audio_stems:
            problems.append(Problem(MISSING_AUDIO, _utt_id(path, folder), str(path), "no audio"))
    return candidates, problems


def _read_rows(table: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a TSV/CSV (by extension, else sniffed); header made lower-case."""
    try:
        text = table.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{table}: cannot read table ({exc})") from exc
    suffix = table.suffix.lower()
    if suffix in (".tsv", ".tab"):
        delimiter = "\t"
    elif suffix == ".csv":
        delimiter = ","
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters="\t,;|").delimiter
        except csv.Error as exc:
            raise UserError(f"{table}: cannot tell the column separator (use .tsv/.csv)") from exc
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(r)]
    if not rows:
        raise UserError(f"{table}: table is empty")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("path", "text") if c not in header]
    if missing:
        raise UserError(
            f"{table}: the first row must name the columns path and text (optional id, speaker);"
            f" found {', '.join(header)}"
        )
    return header, rows[1:]


def prepare_table(
    table: Path,
    out_dir: Path,
    name: str | None = None,
    jobs: int = 1,
    force: bool = False,
    verify: bool = False,
    show_progress: bool = True,
) -> PartReport:
    """Manifest from a TSV/CSV with columns `path` and `text` (optional `id`, `speaker`).

    Relative paths are resolved against the table's folder. The default id is the path relative
    to that folder with separators as "-", the default speaker the audio's parent folder name.

    Args:
        table: the TSV/CSV file, its first row naming the columns.
        out_dir: DATA_DIR.
        name: manifest stem; default the table's file stem.
        jobs: threads reading audio headers.
        force: overwrite an existing manifest.
        verify: decode every audio file completely (finds truncated files; slower).
        show_progress: draw progress bars.
    """
    table = require_file(Path(table), "table")
    header, rows = _read_rows(table)
    name = name or table.stem
    out_dir = ensure_writable_dir(Path(out_dir))
    candidates, problems = _table_candidates(table, header, rows)
    named = [c.audio for c in candidates] + [
        Path(p.path) for p in problems if p.kind == MISSING_AUDIO
    ]
    record = input_record("table", {"verify": verify}, [table], named)
    build = BuildOptions(jobs=jobs, verify=verify, show_progress=show_progress)
    return prepare_part(name, candidates, problems, out_dir, record, force, build)


def _table_candidates(
    table: Path, header: list[str], rows: list[list[str]]
) -> tuple[list[Candidate], list[Problem]]:
    """The utterances a table lists, and the problems of its rows (line numbers from 2)."""
    base = absolute(table.parent)
    candidates, problems = [], []
    for number, row in enumerate(rows, 2):
        where = f"{table}:{number}"
        if len(row) < len(header):
            problems.append(Problem(BAD_LINE, None, where, f"{len(row)} of {len(header)} columns"))
            continue
        fields = dict(zip(header, (v.strip() for v in row), strict=False))
        if not fields["path"] or "\x00" in fields["path"]:
            reason = "the path holds a NUL byte" if fields["path"] else "no audio path"
            problems.append(Problem(BAD_LINE, None, where, reason))
            continue
        audio = absolute(base / fields["path"])  # also folds "..", so ids stay well formed
        try:
            found = audio.is_file()
        except OSError as exc:  # a name too long for the filesystem
            problems.append(Problem(BAD_LINE, None, where, f"bad path ({exc.strerror})"))
            continue
        inside = audio.is_relative_to(base)
        utt_id = fields.get("id") or (_utt_id(audio, base) if inside else audio.stem)
        text = normalize_librispeech(fields["text"])
        if not found:
            problems.append(Problem(MISSING_AUDIO, utt_id, str(audio), f"named on line {number}"))
        elif not text:
            problems.append(Problem(EMPTY_TRANSCRIPT, utt_id, where, ""))
        else:
            speaker = fields.get("speaker") or audio.parent.name
            candidates.append(Candidate(id=utt_id, audio=audio, text=text, speaker=speaker))
    return candidates, problems
