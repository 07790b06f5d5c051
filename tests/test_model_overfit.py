"""A tiny LAS memorises four real LibriSpeech utterances with every attention kind.

This is the end-to-end check that listener, speller, attention and loss fit together: a model
that cannot overfit four sentences has a wiring bug (masking, target shift, state passing).
Thresholds were set from measured runs (see the constants) with a margin.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from asrkit.config import ExperimentConfig
from asrkit.features import Fbank, load_audio
from asrkit.model.attention import CROSS_KINDS, REGISTRY
from asrkit.model.las import IGNORE, LAS, Batch, decoder_io
from asrkit.testing import tiny_config, tiny_transformer_config
from asrkit.tokenizer import CharTokenizer

# The four shortest train-clean-100 utterances of the shared data (2.4-2.5 s each).
UTTERANCES = ("8226-274371-0020", "5652-19215-0032", "4088-158077-0078", "4406-16882-0033")
STEPS = 80
LR = 3e-3
# Measured in 80 steps (label smoothing off), lowest CE / eval-mode teacher-forced accuracy of
# those parameters, seeds 0, 1, 2 (`overfit(..., seed=s)`; the test runs seed 0):
#   soft kinds (additive, dot, general, local-m, local-p, location, multihead): CE 0.09-0.32,
#     accuracy 0.97-1.00;
#   monotonic, mocha with g_init 2: CE 0.15-0.29, training-mode accuracy 0.99-1.00, hard
#     eval-mode accuracy 0.99-1.00 (monotonic), 0.99 / 0.73 / 0.91 (mocha: its hard chunk scan
#     is the most seed-sensitive). With the spec's g = 1/sqrt(d_a) the hard eval accuracy is
#     only 0.50-0.60: |e - r| <= g sqrt(d_a) = 1 at init with r = -4, Adam moves g only to
#     0.15-0.18 in 80-240 steps, so every energy stays below -2.7, the scan runs off the end at
#     step 1 and eval decodes with a zero context (g_init 1: 0.50-0.55; g_init 2: 0.99).
#   hard (REINFORCE): CE 2.07-2.32 (from 3.3), accuracy 0.28-0.32: it learns, slowly.
MAX_CE = 0.5
MIN_ACCURACY = 0.9  # teacher-forced argmax accuracy over tokens incl. eos
# Conformer + Transformer decoder (2 + 2 blocks of width 64, `overfit(..., decoder=
# "transformer")`), seeds 0, 1, 2, 80 steps: lowest CE 0.16-0.34, eval-mode teacher-forced
# accuracy 0.86-0.93 for every cross-attention kind (multihead 0.87-0.89, local-m 0.88-0.90,
# local-p 0.89-0.92, monotonic 0.87-0.93, mocha 0.86-0.92); it fits more slowly per step than
# the LSTM speller from a random start.
MIN_TRANSFORMER_ACCURACY = 0.8
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
    kind: str,
    batch: Batch,
    vocab_size: int,
    steps: int = STEPS,
    seed: int = 0,
    decoder: str = "lstm",
) -> tuple[dict[str, float], float]:
    """Train a tiny model on one batch; return (training stats at the lowest CE of the run,
    eval-mode accuracy of the parameters that gave it).

    The lowest CE, not the last step's: constant-LR Adam on four utterances has one-step loss
    spikes (local-p went 0.20 -> 0.48 -> 0.81 over steps 78-80 after a rounding-level change
    in the window sum), so the last value flips on noise, while a wiring bug never comes near
    MAX_CE at any step.
    """
    torch.manual_seed(seed)
    extra = {"attention__g_init": MONOTONIC_G_INIT} if kind in MONOTONIC else {}
    if decoder == "transformer":  # a 2-block Conformer and a 2-block Transformer decoder
        cfg = tiny_transformer_config(
            kind,
            label_smoothing=0.0,
            listener__hidden=64,
            decoder__dim=64,
            attention__dim=64,
            **extra,
        )
    else:
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
    best: tuple[float, dict[str, float], dict[str, torch.Tensor]] | None = None
    for _ in range(steps):
        loss, stats = model(batch)
        if best is None or stats["att_loss"] < best[0]:  # stats of the parameters before step
            best = (stats["att_loss"], stats, copy.deepcopy(model.state_dict()))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    assert best is not None
    _, stats, parameters = best
    model.load_state_dict(parameters)
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
        assert ce < MAX_STOCHASTIC_CE, f"{kind}: lowest training CE {ce:.3f} in {STEPS} steps"
        assert accuracy > MIN_STOCHASTIC_ACCURACY, f"{kind}: accuracy {accuracy:.3f}"
        return
    assert ce < MAX_CE, f"{kind}: lowest training CE {ce:.3f} in {STEPS} steps"
    if kind in MONOTONIC:  # training (soft expected alignment) and eval (hard scan) both fit
        assert stats["acc"] > MIN_ACCURACY, f"{kind}: training accuracy {stats['acc']:.3f}"
    assert accuracy > MIN_ACCURACY, f"{kind}: eval-mode teacher-forced accuracy {accuracy:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", CROSS_KINDS)
def test_tiny_transformer_overfits_four_real_utterances(
    kind: str, real_batch: tuple[Batch, CharTokenizer]
) -> None:
    batch, tok = real_batch
    stats, accuracy = overfit(kind, batch, tok.vocab_size, decoder="transformer")
    assert stats["att_loss"] < MAX_CE, f"{kind}: lowest training CE {stats['att_loss']:.3f}"
    assert accuracy > MIN_TRANSFORMER_ACCURACY, f"{kind}: eval-mode accuracy {accuracy:.3f}"
