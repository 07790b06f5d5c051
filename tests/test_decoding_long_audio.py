"""Long audio: cuts fall in pauses, every piece is decoded once, stitching equals the pieces."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from decoding_support import tiny_loaded, write_tone

from asrkit.decoding import DecodeOptions, api, transcribe_files
from asrkit.decoding.segment import split_points
from asrkit.features import load_audio

RATE = 16000
GAP = 0.6  # seconds of digital silence between utterances


def test_split_points_cut_in_the_pause() -> None:
    gen = torch.Generator().manual_seed(0)
    speech = [torch.randn(RATE * s, generator=gen) * 0.1 for s in (12, 9, 14)]
    gap = torch.zeros(int(GAP * RATE))
    wave = torch.cat([speech[0], gap, speech[1], gap, speech[2]])
    pieces = split_points(wave, RATE, 20.0)
    assert pieces[0][0] == 0 and pieces[-1][1] == wave.numel()
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all((end - start) <= 20 * RATE for start, end in pieces)
    first_gap = (12 * RATE, 12 * RATE + gap.numel())
    assert first_gap[0] <= pieces[0][1] <= first_gap[1]


def test_split_points_keep_short_audio_whole() -> None:
    assert split_points(torch.randn(RATE * 5), RATE, 20.0) == [(0, RATE * 5)]


def test_split_points_without_pause_still_bounded() -> None:
    wave = torch.randn(RATE * 50) * 0.1
    pieces = split_points(wave, RATE, 20.0)
    assert len(pieces) >= 3 and all(b - a <= 20 * RATE for a, b in pieces)


def _long_file(librispeech_dir: Path, tmp_path: Path) -> tuple[Path, list[tuple[int, int]]]:
    """~5 minutes of dev-clean utterances (each < 10 s) joined by silent gaps."""
    files = sorted((librispeech_dir / "dev-clean").rglob("*.mp3"))
    parts, gaps, total = [], [], 0
    for path in files:
        wave = load_audio(path, RATE).numpy()
        if wave.size >= 10 * RATE:
            continue
        parts += [wave, np.zeros(int(GAP * RATE), dtype=np.float32)]
        total += wave.size
        gaps.append((total, total + int(GAP * RATE)))
        total += int(GAP * RATE)
        if total >= 300 * RATE:
            break
    out = tmp_path / "long.wav"
    sf.write(str(out), np.concatenate(parts), RATE, subtype="FLOAT")
    return out, gaps


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["lstm", "transformer"])
def test_long_audio_stitching(decoder: str, librispeech_dir: Path, tmp_path: Path, monkeypatch):
    path, gaps = _long_file(librispeech_dir, tmp_path)
    loaded = tiny_loaded("dot" if decoder == "lstm" else "multihead", decoder=decoder)
    opts = DecodeOptions(batch_size=8, max_len_ratio=0.2)
    decoded = []
    real_search = api.greedy_search

    def counting_search(model, feats, lengths, *args):
        decoded.extend(lengths.tolist())
        return real_search(model, feats, lengths, *args)

    monkeypatch.setattr(api, "greedy_search", counting_search)
    (whole,), timing = transcribe_files(loaded, [path], opts, progress=False)
    assert timing.audio_seconds == pytest.approx(whole.duration)
    segments = whole.segments
    assert len(segments) >= 15 and len(decoded) == len(segments)  # each piece decoded once
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(whole.duration)
    for left, right in itertools.pairwise(segments):
        cut = round(left.end * RATE)
        assert left.end == right.start
        assert any(a <= cut <= b for a, b in gaps), f"cut at {left.end:.2f} s is inside speech"
    wave = load_audio(path, RATE)
    pieces = []
    for i, seg in enumerate(segments):
        piece = tmp_path / f"piece{i:02d}.wav"
        chunk = wave[round(seg.start * RATE) : round(seg.end * RATE)].numpy()
        sf.write(str(piece), chunk, RATE, subtype="FLOAT")
        pieces.append(piece)
    alone, _ = transcribe_files(loaded, pieces, opts, progress=False)
    assert whole.text == " ".join(t.text for t in alone if t.text)
    shifted = [
        (w.word, round(w.start + seg.start, 3), round(w.end + seg.start, 3))
        for seg, t in zip(segments, alone, strict=True)
        for w in t.words
    ]
    assert [w.word for w in whole.words] == [word for word, _, _ in shifted]
    times = [t for w in whole.words for t in (w.start, w.end)]
    assert times == pytest.approx([t for _, a, b in shifted for t in (a, b)], abs=2e-3)
    starts = [w.start for w in whole.words]
    assert starts == sorted(starts) and all(w.end <= whole.duration + 1e-3 for w in whole.words)


def test_bad_audio_gives_empty_transcript_and_warning(tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(RATE * 2, dtype=np.float32), RATE)
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), RATE)
    good = write_tone(tmp_path / "tone.flac", 1.5, rate=8000, channels=2)
    transcripts, _ = transcribe_files(
        tiny_loaded(), [silent, broken, empty, good], DecodeOptions(), progress=False
    )
    for t in transcripts[:3]:
        assert t.text == "" and t.words == [] and t.hypothesis is None and t.warning
    assert "silent" in transcripts[0].warning and "not readable" in transcripts[1].warning
    assert transcripts[3].warning is None and transcripts[3].duration == pytest.approx(1.5)
    assert transcripts[3].hypothesis is not None
