"""Dataset and collate: features, length filter, augmentation reproducibility, padding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_corpus import write_corpus

from asrkit.config import FeaturesConfig, SpecAugmentConfig
from asrkit.data.collate import collate
from asrkit.data.dataset import SpeechDataset, read_split
from asrkit.data.manifest import read_manifest
from asrkit.features import Fbank, load_audio
from asrkit.io import UserError
from asrkit.tokenizer import BLANK_ID, CharTokenizer


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), "set", 8, seed=3)


def _dataset(manifest: Path, specaug: SpecAugmentConfig | None = None) -> SpeechDataset:
    utts = read_manifest(manifest)
    tok = CharTokenizer.train(u.text for u in utts)
    return SpeechDataset(utts, tok, FeaturesConfig(), specaug=specaug, seed=5)


def test_items_are_the_features_and_tokens_of_the_utterance(manifest: Path) -> None:
    data = _dataset(manifest)
    item = data[2]
    utt = data.utts[2]
    assert torch.allclose(item.feats, Fbank(FeaturesConfig())(load_audio(utt.audio)))
    assert data.frames[2] == item.feats.shape[0]  # duration-based estimate is exact here
    assert CharTokenizer.train(u.text for u in data.utts).decode(item.tokens.tolist()) == utt.text


def test_augmentation_depends_on_epoch_and_index_only(manifest: Path) -> None:
    data = _dataset(manifest, SpecAugmentConfig(time_warp=3))
    data.set_epoch(1)
    first = data[4].feats
    data[0]  # another item in between must not change item 4's draw
    assert torch.equal(first, data[4].feats)
    data.set_epoch(2)
    assert not torch.equal(first, data[4].feats)


def test_cached_speed_perturbed_features_equal_recomputed_ones(manifest: Path) -> None:
    utts = read_manifest(manifest)
    tok = CharTokenizer.train(u.text for u in utts)
    specaug = SpecAugmentConfig(time_masks=1, speed_perturb=(0.9, 1.0, 1.1))
    plain = SpeechDataset(utts, tok, FeaturesConfig(), specaug=specaug, seed=5)
    cached = SpeechDataset(utts, tok, FeaturesConfig(), specaug=specaug, seed=5, cache_mb=64)
    lengths = set()
    for epoch in range(4):  # later epochs draw factors already in the cache
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(utts)):
            expected = plain[i].feats
            assert torch.equal(cached[i].feats, expected)
            lengths.add((i, expected.shape[0]))
    assert len(lengths) > len(utts)  # the factors did change durations
    assert len(cached._cache) == len(lengths)
    assert torch.equal(cached[0].feats, plain[0].feats)  # a cached item is not changed in place


def test_the_feature_cache_stays_within_its_budget(manifest: Path) -> None:
    utts = read_manifest(manifest)
    tok = CharTokenizer.train(u.text for u in utts)
    specaug = SpecAugmentConfig(speed_perturb=(0.9, 1.1))
    unlimited = SpeechDataset(utts, tok, FeaturesConfig(), specaug=specaug, cache_mb=64)
    for epoch in range(4):
        unlimited.set_epoch(epoch)
        for i in range(len(utts)):
            unlimited[i]
    everything = sum(t.numel() * 4 for t in unlimited._cache.values())
    budget = everything // 2
    data = SpeechDataset(utts, tok, FeaturesConfig(), specaug=specaug, cache_mb=budget / 2**20)
    for epoch in range(4):
        data.set_epoch(epoch)
        unlimited.set_epoch(epoch)
        for i in range(len(utts)):
            assert torch.equal(data[i].feats, unlimited[i].feats)
    held = sum(t.numel() * 4 for t in data._cache.values())
    assert 0 < held <= budget
    assert len(data._cache) < len(unlimited._cache)


def test_collate_pads_with_zeros_and_blank(manifest: Path) -> None:
    data = _dataset(manifest)
    batch = collate([data[i] for i in range(4)])
    assert batch.feats.shape[0] == 4 and batch.feats.shape[1] == int(batch.feat_lengths.max())
    for i in range(4):
        length, tokens = int(batch.feat_lengths[i]), int(batch.token_lengths[i])
        assert torch.equal(batch.feats[i, :length], data[i].feats)
        assert torch.all(batch.feats[i, length:] == 0)
        assert torch.all(batch.tokens[i, tokens:] == BLANK_ID)
    assert batch.ids == [u.id for u in data.utts[:4]]


def test_long_utterances_are_skipped_and_counted(manifest: Path) -> None:
    durations = sorted(u.duration for u in read_manifest(manifest))
    split = read_split(manifest, max_seconds=durations[3])
    kept = sum(d <= durations[3] for d in durations)
    assert len(split.utterances) == kept and split.skipped == 8 - kept > 0
    with pytest.raises(UserError, match="every utterance is longer"):
        read_split(manifest, max_seconds=0.01)


def test_a_missing_audio_file_is_named(manifest: Path, tmp_path: Path) -> None:
    utts = read_manifest(manifest)
    gone = tmp_path / "gone.wav"
    utts[1] = type(utts[1])(**{**utts[1].__dict__, "audio": str(gone)})
    with pytest.raises(UserError, match=r"gone\.wav: audio file of"):
        SpeechDataset(utts, CharTokenizer.train(["A B"]), FeaturesConfig())
