"""Table-driven normaliser tests."""

from __future__ import annotations

import pytest

from asrkit.io import UserError
from asrkit.scoring import normalize

LIBRISPEECH = [
    ("Don't stop—it's “well-known”, café!", "DON'T STOP IT'S WELL KNOWN CAFE"),
    ("he said ‘yes’  to\tU.S.A.", "HE SAID 'YES' TO USA"),
    ("FLOUR-FATTENED sauce", "FLOUR FATTENED SAUCE"),
    ("  ", ""),
]

ENGLISH = [
    ("IT'S TWENTY FIVE DOLLARS MISTER SMITH'S COLOUR", "it is $25 mister smith is color"),
    (
        "Uh, I think Mr. Smith paid $25.50 (roughly) for 2 colours!",
        "i think mister smith paid $25.50 for 2 colors",
    ),
    ("I DON'T KNOW", "i do not know"),
    ("two hundred and five", "205"),
    ("nineteen eighty four", "1984"),
    ("one oh one", "101"),
    ("the twenty first century", "the 21st century"),
    ("three point one four", "3.14"),
    ("fifty percent", "50%"),
    ("five dollars and seven cents", "$5.07"),
    ("one of them", "one of them"),
    ("oh my [noise] god", "oh my god"),
    ("we won't go, y'all", "we will not go you all"),
]


@pytest.mark.parametrize(("text", "expected"), LIBRISPEECH)
def test_librispeech(text: str, expected: str) -> None:
    assert normalize(text, "librispeech") == expected


@pytest.mark.parametrize(("text", "expected"), ENGLISH)
def test_english(text: str, expected: str) -> None:
    assert normalize(text, "english") == expected


def test_idempotent() -> None:
    for text, _ in LIBRISPEECH + ENGLISH:
        for kind in ("librispeech", "english", "none"):
            once = normalize(text, kind)
            assert normalize(once, kind) == once


def test_unknown_normalizer() -> None:
    with pytest.raises(UserError, match="unknown normalizer"):
        normalize("x", "whisper")
