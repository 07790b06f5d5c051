"""What every preparer shares: problems and part reports, parallel audio probing, writing a part.

A preparer (LibriSpeech, a folder, a table, FSDD) only has to list `Candidate` utterances and
the problems it saw while listing them; `build_part` reads every audio header in parallel,
drops the utterances whose audio is missing, unreadable or empty (each one becomes a `Problem`),
and writes `DIR/<name>.jsonl` plus `DIR/<name>.problems.json`. The manifest is written last and
atomically, so its presence means the part is complete: that is what makes re-runs idempotent.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import soundfile as sf

from asrkit.audio_integrity import nonfinite_problem
from asrkit.data.manifest import Utterance, read_manifest, write_manifest
from asrkit.data.parallel import parallel_map
from asrkit.io import UserError, atomic_write_json
from data_prep.provenance import changes, load_record, save_record

# Extensions we look for, in order of preference when one utterance id has several files.
AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".opus", ".mp3")

_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # the only sample formats that can hold NaN / inf
_MP3_FRAME = 1152  # samples per MP3 frame: decoders may legitimately differ by one frame

# Problem kinds, each named in the summary table.
MISSING_AUDIO = "missing audio"  # a transcript with no audio file
UNREADABLE_AUDIO = "unreadable audio"  # the file is not audio libsndfile can read
NONFINITE_AUDIO = "non-finite audio"  # NaN or infinite samples: refused, see nonfinite_problem
EMPTY_AUDIO = "empty audio"  # zero samples
NO_TRANSCRIPT = "no transcript"  # an audio file nobody transcribed
EMPTY_TRANSCRIPT = "empty transcript"  # nothing left after normalisation
DUPLICATE_ID = "duplicate id"  # a second utterance with an id already used
BAD_LINE = "bad line"  # a transcript or table line we cannot parse


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input; the utterance it concerns is left out of the manifest."""

    kind: str  # one of the constants above
    utt_id: str | None  # None when the problem is not tied to one utterance id
    path: str  # the file concerned
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PartReport:
    """What preparing one part produced (or found already prepared, when `skipped`)."""

    name: str
    path: Path  # the manifest DIR/<name>.jsonl
    utterances: int
    speakers: int
    hours: float
    problems: list[Problem] = field(default_factory=list)
    skipped: bool = False  # the manifest existed and --force was not given
    inputs_recorded: bool = True  # False: made by an older attnasr, so it cannot be checked


@dataclass(frozen=True)
class Candidate:
    """An utterance listed by a preparer whose audio has not been read yet."""

    id: str
    audio: Path
    text: str  # already normalised
    speaker: str
    chapter: str | None = None
    gender: str | None = None


@dataclass(frozen=True)
class AudioInfo:
    frames: int  # samples per channel, at the native rate
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def manifest_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.jsonl"


def problems_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.problems.json"


def absolute(path: Path | str) -> Path:
    """Absolute path without resolving symlinks (a linked corpus keeps the path the user gave)."""
    return Path(os.path.abspath(path))


def probe_audio(path: str, decode: bool = False) -> AudioInfo | Problem:
    """Read an audio header (or decode the whole file); returns the info or the problem.

    For MP3, libsndfile (mpg123) reports the exact decoded length, so the header's `frames`
    equals the number of samples `soundfile.read` returns (checked on the shared MP3 tree in the
    tests). A truncated or corrupt file can still have a good header: `decode=True` reads every
    sample, reports the decoded length, and turns a decoder error or a file that decodes to
    fewer samples than its header announces into a problem. Floating-point files are always
    decoded, since only they can hold NaN or infinite samples (see `nonfinite_problem`); they
    are rare, so this costs nothing on a real corpus.
    """
    try:
        with sf.SoundFile(path) as handle:
            info = AudioInfo(frames=int(handle.frames), sample_rate=int(handle.samplerate))
            floating = handle.subtype in _FLOAT_SUBTYPES
            if not (decode or floating):
                return info
            # One read of the whole file: reading MP3 in blocks makes libsndfile seek, which
            # costs mpg123 its bit reservoir and floods stderr with decoder errors.
            samples = handle.read(dtype="float32" if floating else "int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Problem(UNREADABLE_AUDIO, None, path, reason)
    if floating and (reason := nonfinite_problem(samples)):
        return Problem(NONFINITE_AUDIO, None, path, reason)
    if len(samples) < info.frames - _MP3_FRAME:
        reason = f"decodes to {len(samples)} of the {info.frames} samples its header announces"
        return Problem(UNREADABLE_AUDIO, None, path, reason)
    return AudioInfo(frames=len(samples), sample_rate=info.sample_rate)


def build_part(
    name: str,
    candidates: list[Candidate],
    out_dir: Path,
    problems: list[Problem],
    *,
    jobs: int = 1,
    verify: bool = False,
    show_progress: bool = True,
    record: dict[str, Any] | None = None,
) -> PartReport:
    """Probe every candidate's audio, then write `<name>.problems.json`, `<name>.inputs.json`
    (`record`, see `data_prep.provenance`) and, last, `<name>.jsonl`.

    Args:
        name: part name, the manifest's file stem.
        candidates: utterances listed by the preparer (text already normalised).
        out_dir: DATA_DIR, created beforehand.
        problems: problems the preparer already found; audio problems are appended.
        jobs: threads reading audio headers.
        verify: decode every file completely (finds truncated files; much slower).
        show_progress: draw the progress bar.
        record: what the part is made from; saved so a re-run can tell whether it is current.

    Raises:
        UserError: no utterance is usable; nothing but the problems file is written, since
            an empty manifest would only fail later, in training or evaluation.
    """
    problems = list(problems)
    seen: set[str] = set()
    unique: list[Candidate] = []
    for cand in candidates:
        if cand.id in seen:
            problems.append(Problem(DUPLICATE_ID, cand.id, str(cand.audio), "id already used"))
        else:
            seen.add(cand.id)
            unique.append(cand)
    paths = [str(c.audio) for c in unique]
    infos = parallel_map(
        partial(probe_audio, decode=verify),
        paths,
        jobs=jobs,
        description=f"{name}: {'decoding' if verify else 'audio headers'}",
        show=show_progress,
    )
    utterances = []
    for cand, info in zip(unique, infos, strict=True):
        if isinstance(info, Problem):
            problems.append(replace(info, utt_id=cand.id))
        elif info.frames == 0:
            problems.append(Problem(EMPTY_AUDIO, cand.id, str(cand.audio), "0 samples"))
        else:
            utterances.append(_utterance(cand, info))
    utterances.sort(key=lambda u: u.id)
    problems.sort(key=lambda p: (p.kind, p.utt_id or "", p.path))
    path = manifest_path(out_dir, name)
    side = problems_path(out_dir, name)
    atomic_write_json(side, {"part": name, "problems": [p.to_json() for p in problems]})
    if not utterances:
        raise UserError(f"{name}: no usable utterance ({_counts(problems)}); see {side}")
    if record is not None:
        save_record(out_dir, name, record)
    write_manifest(path, utterances)
    return _report(name, path, utterances, problems, skipped=False)


def _counts(problems: list[Problem]) -> str:
    """ "3 missing audio, 1 unreadable audio" (or "no input listed")."""
    kinds = Counter(p.kind for p in problems)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no input listed"


def _utterance(cand: Candidate, info: AudioInfo) -> Utterance:
    return Utterance(
        id=cand.id,
        audio=str(absolute(cand.audio)),
        duration=round(info.duration, 6),
        sample_rate=info.sample_rate,
        speaker=cand.speaker,
        text=cand.text,
        chapter=cand.chapter,
        gender=cand.gender,
    )


def _report(
    name: str, path: Path, utts: list[Utterance], problems: list[Problem], skipped: bool
) -> PartReport:
    return PartReport(
        name=name,
        path=path,
        utterances=len(utts),
        speakers=len({u.speaker for u in utts}),
        hours=sum(u.duration for u in utts) / 3600,
        problems=problems,
        skipped=skipped,
    )


@dataclass(frozen=True)
class BuildOptions:
    """How `build_part` reads the audio."""

    jobs: int = 1  # threads reading audio headers
    verify: bool = False  # decode every file completely (finds truncated files; slower)
    show_progress: bool = True


def prepare_part(
    name: str,
    candidates: list[Candidate],
    problems: list[Problem],
    out_dir: Path,
    record: dict[str, Any],
    force: bool,
    build: BuildOptions,
) -> PartReport:
    """The part prepared earlier from the same inputs (`reuse_part`), else `build_part`."""
    previous = reuse_part(name, out_dir, record, force)
    if previous is not None:
        return previous
    return build_part(
        name,
        candidates,
        out_dir,
        problems,
        jobs=build.jobs,
        verify=build.verify,
        show_progress=build.show_progress,
        record=record,
    )


def reuse_part(name: str, out_dir: Path, record: dict[str, Any], force: bool) -> PartReport | None:
    """The part prepared earlier from the inputs `record` describes, or None to prepare it.

    Raises:
        UserError: the part exists but was made from other inputs or options (each change
            named); `force` redoes it instead.
    """
    if force:
        return None
    previous = existing_part(name, out_dir)
    if previous is None:
        return None
    saved = load_record(out_dir, name)
    if saved is None:
        return replace(previous, inputs_recorded=False)
    found = changes(record, saved)
    if found:
        raise UserError(
            f"{previous.path}: prepared from other inputs ({'; '.join(found)}); "
            "use --force to prepare it again"
        )
    return previous


def existing_part(name: str, out_dir: Path) -> PartReport | None:
    """The report of a part prepared earlier, or None when its manifest does not exist."""
    path = manifest_path(out_dir, name)
    if not path.is_file():
        return None
    utts = read_manifest(path, allow_empty=True)
    problems: list[Problem] = []
    saved = problems_path(out_dir, name)
    if saved.is_file():
        try:
            rows = json.loads(saved.read_text(encoding="utf-8"))["problems"]
            problems = [Problem(**row) for row in rows]
        except (json.JSONDecodeError, KeyError, TypeError):
            problems = []  # a damaged side file does not invalidate a complete manifest
    return _report(name, path, utts, problems, skipped=True)


def find_audio(folder: Path) -> dict[str, Path]:
    """Audio files directly in `folder` by stem; the preferred extension wins on a clash."""
    found: dict[str, Path] = {}
    rank = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}
    for path in sorted(folder.iterdir()):
        ext = path.suffix.lower()
        if ext not in rank or not path.is_file():
            continue
        current = found.get(path.stem)
        if current is None or rank[ext] < rank[current.suffix.lower()]:
            found[path.stem] = path
    return found
