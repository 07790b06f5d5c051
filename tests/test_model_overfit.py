"""A tiny LAS memorises four real LibriSpeech utterances with every attention kind.

This is the end-to-end check that listener, speller, attention and loss fit together: a model
that cannot overfit four sentences has a wiring bug (masking, target shift, state passing).
Thresholds were set from measured runs (see the constants) with a margin.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrkit.config import ExperimentConfig
from asrkit.features import Fbank, load_audio
from asrkit.model.attention import REGISTRY
from asrkit.model.las import IGNORE, LAS, Batch, decoder_io
from asrkit.testing import tiny_config
from asrkit.tokenizer import CharTokenizer

# The four shortest train-clean-100 utterances of the shared data (2.4-2.5 s each).
UTTERANCES = ("8226-274371-0020", "5652-19215-0032", "4088-158077-0078", "4406-16882-0033")
STEPS = 80
LR = 3e-3
# Measured after 80 steps (label smoothing off, seed 0), CE / eval-mode teacher-forced accuracy:
#   soft kinds (additive, dot, general, local-m, local-p, location, multihead): CE 0.12-0.32,
#     accuracy 0.98-1.00;
#   monotonic, mocha with g_init 2: CE 0.17-0.26, training-mode accuracy 0.99, hard eval-mode
#     accuracy 0.99. With the spec's g = 1/sqrt(d_a) the hard eval accuracy is only 0.50-0.60:
#     |e - r| <= g sqrt(d_a) = 1 at init with r = -4, Adam moves g only to 0.15-0.18 in 80-240
#     steps, so every energy stays below -2.7, the scan runs off the end at step 1 and eval
#     decodes with a zero context (g_init 1: 0.50-0.55; g_init 2: 0.99).
#   hard (REINFORCE): CE 2.07 (from 3.3), accuracy 0.33: it learns, slowly.
MAX_CE = 0.5
MIN_ACCURACY = 0.9  # teacher-forced argmax accuracy over tokens incl. eos
MONOTONIC = {"monotonic", "mocha"}  # hard at inference, soft expected alignment in training
MONOTONIC_G_INIT = 2.0  # attention.g_init: lets the hard scan stop within a short training
STOCHASTIC = {"hard"}
MAX_STOCHASTIC_CE = 2.6
MIN_STOCHASTIC_ACCURACY = 0.2


def load_batch(librispeech_dir: Path) -> tuple[Batch, CharTokenizer]:
    fbank = Fbank(ExperimentConfig().features)
    feats, texts = [], []
    for utt in UTTERANCES:
        speaker, chapter, _ = utt.split("-")
        folder = librispeech_dir / "train-clean-100" / speaker / chapter
        if not folder.is_dir():
            pytest.skip(f"{folder} not found")
        lines = (folder / f"{speaker}-{chapter}.trans.txt").read_text().splitlines()
        texts.append(next(line.split(" ", 1)[1] for line in lines if line.startswith(utt)))
        with torch.no_grad():
            feats.append(fbank(load_audio(folder / f"{utt}.flac")))
    tok = CharTokenizer.train(texts)
    tokens = [torch.tensor(tok.encode(t)) for t in texts]
    pad = torch.nn.utils.rnn.pad_sequence
    batch = Batch(
        feats=pad(feats, batch_first=True),
        feat_lengths=torch.tensor([f.shape[0] for f in feats]),
        tokens=pad(tokens, batch_first=True),
        token_lengths=torch.tensor([len(t) for t in tokens]),
        ids=list(UTTERANCES),
    )
    return batch, tok


@pytest.fixture(scope="module")
def real_batch(librispeech_dir: Path) -> tuple[Batch, CharTokenizer]:
    return load_batch(librispeech_dir)


def overfit(
    kind: str, batch: Batch, vocab_size: int, steps: int = STEPS
) -> tuple[dict[str, float], float]:
    """Train a tiny model on one batch; return (last training stats, eval-mode accuracy)."""
    torch.manual_seed(0)
    extra = {"attention__g_init": MONOTONIC_G_INIT} if kind in MONOTONIC else {}
    cfg = tiny_config(
        kind,
        label_smoothing=0.0,
        listener__hidden=64,
        speller__hidden=64,
        attention__dim=64,
        **extra,
    )
    model = LAS(cfg, vocab_size)
    frames = torch.cat([batch.feats[b, :n] for b, n in enumerate(batch.feat_lengths)])
    model.set_cmvn(frames.mean(0), frames.std(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    for _ in range(steps):
        loss, stats = model(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    _, targets = decoder_io(batch.tokens, batch.token_lengths)
    predicted = model.teacher_forced(batch).logits.argmax(-1)
    valid = targets != IGNORE
    accuracy = ((predicted == targets) & valid).sum() / valid.sum()
    return stats, float(accuracy)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_tiny_model_overfits_four_real_utterances(
    kind: str, real_batch: tuple[Batch, CharTokenizer]
) -> None:
    batch, tok = real_batch
    stats, accuracy = overfit(kind, batch, tok.vocab_size)
    ce = stats["att_loss"]
    if kind in STOCHASTIC:
        assert ce < MAX_STOCHASTIC_CE, f"{kind}: training CE {ce:.3f} after {STEPS} steps"
        assert accuracy > MIN_STOCHASTIC_ACCURACY, f"{kind}: accuracy {accuracy:.3f}"
        return
    assert ce < MAX_CE, f"{kind}: training CE {ce:.3f} after {STEPS} steps"
    if kind in MONOTONIC:  # training (soft expected alignment) and eval (hard scan) both fit
        assert stats["acc"] > MIN_ACCURACY, f"{kind}: training accuracy {stats['acc']:.3f}"
    assert accuracy > MIN_ACCURACY, f"{kind}: eval-mode teacher-forced accuracy {accuracy:.3f}"
