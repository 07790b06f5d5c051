"""Small corpora built inside a test: a fake LibriSpeech tree with one of every problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float, rate: int, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, seconds: float, rate: int = 16000, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, rate), rate, format=fmt)
    return path


SPEAKERS = """; comment line
;ID  |SEX| SUBSET           |MINUTES| NAME
11   | F | dev-tiny         | 1.00  | Reader One
22   | M | dev-tiny         | 1.00  | Reader Two
"""

# What the fake part should produce.
GOOD = {"11-100-0000": "HELLO WORLD", "11-100-0001": "GOOD MORNING", "22-200-0000": "IT'S LOWER"}
PROBLEMS = {
    "11-100-0002": "missing audio",
    "11-100-0003": "empty transcript",
    "11-100-0004": "unreadable audio",
    "11-100-0005": "no transcript",
    "11-100-0006": "empty audio",
}


def fake_librispeech(root: Path, part: str = "dev-tiny") -> Path:
    """`root/LibriSpeech/<part>/` with 3 good utterances and one of each problem; returns
    `root`. Chapter 11/100 has a CRLF transcript, 22/200 an LF one with an 8 kHz WAV."""
    corpus = root / "LibriSpeech"
    corpus.mkdir(parents=True)
    (corpus / "SPEAKERS.TXT").write_text(SPEAKERS)
    chapter = corpus / part / "11" / "100"
    lines = [
        "11-100-0000 HELLO WORLD",
        "11-100-0001 GOOD  MORNING",
        "11-100-0002 THIS LINE HAS NO AUDIO",
        "11-100-0003",
        "11-100-0004 THIS FILE IS NOT AUDIO",
        "11-100-0006 EMPTY FILE",
    ]
    chapter.mkdir(parents=True)
    (chapter / "11-100.trans.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    write_audio(chapter / "11-100-0000.wav", 1.0)
    write_audio(chapter / "11-100-0001.flac", 1.5)
    write_audio(chapter / "11-100-0003.flac", 0.5)
    (chapter / "11-100-0004.flac").write_text("this is text, not FLAC\n")
    write_audio(chapter / "11-100-0005.flac", 0.5)
    write_audio(chapter / "11-100-0006.wav", 0.0)
    other = corpus / part / "22" / "200"
    other.mkdir(parents=True)
    (other / "22-200.trans.txt").write_text("22-200-0000 it’s lower\n")
    write_audio(other / "22-200-0000.wav", 0.8, rate=8000)
    return root
