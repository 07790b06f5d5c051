"""Every output format parses (strict srt/vtt parsers, ctm columns, json) and plots are PNGs."""

from __future__ import annotations

import itertools
import json
import re
import struct
from pathlib import Path

import pytest
import torch

from asrkit.decoding.options import Segment, Transcript, WordTiming
from asrkit.decoding.writers import (
    CUE_CHARS,
    CUE_SECONDS,
    format_ctm,
    format_json,
    format_srt,
    format_txt,
    format_vtt,
    timestamp,
)
from asrkit.plotting import pixel_size, plot_alignment, plot_heads

SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
VTT_TIME = r"(?:(\d{2}):)?(\d{2}):(\d{2})\.(\d{3})"
SRT_CUE = re.compile(rf"(\d+)\n{SRT_TIME} --> {SRT_TIME}\n([^\n]+)\n")
VTT_CUE = re.compile(rf"{VTT_TIME} --> {VTT_TIME}\n([^\n]+)\n")


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """Strict SRT: numbered cues from 1, `HH:MM:SS,mmm`, one blank line between cues."""
    cues = []
    for number, block in enumerate(text.split("\n\n"), 1):
        block = block if block.endswith("\n") else block + "\n"
        match = SRT_CUE.fullmatch(block)
        assert match, f"bad SRT cue: {block!r}"
        assert int(match[1]) == number
        cues.append((_seconds(*match.groups()[1:5]), _seconds(*match.groups()[5:9]), match[10]))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """Strict WebVTT: `WEBVTT` header and blank line, `[HH:]MM:SS.mmm` cues."""
    assert text.startswith("WEBVTT\n\n")
    cues = []
    for block in text[len("WEBVTT\n\n") :].split("\n\n"):
        block = block if block.endswith("\n") else block + "\n"
        match = VTT_CUE.fullmatch(block)
        assert match, f"bad VTT cue: {block!r}"
        cues.append((_seconds(*match.groups()[0:4]), _seconds(*match.groups()[4:8]), match[9]))
    return cues


def _transcript(words: int = 40, hours: float = 0.0) -> Transcript:
    timings = [
        WordTiming(f"WORD{i}", hours * 3600 + 0.4 * i, hours * 3600 + 0.4 * i + 0.3, 0.5)
        for i in range(words)
    ]
    text = " ".join(w.word for w in timings)
    end = timings[-1].end + 0.5
    return Transcript(
        "utt-1", "utt-1.wav", text, timings, end, None, [Segment(0, end, text, timings, None)]
    )


def _check_cues(cues: list[tuple[float, float, str]], t: Transcript) -> None:
    assert " ".join(text for _, _, text in cues) == t.text
    for start, end, text in cues:
        assert start < end and end - start <= CUE_SECONDS + 1e-6 and len(text) <= CUE_CHARS
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(cues))


@pytest.mark.parametrize("hours", [0.0, 1.2])
def test_srt_and_vtt_parse(hours: float) -> None:
    t = _transcript(hours=hours)
    srt, vtt = parse_srt(format_srt(t)), parse_vtt(format_vtt(t))
    _check_cues(srt, t)
    assert srt == vtt
    assert srt[0][0] == pytest.approx(hours * 3600)


def test_timestamps_round_to_milliseconds() -> None:
    assert timestamp(3725.0004, vtt=False) == "01:02:05,000"
    assert timestamp(65.4321, vtt=True) == "01:05.432"
    assert timestamp(3600.0, vtt=True) == "01:00:00.000"


def test_ctm_columns() -> None:
    t = _transcript(words=5)
    lines = format_ctm(t).splitlines()
    assert len(lines) == 5
    for line, word in zip(lines, t.words, strict=True):
        name, channel, start, dur, token, conf = line.split(" ")
        assert (name, channel, token) == ("utt-1", "1", word.word)
        assert float(start) == pytest.approx(word.start) and float(dur) == pytest.approx(0.3)
        assert 0.0 <= float(conf) <= 1.0


def test_json_and_txt() -> None:
    t = _transcript(words=3)
    data = json.loads(format_json(t))
    assert data["text"] == t.text and data["id"] == "utt-1"
    assert data["words"][1] == {"word": "WORD1", "start": 0.4, "end": 0.7, "confidence": 0.5}
    assert format_txt(t) == t.text + "\n"


def test_empty_transcript_formats() -> None:
    t = Transcript("e", "e.wav", "", [], 0.0, None, [], "e.wav: audio is silent")
    assert format_srt(t) == "" and format_ctm(t) == "" and format_vtt(t) == "WEBVTT\n\n"
    assert json.loads(format_json(t))["warning"].endswith("silent")


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize(("seconds", "tokens"), [(2.0, 8), (20.0, 300)])
def test_plot_is_png_of_expected_size(tmp_path: Path, seconds: float, tokens: int) -> None:
    frames, enc = int(seconds * 100), int(seconds * 25)
    weights = torch.softmax(torch.randn(tokens + 1, enc), dim=1)
    labels = [chr(65 + i % 26) for i in range(tokens)] + ["<eos>"]
    path = plot_alignment(tmp_path / "a.png", torch.randn(frames, 80), weights, labels, 0.04, "utt")
    assert _png_size(path) == pixel_size(seconds, tokens + 1)


def test_head_plot_has_a_panel_per_head(tmp_path: Path) -> None:
    """One panel per head side by side: the PNG widens with the heads; empty rows still draw."""
    labels = list("ABCDE")
    widths = []
    for heads in (1, 4):
        weights = torch.softmax(torch.randn(heads, 5, 50), dim=2)
        path = plot_heads(tmp_path / f"h{heads}.png", weights, labels, 0.04, "block 1")
        widths.append(_png_size(path)[0])
    assert widths[1] > widths[0]
    empty = plot_heads(tmp_path / "e.png", torch.zeros(2, 0, 0), [], 0.04, "no tokens")
    assert _png_size(empty)[0] > 0
