"""Helpers shared by the decoding tests: a tiny untrained model wrapped as a `LoadedModel`."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.checkpoint import LoadedModel, save_checkpoint
from asrkit.decoding import DecodeOptions, beam_search, greedy_search
from asrkit.model.las import LAS, Batch
from asrkit.testing import tiny_config, tiny_transformer_config
from asrkit.tokenizer import CharTokenizer


def tiny_loaded(
    attention: str = "dot", ctc_weight: float = 0.3, seed: int = 0, decoder: str = "lstm"
) -> LoadedModel:
    """An untrained tiny model with a 30-symbol character tokenizer, in eval mode: the LSTM
    LAS, or with `decoder="transformer"` a Conformer + Transformer decoder."""
    tokenizer = CharTokenizer.train([string.ascii_uppercase + " '"])
    make = tiny_transformer_config if decoder == "transformer" else tiny_config
    cfg = make(attention, ctc_weight=ctc_weight)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LAS(cfg, tokenizer.vocab_size)
    return LoadedModel(model.eval(), cfg, tokenizer, Path("tiny.pt"))


def tiny_experiment(exp: Path) -> Path:
    """`exp/final.pt` of `tiny_loaded()`: an experiment folder the CLI can load."""
    loaded = tiny_loaded()
    save_checkpoint(exp / "final.pt", loaded.model, loaded.config, loaded.tokenizer)
    return exp


def write_tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    """A noisy chirp (speech-like enough to decode), optionally multi-channel."""
    t = np.arange(int(seconds * rate)) / rate
    gen = np.random.default_rng(0)
    wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * gen.standard_normal(t.size)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(str(path), data.astype(np.float32), rate)
    return path


def assert_beam_one_equals_greedy(model: LAS, batch: Batch) -> None:
    """Beam 1 finds greedy search's tokens, scores and attention on every utterance."""
    opts = DecodeOptions(beam=1, max_len_ratio=1.0)
    greedy = greedy_search(model, batch.feats, batch.feat_lengths, opts)
    beam = beam_search(model, batch.feats, batch.feat_lengths, opts)
    for g, b in zip(greedy, beam, strict=True):
        assert g.tokens == b.tokens
        assert g.score == pytest.approx(b.score, abs=1e-4)
        assert torch.allclose(g.attention, b.attention, atol=1e-6)


def assert_batched_beam_equals_alone(model: LAS, batch: Batch, opts: DecodeOptions) -> None:
    """Beam search over the padded batch equals each utterance searched alone, unpadded."""
    batched = beam_search(model, batch.feats, batch.feat_lengths, opts)
    for i, hyp in enumerate(batched):
        length = int(batch.feat_lengths[i])
        feats = batch.feats[i : i + 1, :length]
        alone = beam_search(model, feats, batch.feat_lengths[i : i + 1], opts)[0]
        assert hyp.tokens == alone.tokens
        assert hyp.score == pytest.approx(alone.score, abs=1e-4)
        torch.testing.assert_close(hyp.attention, alone.attention, atol=1e-5, rtol=0)


def tiny_eval_set(
    tmp_path: Path, seed: int = 0, name: str = "exp", ids: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """A tiny untrained experiment folder `tmp_path/name` and a 3-utterance manifest of noise
    (`tmp_path/test.jsonl`); `ids` replaces the utterance ids (speakers stay spk0/spk1)."""
    from asrkit.testing import tiny_model
    from asrkit.tokenizer import SPECIALS

    tokenizer = CharTokenizer([*SPECIALS, "▁", *"EINOTWHR"])
    model = tiny_model(vocab_size=tokenizer.vocab_size, seed=seed)
    save_checkpoint(tmp_path / name / "final.pt", model, tiny_config(), tokenizer)
    rng = np.random.default_rng(0)
    rows = []
    for i, text in enumerate(["ONE TWO", "THREE", "NINE TEN"]):
        audio = tmp_path / f"u{i}.wav"
        sf.write(audio, (0.1 * rng.standard_normal(8000 + 2000 * i)).astype(np.float32), 16000)
        utt_id = ids[i] if ids else f"spk{i % 2}-{i}"
        row = {"id": utt_id, "audio": str(audio), "duration": (8000 + 2000 * i) / 16000}
        rows.append({**row, "sample_rate": 16000, "speaker": f"spk{i % 2}", "text": text})
    manifest = tmp_path / "test.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / name, manifest
