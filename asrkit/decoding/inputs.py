"""Which audio files `transcribe` reads: files, folders (recursively) and list files.

A list file is `@list.txt`, or any argument ending in .txt, .lst or .list: one path per line,
blank lines and `#` comments ignored, relative paths taken from the list file's folder.
"""

from __future__ import annotations

from pathlib import Path

from asrkit.io import MissingPathError, UserError, require_file

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aif", ".aiff", ".au", ".sph")
LIST_SUFFIXES = (".txt", ".lst", ".list")


def _read_list(path: Path) -> list[Path]:
    require_file(path, "list file")
    paths = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if "\x00" in entry:
            raise UserError(f"{path}:{number}: the path holds a NUL byte")
        audio = Path(entry) if Path(entry).is_absolute() else path.parent / entry
        try:
            found = audio.is_file()
        except OSError as exc:  # a name too long for the filesystem
            raise UserError(f"{path}:{number}: not a valid path ({exc.strerror})") from exc
        if not found:
            raise MissingPathError(f"{path}:{number}: audio file not found: {entry}")
        paths.append(audio)
    return paths


def collect_audio(arguments: list[str]) -> list[Path]:
    """Expand command-line arguments into audio files, in the order given.

    Raises:
        UserError: a path that does not exist, or no audio at all.
    """
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument[1:] if argument.startswith("@") else argument)
        if argument.startswith("@") or path.suffix.lower() in LIST_SUFFIXES:
            paths.extend(_read_list(path))
        elif path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
            )
            if not found:
                raise UserError(
                    f"{path}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})"
                )
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise MissingPathError(f"{path}: audio file not found")
    if not paths:
        raise UserError("no audio files given")
    return paths
