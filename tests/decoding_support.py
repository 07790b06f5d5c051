"""Helpers shared by the decoding tests: a tiny untrained model wrapped as a `LoadedModel`."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asrkit.checkpoint import LoadedModel
from asrkit.model.las import LAS
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


def write_tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    """A noisy chirp (speech-like enough to decode), optionally multi-channel."""
    t = np.arange(int(seconds * rate)) / rate
    gen = np.random.default_rng(0)
    wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * gen.standard_normal(t.size)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(str(path), data.astype(np.float32), rate)
    return path
