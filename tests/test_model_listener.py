"""Listener and self-attention encoder invariants: lengths, padding, batched == unbatched."""

from __future__ import annotations

import pytest
import torch

from asrkit.model.encoders import SelfAttentionEncoder, attention_mask
from asrkit.model.listener import (
    BiLSTM,
    ConvSubsampling,
    PyramidalListener,
    pyramid_pairs,
    reverse_padded,
)

LENGTHS = [23, 17, 9, 1]  # odd lengths on purpose, and a one-frame utterance


def padded(lengths: list[int], dim: int = 80) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(len(lengths), max(lengths), dim)
    lens = torch.tensor(lengths)
    # Garbage (not zeros) on padding: modules must mask it themselves.
    return x, lens


def assert_batched_equals_unbatched(module: torch.nn.Module, dim: int = 80) -> None:
    module.eval()
    x, lens = padded(LENGTHS, dim)
    with torch.no_grad():
        y, y_lens = module(x, lens)
        for b, length in enumerate(LENGTHS):
            alone, alone_len = module(x[b : b + 1, :length], lens[b : b + 1])
            assert alone_len.item() == y_lens[b].item()
            assert alone.shape[1] == alone_len.item()
            torch.testing.assert_close(y[b, : alone_len.item()], alone[0], atol=1e-5, rtol=1e-5)
            assert torch.all(y[b, alone_len.item() :] == 0), "padding must be exactly zero"


def test_pyramid_maps_length_to_ceil_half_and_keeps_odd_frame() -> None:
    x = torch.arange(1, 8, dtype=torch.float32).view(1, 7, 1)  # one utterance of 7 frames
    y, n = pyramid_pairs(x, torch.tensor([7]))
    assert n.tolist() == [4] and y.shape == (1, 4, 2)
    assert y[0, -1].tolist() == [7.0, 0.0], "the odd last frame is padded, not dropped"


@pytest.mark.parametrize("length", [1, 2, 7, 8, 9, 15, 16, 17])
def test_pyramidal_listener_length_is_ceil_over_8(length: int) -> None:
    listener = PyramidalListener(80, 8, levels=3)
    _, n = listener(torch.randn(1, length, 80), torch.tensor([length]))
    assert n.item() == -(-length // 8)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_conv_subsampling_lengths(factor: int) -> None:
    conv = ConvSubsampling(80, 16, factor)
    y, n = conv(*padded(LENGTHS))
    assert n.tolist() == [-(-n0 // factor) for n0 in LENGTHS]
    assert y.shape[1] == n.max().item()


def test_reverse_padded_reverses_within_length_and_is_an_involution() -> None:
    x, lens = padded([5, 3], dim=2)
    r = reverse_padded(x, lens)
    torch.testing.assert_close(r[1, :3], x[1, :3].flip(0))
    torch.testing.assert_close(r[1, 3:], x[1, 3:])
    torch.testing.assert_close(reverse_padded(r, lens), x)


def test_bilstm_batched_equals_unbatched() -> None:
    assert_batched_equals_unbatched(BiLSTM(80, 8))


@pytest.mark.parametrize(("conv", "levels", "first"), [(1, 3, True), (4, 1, True), (2, 2, False)])
def test_pyramidal_listener_batched_equals_unbatched(conv: int, levels: int, first: bool) -> None:
    assert_batched_equals_unbatched(PyramidalListener(80, 8, levels, conv, first))


@pytest.mark.parametrize("conformer", [False, True])
@pytest.mark.parametrize(("left", "right"), [(-1, -1), (3, 1)])
def test_self_attention_encoder_batched_equals_unbatched(
    conformer: bool, left: int, right: int
) -> None:
    enc = SelfAttentionEncoder(80, 16, 2, 4, 2, conformer, 2, left, right, dropout=0.1)
    assert_batched_equals_unbatched(enc)


def test_attention_mask_window_and_padding() -> None:
    mask = attention_mask(torch.tensor([5]), 7, left=1, right=2)[0]
    for t in range(5):
        allowed = {s for s in range(7) if mask[t, s]}
        assert allowed == {s for s in range(max(0, t - 1), min(5, t + 3))}
    assert mask[6].sum() == 1, "a padded query attends only to itself (no NaN rows)"


def test_time_restricted_transformer_ignores_frames_outside_the_window() -> None:
    enc = SelfAttentionEncoder(80, 16, 1, 4, 2, conformer=False, conv_subsample=1, right_context=2)
    enc.eval()
    x, lens = padded([20])
    changed = x.clone()
    changed[0, 10] += 5.0
    with torch.no_grad():
        y, _ = enc(x, lens)
        z, _ = enc(changed, lens)
    torch.testing.assert_close(y[0, :8], z[0, :8])  # frames 0..7 cannot see frame 10
    assert not torch.allclose(y[0, 8:11], z[0, 8:11])
