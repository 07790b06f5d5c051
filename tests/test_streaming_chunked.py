"""Chunked self-attention streaming: the chunk mask never looks into a later chunk, the encoder
run chunk by chunk equals the masked offline pass for every front end, position kind, block kind,
left context and feed size, and a stream over a streaming Conformer ends with greedy search's
hypothesis for every streaming attention kind."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from test_streaming import KINDS, TOKENIZER, assert_stream_ends_with_greedy, chirp

from asrkit.checkpoint import LoadedModel
from asrkit.config import ConfigError
from asrkit.model.encoders import SelfAttentionEncoder, chunk_mask
from asrkit.model.las import LAS
from asrkit.streaming import streaming_problem
from asrkit.streaming.chunked import incremental_encoder
from asrkit.testing import tiny_config


def conformer_model(kind: str, streaming: bool = True, **extra: object) -> LoadedModel:
    options = {
        **KINDS.get(kind, {}),
        "listener__kind": "conformer",
        "listener__heads": 2,
        "listener__ff_mult": 2,
        "listener__conv_subsample": 4,
        "listener__positions": "absolute",  # with rotary, untrained monotonic emits nothing
        "listener__kernel": 5,
        "listener__chunk": 3,
        "listener__left_chunks": 2,
        **extra,
    }
    cfg = tiny_config(kind.replace("-location", ""), listener__streaming=streaming, **options)
    torch.manual_seed(0)
    return LoadedModel(LAS(cfg, TOKENIZER.vocab_size).eval(), cfg, TOKENIZER, Path("c.pt"))


def test_chunk_mask_sees_its_chunk_and_the_left_chunks_only() -> None:
    mask = chunk_mask(torch.tensor([10, 7]), 10, chunk=3, left_chunks=1)
    chunk_of = torch.arange(10) // 3
    for query, key in itertools.product(range(10), range(10)):
        visible = 0 <= chunk_of[query] - chunk_of[key] <= 1
        assert bool(mask[0, query, key]) == bool(visible)
        assert bool(mask[1, query, key]) == bool((visible and key < 7) or query == key)


@pytest.mark.parametrize("conformer", [True, False])
def test_offline_output_of_a_chunk_does_not_depend_on_later_audio(conformer: bool) -> None:
    encoder = SelfAttentionEncoder(
        20, 16, 2, 2, 2, conformer=conformer, conv_subsample=4, kernel=5, chunk=3
    ).eval()
    x = torch.randn(1, 96, 20)
    changed = x.clone()
    changed[:, 52:] = torch.randn(1, 44, 20)  # input frames from 52 on feed outputs 12 on
    with torch.no_grad():
        before, after = encoder(x, torch.tensor([96]))[0], encoder(changed, torch.tensor([96]))[0]
    # Output 12 reads input 47..49 .. 51 (conv1d look-ahead): chunks 0..3 (frames 0..11) are final.
    torch.testing.assert_close(before[:, :12], after[:, :12], atol=1e-6, rtol=0)
    assert not torch.allclose(before[:, 12:15], after[:, 12:15])


@pytest.mark.parametrize(
    ("frontend", "subsample"), [("conv1d", 4), ("conv1d", 1), ("conv2d", 4), ("conv2d", 6)]
)
@pytest.mark.parametrize("positions", ["absolute", "rotary"])
@pytest.mark.parametrize("conformer", [True, False])
@pytest.mark.parametrize("left_chunks", [-1, 0, 2])
def test_incremental_encoder_equals_the_masked_offline_pass(
    frontend: str, subsample: int, positions: str, conformer: bool, left_chunks: int
) -> None:
    torch.manual_seed(subsample)
    encoder = SelfAttentionEncoder(
        20, 16, 2, 2, 2, conformer, subsample, frontend=frontend, positions=positions,
        kernel=5, chunk=3, left_chunks=left_chunks,
    ).eval()  # fmt: skip
    for frames, feed in [(97, 7), (5, 2), (30, 100), (40, 1)]:
        x = torch.randn(1, frames, 20)
        with torch.no_grad():
            offline, length = encoder(x, torch.tensor([frames]))
        stream = incremental_encoder(encoder)
        parts = [stream.feed(x[0, i : i + feed]) for i in range(0, frames, feed)]
        streamed = torch.cat([*parts, stream.finish()])
        assert streamed.shape[0] == int(length)
        torch.testing.assert_close(streamed, offline[0, : int(length)], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("chunk", [1000, 2560, 50_000])
def test_a_streaming_conformer_stream_ends_with_greedy_searchs_hypothesis(
    kind: str, chunk: int
) -> None:
    _, result = assert_stream_ends_with_greedy(conformer_model(kind), chirp(2.0), chunk)
    assert result.hypothesis.tokens  # an empty hypothesis would make the equality vacuous


def test_unchunked_self_attention_is_refused_and_bad_chunk_options_are_named() -> None:
    assert "conformer" in (streaming_problem(conformer_model("monotonic", False)) or "")
    assert streaming_problem(conformer_model("monotonic")) is None
    with pytest.raises(ConfigError, match=r"listener\.right_context"):
        conformer_model("monotonic", listener__right_context=4)
    with pytest.raises(ConfigError, match=r"listener.chunk \(>= 1, got 0\)"):
        conformer_model("monotonic", listener__chunk=0)
