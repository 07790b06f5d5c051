"""Fetch LibriSpeech parts from openslr: resumable, verified, safely extracted.

An archive is downloaded to `<name>.part`; a broken transfer resumes from where it stopped with
an HTTP Range request (within one call, `retries` times, and across calls). Only an archive whose
MD5 matches the published sum is renamed to its final name, and it is unpacked into a staging
folder that is renamed into place, so a file or folder with the final name is always complete.

Example:
    >>> download_librispeech(["dev-clean"], Path("corpora"))  # corpora/LibriSpeech/dev-clean
    PosixPath('corpora')
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from asrkit.data.parallel import console
from asrkit.io import UserError, ensure_writable_dir

OPENSLR_URL = "https://www.openslr.org/resources/12"
# Published in https://www.openslr.org/resources/12/md5sum.txt.
LIBRISPEECH_MD5 = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}
_CHUNK = 1 << 20


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class _Truncated(OSError):
    """The server closed the connection before sending everything it announced."""


def _fetch(url: str, part: Path, timeout: float, progress: Progress) -> None:
    """Append the rest of `url` to `part`, asking for the missing byte range only."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after `offset`: the file is already whole
            return
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the range: start again from the first byte
        length = response.headers.get("Content-Length")
        expected = None if length is None else offset + int(length)
        task = progress.add_task(part.name, total=expected, completed=offset)
        written = offset
        with part.open("ab" if offset else "wb") as handle:
            while block := response.read(_CHUNK):
                handle.write(block)
                written += len(block)
                progress.update(task, completed=written)
        if expected is not None and written < expected:
            raise _Truncated(f"connection closed at byte {written} of {expected}")


def download_file(
    url: str,
    dest: Path,
    md5: str,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    show_progress: bool = True,
) -> Path:
    """Download `url` to `dest`, resuming `dest.part`, and verify its MD5.

    Raises:
        UserError: HTTP error, a transfer still broken after `retries` resumptions (the partial
            file is kept for the next run), or a checksum mismatch (the partial file is deleted).
    """
    dest = Path(dest)
    if dest.is_file():  # only a verified download ever gets the final name
        return dest
    part = dest.with_name(dest.name + ".part")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        disable=not show_progress,
    )
    with progress:
        for attempt in range(retries + 1):
            try:
                _fetch(url, part, timeout, progress)
                break
            except HTTPError as exc:
                raise UserError(f"{url}: HTTP error {exc.code} ({exc.reason})") from exc
            except (URLError, http.client.HTTPException, OSError) as exc:
                if attempt == retries:
                    size = part.stat().st_size if part.exists() else 0
                    raise UserError(
                        f"{url}: download broken after {size} bytes ({exc}); run the same"
                        " command again to resume"
                    ) from exc
    got = md5sum(part)
    if got != md5:
        part.unlink()
        raise UserError(
            f"{url}: checksum mismatch (expected MD5 {md5}, got {got}); the download was deleted"
            " and nothing was extracted"
        )
    os.replace(part, dest)
    return dest


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a tar archive into `dest`, refusing absolute paths, `..`, links and devices.

    Raises:
        UserError: naming the archive and the first unsafe member (nothing is extracted then),
            or when the archive is not a readable tar file.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                parts = Path(member.name).parts
                if (
                    member.name.startswith("/")
                    or ".." in parts
                    or not (member.isfile() or member.isdir())
                ):
                    raise UserError(
                        f"{archive}: unsafe member {member.name!r} (absolute path, '..', link or"
                        " device); nothing was extracted"
                    )
            # The "data" filter re-checks the same things and strips permissions bits.
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{archive}: cannot extract ({exc})") from exc


def download_librispeech(
    parts: Sequence[str],
    target_dir: Path,
    *,
    base_url: str = OPENSLR_URL,
    checksums: Mapping[str, str] = LIBRISPEECH_MD5,
    retries: int = 3,
    keep_archives: bool = False,
    show_progress: bool = True,
) -> Path:
    """Download and unpack LibriSpeech parts into `target_dir/LibriSpeech/<part>/`.

    Parts already unpacked are skipped. Archives are deleted once unpacked unless
    `keep_archives`.

    Args:
        parts: official part names, e.g. ["dev-clean", "train-clean-100"].
        target_dir: CORPUS_DIR; created if needed.
        base_url: where `<part>.tar.gz` lives (tests point it at a local server).
        checksums: MD5 per part name.
        retries: resumptions of a broken transfer within this call.
        keep_archives: keep `<part>.tar.gz` after unpacking.
        show_progress: draw progress bars.

    Returns:
        `target_dir`, ready for `prepare_librispeech`.
    """
    unknown = [p for p in parts if p not in checksums]
    if unknown:
        raise UserError(
            f"cannot download {', '.join(unknown)}: not a LibriSpeech part"
            f" (valid: {', '.join(checksums)})"
        )
    target = ensure_writable_dir(Path(target_dir))
    corpus = target / "LibriSpeech"
    for part in parts:
        if (corpus / part).is_dir():
            continue
        archive = download_file(
            f"{base_url.rstrip('/')}/{part}.tar.gz",
            target / f"{part}.tar.gz",
            checksums[part],
            retries=retries,
            show_progress=show_progress,
        )
        staging = target / f".extract-{part}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            safe_extract(archive, staging)
            unpacked = staging / "LibriSpeech" / part
            if not unpacked.is_dir():
                raise UserError(f"{archive}: does not contain LibriSpeech/{part}/")
            corpus.mkdir(exist_ok=True)
            for extra in (staging / "LibriSpeech").iterdir():  # SPEAKERS.TXT and friends
                if extra.is_file() and not (corpus / extra.name).exists():
                    os.replace(extra, corpus / extra.name)
            os.replace(unpacked, corpus / part)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not keep_archives:
            archive.unlink()
    return target
