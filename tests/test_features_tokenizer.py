"""Features and tokenizers: real round trips and the invariants other modules rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.config import FeaturesConfig
from asrkit.features import CMVNAccumulator, CMVNStats, Fbank, load_audio
from asrkit.io import UserError
from asrkit.tokenizer import (
    EOS_ID,
    CharTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)


def test_load_audio_mixes_stereo_and_resamples(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1) * 0.5
    sf.write(tmp_path / "s.wav", stereo, 8000)
    wave = load_audio(tmp_path / "s.wav", 16000)
    assert wave.shape == (16000,)
    assert wave.dtype == torch.float32
    assert abs(wave.abs().max().item() - 0.25) < 0.02  # mean of the two channels


def test_load_audio_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "fake.flac").write_text("not audio")
    with pytest.raises(UserError, match=r"fake.flac: not readable as audio"):
        load_audio(tmp_path / "fake.flac")
    with pytest.raises(UserError, match=r"nope.wav: audio file not found"):
        load_audio(tmp_path / "nope.wav")


def test_fbank_frames_and_cmvn() -> None:
    fbank = Fbank(FeaturesConfig())
    feats = fbank(torch.randn(16000 * 2 + 100) * 0.1)
    assert feats.shape == (200, 80)
    assert torch.isfinite(feats).all()
    assert fbank(torch.zeros(100)).shape == (0, 80)
    acc = CMVNAccumulator(80)
    acc.add(feats[:120])
    acc.add(feats[120:])
    stats = acc.stats()
    assert np.allclose(stats.mean, feats.double().mean(0).numpy(), atol=1e-6)
    assert np.allclose(stats.std, feats.double().std(0, unbiased=False).numpy(), atol=1e-5)


def test_cmvn_round_trip(tmp_path: Path) -> None:
    stats = CMVNStats(mean=[0.5] * 80, std=[2.0] * 80, frames=10)
    stats.save(tmp_path / "c.json")
    assert CMVNStats.load(tmp_path / "c.json") == stats
    with pytest.raises(UserError, match="CMVN statistics not found"):
        CMVNStats.load(tmp_path / "none.json")


def test_char_tokenizer_round_trip(tmp_path: Path) -> None:
    tok = CharTokenizer.train(["HELLO WORLD", "IT'S A TEST"])
    ids = tok.encode("IT'S  A   WORLD")
    assert EOS_ID not in ids and min(ids) >= 3
    assert tok.decode(ids) == "IT'S A WORLD"
    tok.save(tmp_path / "t.json")
    again = load_tokenizer(tmp_path / "t.json")
    assert again.pieces == tok.pieces and again.encode("HELLO") == tok.encode("HELLO")
    assert tok.encode("HELLO?")[-1] == 2  # unknown character -> <unk>
    starts = tok.word_starts(tok.encode("HI THERE"))
    assert starts == [True, False, False, True, False, False, False, False]


def test_sentencepiece_tokenizer_round_trip() -> None:
    texts = [f"THE NUMBER {w} IS HERE AND THERE" for w in ["ONE", "TWO", "THREE", "FOUR"]] * 20
    tok = SentencePieceTokenizer.train(texts, vocab_size=40, model_type="bpe")
    again = tokenizer_from_dict(tok.to_dict())
    ids = again.encode("THE NUMBER TWO IS HERE")
    assert min(ids) >= 3
    assert again.decode(ids) == "THE NUMBER TWO IS HERE"
    assert again.vocab_size == tok.vocab_size
