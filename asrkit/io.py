"""Small I/O helpers shared by every command: atomic writes, JSON lines and file digests.

A killed process must never leave a half-written file that looks finished, so every output
goes to a temporary file in the same folder and is renamed into place (rename is atomic on
POSIX filesystems).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Exit codes of every command (documented in the README): 0 success, 1 a user error (nothing
# usable was produced), 2 a command-line usage error (Typer's), 3 partial success: outputs were
# written but some inputs could not be used (each named in a warning and the run's summary
# file), 130 interrupted (saved and resumable where the command allows it).
EXIT_USER_ERROR = 1
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake in the user's input: the CLI prints the message as one line and exits 1."""


class MissingPathError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist.

    Also a `FileNotFoundError`, so a caller of the Python API can catch it the usual way:

    >>> try:
    ...     read_jsonl(Path("no/such/manifest.jsonl"))
    ... except FileNotFoundError as exc:
    ...     print(exc)
    no/such/manifest.jsonl: file not found
    """

    def __str__(self) -> str:
        # OSError.__str__ would print "(None) message"; the message alone is the one line.
        return str(self.args[0]) if self.args else ""


def _valid(path: Path) -> Path:
    """`path` if the OS can look it up at all (`Path.is_file` raises on these, not False)."""
    if "\x00" in str(path):
        raise UserError(f"{str(path)!r}: not a valid path (it holds a NUL byte)")
    try:
        path.exists()
    except OSError as exc:  # e.g. ENAMETOOLONG
        raise UserError(f"{str(path)[:80]!r}...: not a valid path ({exc.strerror})") from exc
    return path


def require_file(path: Path, what: str = "file") -> Path:
    """`path` when it is a file; else a one-line error saying it is missing or a folder."""
    path = _valid(Path(path))
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a {what}")
    if not path.is_file():
        raise MissingPathError(f"{path}: {what} not found")
    return path


def require_dir(path: Path, what: str = "folder") -> Path:
    """`path` when it is a folder; else a one-line error saying it is missing or a file."""
    path = _valid(Path(path))
    if path.is_file():
        raise UserError(f"{path}: is a file, not a {what}")
    if not path.is_dir():
        raise MissingPathError(f"{path}: {what} not found")
    return path


def one_line(exc: BaseException) -> str:
    """The user-facing line of `exc`, also when a DataLoader worker wrapped it.

    PyTorch re-raises a worker's exception as the same type whose message is "Caught X in
    DataLoader worker process N. Original Traceback ..."; the original message is its last line.
    """
    text = str(exc)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` and rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines atomically; returns the number of rows."""
    count = 0
    with atomic_open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON lines; a bad line is a UserError naming the file and line number."""
    path = require_file(Path(path))
    rows = []
    with path.open("rb") as handle:  # lines are split on b"\n" only, as JSON lines are
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}:{number}: not UTF-8 text ({exc.reason})") from exc
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            except RecursionError as exc:
                raise UserError(f"{path}:{number}: JSON nested too deeply") from exc
            if not isinstance(row, dict):
                raise UserError(f"{path}:{number}: expected a JSON object")
            rows.append(row)
    return rows


def refuse_overwrite(paths: Iterable[Path | None], force: bool) -> None:
    """Refuse to replace an earlier output unless `force`, before any work is done.

    Raises:
        UserError: naming the first of `paths` (None entries skipped) that exists.
    """
    if force:
        return
    for path in paths:
        if path is not None and Path(path).exists():
            raise UserError(f"{path}: already exists (use --force to replace it)")


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` if needed and check that we can write into it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot create folder ({exc.strerror})") from exc
    if not os.access(path, os.W_OK):
        raise UserError(f"{path}: folder is not writable")
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
