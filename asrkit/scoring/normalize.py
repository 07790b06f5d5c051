"""Text normalisers applied identically to references and hypotheses before scoring.

Three named normalisers; the report records which one was used, because WERs computed under
different normalisers are not comparable (the English one changes the number of words):

- `librispeech` (default): the convention of the LibriSpeech transcripts and of the published
  Kaldi/ESPnet/icefall numbers. Upper-case, curly quotes -> `'`, hyphens and dashes -> space,
  accents folded, every character outside `[A-Z' ]` dropped. Apostrophes stay (`DON'T` is
  one LibriSpeech word); contractions and numbers are *not* expanded.
- `english`: a compact version of Whisper's `EnglishTextNormalizer` (see `asrkit.scoring.english`).
- `none`: only whitespace is collapsed.

>>> normalize("Don't stop—it's “well-known”, café!")
"DON'T STOP IT'S WELL KNOWN CAFE"
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from asrkit.io import UserError
from asrkit.scoring.english import normalize_english

_APOSTROPHES = re.compile(r"[’‘`´ʼ]")
_DASHES = re.compile(r"[-‐‑‒–—―_/]")
_NOT_LIBRISPEECH = re.compile(r"[^A-Z' ]")
_SPACES = re.compile(r"\s+")


def fold_accents(text: str) -> str:
    """Decompose (NFKD) and drop combining marks, so `café` -> `cafe` rather than `caf`."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def normalize_librispeech(text: str) -> str:
    """Map text to the LibriSpeech transcript alphabet: `A-Z`, apostrophe, single spaces."""
    text = fold_accents(text).upper()
    text = _APOSTROPHES.sub("'", text)
    text = _DASHES.sub(" ", text)
    # Whitespace first, so tabs and newlines separate words; other symbols are dropped
    # ("U.S.A." -> "USA"), as in the LibriSpeech transcripts.
    text = _SPACES.sub(" ", text)
    text = _NOT_LIBRISPEECH.sub("", text)
    return _SPACES.sub(" ", text).strip()


def normalize_none(text: str) -> str:
    """Collapse whitespace only (case and punctuation count as errors)."""
    return _SPACES.sub(" ", text).strip()


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "librispeech": normalize_librispeech,
    "english": normalize_english,
    "none": normalize_none,
}

# Bumped whenever a normaliser's output changes, so old reports can be told apart.
NORMALIZER_VERSION = "1"


def normalize(text: str, kind: str = "librispeech") -> str:
    """Normalise one transcript with the named normaliser.

    Args:
        text: raw reference or hypothesis text.
        kind: one of `NORMALIZERS` (`librispeech`, `english`, `none`).

    Returns:
        The normalised text, words separated by single spaces.

    Raises:
        UserError: for an unknown normaliser name.
    """
    try:
        func = NORMALIZERS[kind]
    except KeyError:
        valid = ", ".join(NORMALIZERS)
        raise UserError(f"unknown normalizer {kind!r} (valid: {valid})") from None
    return func(text)
