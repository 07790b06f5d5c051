"""Reading trn, Kaldi text and JSON lines; writing trn."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrkit.io import UserError
from asrkit.scoring.formats import read_transcripts, write_trn


def test_three_formats(tmp_path: Path) -> None:
    trn = tmp_path / "a.trn"
    trn.write_text("HE HOPED (1089-134686-0000)\n(1089-134686-0001)\n")
    kaldi = tmp_path / "text"
    kaldi.write_text("1089-134686-0000 HE HOPED\n1089-134686-0001\n")
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(
        '{"id": "1089-134686-0000", "text": "HE HOPED", "speaker": "1089", "duration": 2.5}\n'
        '{"id": "1089-134686-0001", "text": "", "speaker": "1089", "duration": 1.0}\n'
    )
    for path, fmt in ((trn, "trn"), (kaldi, "kaldi"), (jsonl, "jsonl")):
        result = read_transcripts(path)
        assert result.format == fmt
        assert result.texts == {"1089-134686-0000": "HE HOPED", "1089-134686-0001": ""}
    assert read_transcripts(jsonl).durations["1089-134686-0000"] == 2.5


def test_trn_round_trip(tmp_path: Path) -> None:
    texts = {"u2": "B C", "u1": "A"}
    write_trn(tmp_path / "x.trn", texts, {"u1": "spk", "u2": "spk"})
    assert (tmp_path / "x.trn").read_text() == "A (spk-u1)\nB C (spk-u2)\n"
    assert read_transcripts(tmp_path / "x.trn").texts == {"spk-u1": "A", "spk-u2": "B C"}


def test_bad_inputs(tmp_path: Path) -> None:
    dup = tmp_path / "dup.txt"
    dup.write_text("a x\na y\n")
    with pytest.raises(UserError, match=r"dup.txt:2: utterance id 'a'"):
        read_transcripts(dup)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(UserError, match="no utterances"):
        read_transcripts(empty)
    with pytest.raises(UserError, match="not found"):
        read_transcripts(tmp_path / "missing.trn")
