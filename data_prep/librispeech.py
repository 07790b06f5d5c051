"""LibriSpeech: one manifest per part from the openslr tree.

Layout (as the archives unpack): `LibriSpeech/<part>/<speaker>/<chapter>/` holds
`<speaker>-<chapter>.trans.txt` (`<utt-id> <TEXT>` per line) and one audio file per utterance,
`<utt-id>.<ext>`. The extension is not assumed: some copies are FLAC, others MP3 or WAV, so audio
is found by utterance id. `SPEAKERS.TXT` beside the parts gives each reader's gender.

Example:
    >>> reports = prepare_librispeech(Path("corpora"), Path("data"), parts=["dev-clean"])
    >>> reports["dev-clean"].path
    PosixPath('data/dev-clean.jsonl')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asrkit.io import UserError, ensure_writable_dir, require_dir
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
    find_audio,
    prepare_part,
)
from data_prep.provenance import input_record

# The official parts, in the order openslr lists them.
LIBRISPEECH_PARTS = (
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
)
_UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def find_corpus_root(corpus_dir: Path) -> Path:
    """The `LibriSpeech/` folder: `corpus_dir` itself or its `LibriSpeech` child.

    Raises:
        UserError: when the folder is missing or holds no LibriSpeech part.
    """
    corpus_dir = require_dir(Path(corpus_dir), "corpus folder")
    for root in (corpus_dir / "LibriSpeech", corpus_dir):
        if root.is_dir() and available_parts(root):
            return root
    raise UserError(
        f"{corpus_dir}: no LibriSpeech part found (expected e.g. LibriSpeech/dev-clean/"
        "<speaker>/<chapter>/*.trans.txt under it)"
    )


def available_parts(root: Path) -> list[str]:
    """Sub-folders of `root` that hold at least one `<speaker>/<chapter>/*.trans.txt`."""
    return sorted(
        d.name for d in root.iterdir() if d.is_dir() and next(d.glob("*/*/*.trans.txt"), None)
    )


def read_genders(root: Path) -> dict[str, str]:
    """Speaker id -> "F"/"M" from `SPEAKERS.TXT` (empty when the file is absent)."""
    path = root / "SPEAKERS.TXT"
    if not path.is_file():
        return {}
    genders = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 2 and fields[0] and fields[1] in ("F", "M"):
            genders[fields[0]] = fields[1]
    return genders


def list_part(part_dir: Path, genders: dict[str, str]) -> tuple[list[Candidate], list[Problem]]:
    """Pair every transcript line of a part with its audio file.

    Returns:
        The candidate utterances and the problems found while pairing them (a line with no
        audio, audio with no line, an empty transcript, an unparsable line).
    """
    candidates: list[Candidate] = []
    problems: list[Problem] = []
    for chapter_dir in sorted(p for p in part_dir.glob("*/*") if p.is_dir()):
        audio = find_audio(chapter_dir)
        claimed: set[str] = set()
        for trans in sorted(chapter_dir.glob("*.trans.txt")):
            # splitlines() accepts LF and CRLF alike; undecodable bytes become U+FFFD and are
            # then dropped by the normaliser instead of aborting the whole part.
            text = trans.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                utt_id, _, words = line.strip().partition(" ")
                match = _UTT_ID.match(utt_id)
                if match is None:
                    problems.append(Problem(BAD_LINE, None, f"{trans}:{number}", line[:60]))
                    continue
                claimed.add(utt_id)
                words = normalize_librispeech(words)
                if utt_id not in audio:
                    problems.append(Problem(MISSING_AUDIO, utt_id, str(trans), "no audio file"))
                elif not words:
                    problems.append(Problem(EMPTY_TRANSCRIPT, utt_id, str(trans), ""))
                else:
                    speaker, chapter = match.group(1), match.group(2)
                    candidates.append(
                        Candidate(
                            id=utt_id,
                            audio=audio[utt_id],
                            text=words,
                            speaker=speaker,
                            chapter=chapter,
                            gender=genders.get(speaker),
                        )
                    )
        for stem in sorted(set(audio) - claimed):
            problems.append(Problem(NO_TRANSCRIPT, stem, str(audio[stem]), "no transcript line"))
    return candidates, problems


def prepare_librispeech(
    corpus_dir: Path,
    out_dir: Path,
    parts: Sequence[str] | None = None,
    jobs: int = 1,
    force: bool = False,
    verify: bool = False,
    show_progress: bool = True,
) -> dict[str, PartReport]:
    """Write `out_dir/<part>.jsonl` (and `<part>.problems.json`) for each LibriSpeech part.

    Args:
        corpus_dir: the folder holding `LibriSpeech/`, or `LibriSpeech/` itself.
        out_dir: DATA_DIR, created if needed.
        parts: part names; None prepares every part present.
        jobs: threads reading audio headers.
        force: re-prepare parts whose manifest already exists (otherwise they are skipped).
        verify: decode every audio file completely (finds truncated files; slower).
        show_progress: draw progress bars.

    Returns:
        One report per part, in the order asked for.

    Raises:
        UserError: corpus missing or without parts, unknown part, DATA_DIR not writable.
    """
    root = find_corpus_root(corpus_dir)
    present = available_parts(root)
    wanted = list(parts) if parts else present
    unknown = [p for p in wanted if p not in present]
    if unknown:
        raise UserError(
            f"{root}: no part named {', '.join(unknown)} (present: {', '.join(present)})"
        )
    out_dir = ensure_writable_dir(Path(out_dir))
    genders = read_genders(root)
    reports = {}
    for part in wanted:
        candidates, problems = list_part(root / part, genders)
        record = _record(root, part, verify)
        build = BuildOptions(jobs=jobs, verify=verify, show_progress=show_progress)
        reports[part] = prepare_part(part, candidates, problems, out_dir, record, force, build)
    return reports


def _record(root: Path, part: str, verify: bool) -> dict[str, Any]:
    """What a part is made from: its transcripts and SPEAKERS.TXT by content, its audio files
    (every one under the part, claimed or not) by size and time."""
    files = [p for p in (root / part).glob("*/*/*") if p.is_file()]
    texts = [p for p in files if p.name.endswith(".trans.txt")] + [root / "SPEAKERS.TXT"]
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    return input_record("librispeech", {"verify": verify}, texts, audio)
