"""Small, fast fixtures shared by every test: a tiny config, a tiny model and a dummy batch.

Example:
    >>> model = tiny_model("dot", vocab_size=12)
    >>> loss, stats = model(dummy_batch(vocab_size=12))
    >>> stats["tokens"] > 0
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields, is_dataclass
from typing import Any

import torch

from asrkit.config import (
    AttentionConfig,
    DecoderConfig,
    ExperimentConfig,
    ListenerConfig,
    ModelConfig,
    SpellerConfig,
)
from asrkit.model.las import LAS, Batch
from asrkit.tokenizer import SPECIALS

MODEL_SECTIONS = ("features", "listener", "attention", "speller", "decoder", "model")
TINY_FRAMES = (61, 47, 33, 24, 70, 52, 38, 29)  # dummy utterance lengths, cycled


def tiny_config(attention: str = "location", **overrides: Any) -> ExperimentConfig:
    """A small model config (~130k parameters, 4x subsampling) that runs in milliseconds.

    Args:
        attention: attention kind or family name.
        **overrides: each either `section=<dataclass or dict of fields>`,
            `section__field=value`, or a bare `field=value` when exactly one model section
            (features, listener, attention, speller, decoder, model) has that field, or else one
            section (e.g. `ctc_weight=0.0` sets model.ctc_weight; `hidden` is ambiguous).

    Example:
        >>> tiny_config("dot", ctc_weight=0.0, listener__hidden=16).listener.hidden
        16
    """
    cfg = ExperimentConfig(
        listener=ListenerConfig(hidden=32, layers=2, dropout=0.0),
        attention=AttentionConfig(kind=attention, dim=32, heads=2, channels=4, kernel=7, window=4),
        speller=SpellerConfig(embed_dim=16, hidden=32, layers=1, dropout=0.0),
        model=ModelConfig(ctc_weight=0.3, label_smoothing=0.1),
    )
    for key, value in overrides.items():
        cfg = _override(cfg, key, value)
    return cfg


def tiny_transformer_config(attention: str = "global", **overrides: Any) -> ExperimentConfig:
    """`tiny_config` with a 2-block Conformer encoder (conv2d 4x, rotary positions) and a
    2-block Transformer decoder of width 32 whose cross-attention is `attention` (2 heads).

    Example:
        >>> tiny_transformer_config("monotonic").decoder.kind
        'transformer'
    """
    base = {
        "listener": ListenerConfig(
            kind="conformer",
            hidden=32,
            layers=2,
            heads=2,
            ff_mult=2,
            frontend="conv2d",
            conv_subsample=4,
            conv_channels=8,
            positions="rotary",
            kernel=7,
            dropout=0.0,
        ),
        "decoder": DecoderConfig(
            kind="transformer", dim=32, layers=2, heads=2, ff_mult=2, dropout=0.0
        ),
    }
    return tiny_config(attention, **{**base, **overrides})


def _override(cfg: ExperimentConfig, key: str, value: Any) -> ExperimentConfig:
    sections = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    if key in sections:
        if isinstance(value, dict):
            value = dataclasses.replace(sections[key], **value)
        return dataclasses.replace(cfg, **{key: value})
    if "__" in key:
        section, name = key.split("__", 1)
    else:
        owners = [s for s, sub in sections.items() if _has_field(sub, key)]
        # A bare name means the model's option first (ctc_weight: model, not decode).
        model_owners = [s for s in owners if s in MODEL_SECTIONS]
        owners = model_owners or owners
        if len(owners) != 1:
            raise TypeError(f"tiny_config: '{key}' is ambiguous or unknown; use section__{key}")
        section, name = owners[0], key
    if section not in sections or not _has_field(sections[section], name):
        raise TypeError(f"tiny_config: unknown option '{key}'")
    return dataclasses.replace(
        cfg, **{section: dataclasses.replace(sections[section], **{name: value})}
    )


def _has_field(section: Any, name: str) -> bool:
    return is_dataclass(section) and name in {f.name for f in fields(section)}


def tiny_model(attention: str = "location", vocab_size: int = 12, seed: int = 0) -> LAS:
    """`LAS(tiny_config(attention), vocab_size)` with seeded weights, in train mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LAS(tiny_config(attention), vocab_size)


def dummy_batch(
    batch_size: int = 3, vocab_size: int = 12, seed: int = 0, n_mels: int = 80
) -> Batch:
    """A random batch with varied lengths (the longest item first, the rest shorter).

    Features are log-mel-like (mean about -5); every utterance has at least as many encoder
    frames (4x subsampling) as tokens, so the CTC loss is finite. Tokens are ordinary ids
    (never the reserved 0-2).
    """
    if vocab_size <= len(SPECIALS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIALS)} reserved ids")
    gen = torch.Generator().manual_seed(seed)
    frames = torch.tensor([TINY_FRAMES[i % len(TINY_FRAMES)] for i in range(batch_size)])
    frames[0] = max(TINY_FRAMES)  # the padded length is the first item's length
    tokens_len = (frames // 8).clamp_min(1)
    feats = torch.randn(batch_size, int(frames.max()), n_mels, generator=gen) - 5.0
    feats = feats * (torch.arange(feats.shape[1]) < frames.unsqueeze(1)).unsqueeze(2)
    tokens = torch.randint(
        len(SPECIALS), vocab_size, (batch_size, int(tokens_len.max())), generator=gen
    )
    tokens = tokens * (torch.arange(tokens.shape[1]) < tokens_len.unsqueeze(1))
    return Batch(
        feats=feats,
        feat_lengths=frames,
        tokens=tokens,
        token_lengths=tokens_len,
        ids=[f"dummy-{seed}-{i}" for i in range(batch_size)],
    )


def step_by_step(
    model: LAS, mem: Any, tokens_in: torch.Tensor, mode: str = "eval"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference of a teacher-forced pass: one decoder `step` per output token.

    Args:
        model: any LAS model (LSTM speller or Transformer decoder).
        mem: `model.speller.prepare(...)` of the batch.
        tokens_in: (B, U+1) decoder inputs (`decoder_io`).
        mode: "train" or "eval", passed to the attention.

    Returns:
        logits (B, U+1, V) and weights (B, U+1, T').
    """
    state = model.speller.initial_state(mem)
    logits, weights = [], []
    for i in range(tokens_in.shape[1]):
        out = model.speller.step(tokens_in[:, i], state, mem, mode)  # type: ignore[arg-type]
        state = out.state
        logits.append(out.logits)
        weights.append(out.weights)
    return torch.stack(logits, dim=1), torch.stack(weights, dim=1)
