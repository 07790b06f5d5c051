"""Pad a list of `Example`s into the model's `Batch`.

Features are padded with zeros and tokens with `BLANK_ID` (0); the lengths carry the truth, no
module may infer validity from padded values.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence

from asrkit.data.dataset import Example
from asrkit.model.las import Batch
from asrkit.tokenizer import BLANK_ID


def collate(examples: list[Example]) -> Batch:
    """Examples -> Batch with feats (B, T, n_mels), tokens (B, U) and their lengths (B,)."""
    feats = pad_sequence([e.feats for e in examples], batch_first=True)  # (B, T, n_mels)
    feat_lengths = torch.tensor([e.feats.shape[0] for e in examples], dtype=torch.long)
    token_lists = [e.tokens for e in examples]
    token_lengths = torch.tensor([t.numel() for t in token_lists], dtype=torch.long)
    if int(token_lengths.max()) == 0:
        tokens = torch.zeros(len(examples), 0, dtype=torch.long)
    else:
        tokens = pad_sequence(token_lists, batch_first=True, padding_value=BLANK_ID)  # (B, U)
    return Batch(
        feats=feats,
        feat_lengths=feat_lengths,
        tokens=tokens,
        token_lengths=token_lengths,
        ids=[e.id for e in examples],
    )
