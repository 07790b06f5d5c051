"""Language-model text: plain text files and manifests' `text`, normalised and tokenised.

A plain text file holds one sentence per line; a `.jsonl` file is read as a manifest and its
`text` fields are the sentences. Text is normalised the LibriSpeech way by default (upper case,
letters and apostrophes), the form every transcript here has, so the LM sees what the acoustic
model emits.

Example:
    >>> texts = [Path("lm.txt"), Path("data/mini_train.jsonl")]
    >>> sentences = read_sentences(texts)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from asrkit.data.sampler import make_batches
from asrkit.io import UserError, require_file
from asrkit.scoring.normalize import normalize_librispeech
from asrkit.tokenizer import EOS_ID, Tokenizer


def read_sentences(
    paths: Sequence[Path], normalize: Callable[[str], str] | None = normalize_librispeech
) -> list[str]:
    """Every non-empty sentence of `paths`, in order.

    Raises:
        UserError: a file that is missing, not UTF-8 text, or holds no sentence.
    """
    from asrkit.data.manifest import read_manifest

    sentences: list[str] = []
    for path in paths:
        path = require_file(Path(path), "text file")
        if path.suffix == ".jsonl":
            lines = [u.text for u in read_manifest(path)]
        else:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from exc
        found = [s for s in ((normalize or str.strip)(line) for line in lines) if s]
        if not found:
            raise UserError(f"{path}: no sentence found (empty after normalisation)")
        sentences += found
    return sentences


@dataclass(frozen=True)
class LMBatch:
    """Sentences padded to one length: inputs start with <eos>, targets end with it."""

    inputs: Tensor  # (B, U) long
    targets: Tensor  # (B, U) long, -100 on padding
    lengths: Tensor  # (B,) U_b = tokens + 1

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())


def encode_sentences(sentences: list[str], tokenizer: Tokenizer, longest: int) -> list[Tensor]:
    """Token ids of each sentence, cut to `longest` tokens."""
    return [torch.tensor(tokenizer.encode(s)[:longest], dtype=torch.long) for s in sentences]


def make_batch(rows: list[Tensor]) -> LMBatch:
    lengths = torch.tensor([len(r) + 1 for r in rows])
    inputs = torch.full((len(rows), int(lengths.max())), EOS_ID, dtype=torch.long)
    targets = torch.full_like(inputs, -100)
    for i, row in enumerate(rows):
        inputs[i, 1 : len(row) + 1] = row
        targets[i, : len(row)] = row
        targets[i, len(row)] = EOS_ID
    return LMBatch(inputs, targets, lengths)


def token_batches(rows: list[Tensor], max_tokens: int) -> list[list[int]]:
    """Indices of `rows` grouped by length into batches of at most `max_tokens` padded tokens
    (a longer sentence gets a batch of its own), in a fixed order: the acoustic batching
    (`make_batches`) over sentence lengths + <eos>."""
    return make_batches([len(r) + 1 for r in rows], max_tokens)


def split_dev(sentences: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, dev): every distinct sentence goes wholly to one side, dev about `fraction`."""
    distinct = sorted(set(sentences))
    rng = random.Random(seed)
    rng.shuffle(distinct)
    count = max(1, round(fraction * len(distinct)))
    dev = set(distinct[:count])
    train = [s for s in sentences if s not in dev]
    if not train:
        raise UserError("too little text for a dev split: give --valid, or more text")
    return train, [s for s in sentences if s in dev]
