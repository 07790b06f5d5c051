"""The LibriSpeech LM corpus (openslr resource 11) as language-model text, dev/test excluded.

`librispeech-lm-norm.txt.gz` (about 1.4 GB, 40 M sentences from 14,500 public-domain books,
already upper case) is fetched with the corpus download code (resume, MD5 check), then streamed
once: every line normalised the LibriSpeech way, every sentence of the `exclude` manifests
(a dev or test set) dropped, the rest written to one text file (atomically).

Example:
    >>> prepare_lm_text(Path("corpora"), Path("data/lm/librispeech.txt"),
    ...                 exclude=[Path("data/dev-clean.jsonl")], download=True)  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asrkit.data.manifest import read_manifest
from asrkit.io import UserError, atomic_open, ensure_writable_dir, refuse_overwrite
from asrkit.scoring.normalize import normalize_librispeech
from data_prep.download import download_file

LM_TEXT_URL = "https://www.openslr.org/resources/11"
LM_TEXT_NAME = "librispeech-lm-norm.txt.gz"
# From openslr's md5sum.txt of resource 11 (the sum other toolkits' recipes check as well).
LM_TEXT_MD5 = "c83c64c726a1aedfe65f80aa311de402"


@dataclass(frozen=True)
class LMTextReport:
    path: Path
    sentences: int  # written
    excluded: int  # sentences of the exclude manifests found and dropped
    empty: int  # lines empty after normalisation


def prepare_lm_text(
    corpus_dir: Path,
    out: Path,
    exclude: Sequence[Path] = (),
    download: bool = False,
    base_url: str = LM_TEXT_URL,
    md5: str = LM_TEXT_MD5,
    force: bool = False,
    show_progress: bool = True,
) -> LMTextReport:
    """Write `out` from `corpus_dir/librispeech-lm-norm.txt.gz` (downloaded first if asked).

    Raises:
        UserError: the archive missing (without `download`), a broken or mismatched download,
            a damaged archive, an existing `out` without `force`.
    """
    refuse_overwrite([out], force)
    corpus_dir = ensure_writable_dir(Path(corpus_dir))
    archive = corpus_dir / LM_TEXT_NAME
    if download:
        download_file(
            f"{base_url.rstrip('/')}/{LM_TEXT_NAME}", archive, md5, show_progress=show_progress
        )
    if not archive.is_file():
        raise UserError(f"{archive}: not found (use --download to fetch it from openslr)")
    dropped = {u.text for manifest in exclude for u in read_manifest(manifest)}
    written = excluded = empty = 0
    try:
        with gzip.open(archive, "rt", encoding="utf-8") as source, atomic_open(out) as target:
            for line in source:
                sentence = normalize_librispeech(line)
                if not sentence:
                    empty += 1
                elif sentence in dropped:
                    excluded += 1
                else:
                    target.write(sentence + "\n")
                    written += 1
    except (gzip.BadGzipFile, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise UserError(f"{archive}: not a readable gzip text file ({exc})") from exc
    except OSError as exc:  # the output side: a full disk, a read-only folder
        raise UserError(f"{out}: cannot write ({exc.strerror or exc})") from exc
    if written == 0:
        raise UserError(f"{archive}: no sentence left to write")
    return LMTextReport(out, written, excluded, empty)
