"""Feature store, CMVN and tokenizer preparation."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from prepare_util import fake_librispeech, write_audio
from typer.testing import CliRunner

from asrkit.cli.main import app
from asrkit.config import FeaturesConfig
from asrkit.data.feature_store import (
    FeatureStore,
    cmvn_path,
    compute_cmvn,
    compute_features,
    featurize,
    store_paths,
)
from asrkit.data.manifest import read_manifest
from asrkit.features import CMVNStats, Fbank, load_audio
from asrkit.io import UserError
from asrkit.tokenizer import load_tokenizer
from data_prep.librispeech import prepare_librispeech
from data_prep.tokenizer import train_tokenizer

FEATS = FeaturesConfig()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    corpus = fake_librispeech(tmp_path / "corpus")
    return prepare_librispeech(corpus, tmp_path / "data", show_progress=False)["dev-tiny"].path


def test_store_equals_on_the_fly_features(manifest: Path) -> None:
    compute_features(manifest, FEATS, jobs=2, show_progress=False)
    store = FeatureStore.open(manifest, FEATS)
    assert store is not None
    utts = read_manifest(manifest)
    assert len(store) == len(utts) and all(u.id in store for u in utts)
    fbank = Fbank(FEATS)
    for utt in utts:
        expected = fbank(load_audio(utt.audio, 16000))
        got = store.get(utt.id)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        # float16 keeps 11 significant bits: relative error <= 2**-11 (log-mels are O(10)).
        assert torch.allclose(got, expected, rtol=2**-11, atol=1e-3)
    npy, idx = store_paths(manifest)
    array = np.load(npy)
    assert array.dtype == np.float16 and array.shape == (
        sum(len(store.get(u.id)) for u in utts),
        80,
    )
    assert json.loads(idx.read_text())["features"]["n_mels"] == 80


def test_8khz_audio_is_resampled_to_16khz(manifest: Path, tmp_path: Path) -> None:
    utt = next(u for u in read_manifest(manifest) if u.sample_rate == 8000)
    wave = load_audio(utt.audio, 16000)
    assert wave.numel() == round(utt.duration * 16000)
    assert featurize(utt.audio, FEATS).shape == (wave.numel() // 160, 80)


def test_open_refuses_stale_or_other_settings(manifest: Path) -> None:
    assert FeatureStore.open(manifest, FEATS) is None
    compute_features(manifest, FEATS, show_progress=False)
    other = replace(FEATS, n_mels=40)
    assert FeatureStore.open(manifest, other) is None
    with pytest.raises(UserError, match="use --force"):
        compute_features(manifest, other, show_progress=False)
    npy = compute_features(manifest, FEATS, show_progress=False)  # up to date: left alone
    assert FeatureStore.open(manifest, FEATS) is not None
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:1]))
    assert FeatureStore.open(manifest, FEATS) is None  # the manifest changed since
    compute_features(manifest, FEATS, force=True, show_progress=False)
    store = FeatureStore.open(manifest, FEATS)
    assert store is not None and len(store) == 1 and npy.is_file()


def test_store_pickles_without_its_array(manifest: Path) -> None:
    compute_features(manifest, FEATS, show_progress=False)
    store = FeatureStore.open(manifest, FEATS)
    assert store is not None
    utt_id = next(iter(store.index))
    first = store.get(utt_id)
    blob = pickle.dumps(store)
    assert len(blob) < 4096
    assert torch.equal(pickle.loads(blob).get(utt_id), first)
    with pytest.raises(UserError, match="no features for utterance"):
        store.get("nope")


def test_cmvn_matches_direct_statistics(manifest: Path) -> None:
    frames = torch.cat([featurize(u.audio, FEATS) for u in read_manifest(manifest)]).double()
    on_the_fly = compute_cmvn(manifest, FEATS, show_progress=False)
    assert on_the_fly.frames == frames.shape[0]
    assert np.allclose(on_the_fly.mean, frames.mean(0).numpy(), atol=1e-5)
    assert np.allclose(on_the_fly.std, frames.std(0, unbiased=False).numpy(), atol=1e-4)
    compute_features(manifest, FEATS, show_progress=False)
    from_store = compute_cmvn(manifest, FEATS, show_progress=False)
    assert np.allclose(from_store.mean, on_the_fly.mean, atol=5e-3)
    assert np.allclose(from_store.std, on_the_fly.std, atol=5e-3)


def test_cli_features_writes_store_and_cmvn(manifest: Path) -> None:
    result = CliRunner().invoke(app, ["prepare", "features", str(manifest)])
    assert result.exit_code == 0, result.output
    stats = CMVNStats.load(cmvn_path(manifest))
    assert len(stats.mean) == 80 and stats.frames > 0
    assert FeatureStore.open(manifest, FEATS) is not None


def test_cli_features_unreadable_audio_is_one_line(tmp_path: Path) -> None:
    good = write_audio(tmp_path / "a.wav", 0.5)
    bad = tmp_path / "b.wav"
    bad.write_text("not audio")
    rows = [
        {"id": "a", "audio": str(good), "duration": 0.5, "sample_rate": 16000, "speaker": "s"},
        {"id": "b", "audio": str(bad), "duration": 0.5, "sample_rate": 16000, "speaker": "s"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "text": "A"}) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["prepare", "features", str(manifest)])
    assert result.exit_code == 1 and "b.wav: not readable as audio" in result.output
    assert not store_paths(manifest)[0].exists()
    assert not list(tmp_path.glob(".*tmp"))


def test_char_tokenizer_round_trip(manifest: Path) -> None:
    path = train_tokenizer(manifest)
    assert path == manifest.with_name("tokenizer.json")
    tok = load_tokenizer(path)
    for utt in read_manifest(manifest):
        assert tok.decode(tok.encode(utt.text)) == utt.text
    record = json.loads(path.read_text())["trained_on"]
    assert record["kind"] == "char" and record["utterances"] == 3
    written = path.stat().st_mtime_ns
    assert train_tokenizer(manifest) == path and path.stat().st_mtime_ns == written
    with pytest.raises(UserError, match="already exists, trained with another kind"):
        train_tokenizer(manifest, kind="bpe", vocab_size=20)
    with manifest.open("a") as handle:  # the training text changes: the tokenizer is stale
        handle.write(manifest.read_text().splitlines()[0].replace('"id": "', '"id": "x') + "\n")
    with pytest.raises(UserError, match="another manifest content; use --force"):
        train_tokenizer(manifest)
    assert train_tokenizer(manifest, force=True) == path


def test_bpe_tokenizer_from_real_text(librispeech_dir: Path, tmp_path: Path) -> None:
    reports = prepare_librispeech(
        librispeech_dir, tmp_path, parts=["train-clean-100"], jobs=2, show_progress=False
    )
    manifest = reports["train-clean-100"].path
    out = tmp_path / "bpe.json"
    args = ["prepare", "tokenizer", "--manifest", str(manifest), "--kind", "bpe"]
    result = CliRunner().invoke(app, [*args, "--vocab-size", "200", "--out", str(out)])
    assert result.exit_code == 0, result.output
    tok = load_tokenizer(out)
    assert tok.vocab_size == 200
    texts = [u.text for u in read_manifest(manifest)]
    assert all(tok.decode(tok.encode(t)) == t for t in texts)
    assert sum(map(len, map(tok.encode, texts))) < sum(map(len, texts)) / 2  # pieces, not chars


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "bpe"], "needs --vocab-size"),
        (["--kind", "wordpiece"], "unknown tokenizer kind"),
        (["--kind", "unigram", "--vocab-size", "5000"], "cannot train a unigram tokenizer"),
    ],
)
def test_tokenizer_bad_input(manifest: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["prepare", "tokenizer", "--manifest", str(manifest), *args])
    assert result.exit_code == 1 and message in result.output, result.output


def test_cli_librispeech_with_features(tmp_path: Path) -> None:
    corpus = fake_librispeech(tmp_path / "corpus")
    out = tmp_path / "data"
    args = ["prepare", "librispeech", str(corpus), "--out", str(out), "--features", "--jobs", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = out / "dev-tiny.jsonl"
    assert FeatureStore.open(manifest, FEATS) is not None and cmvn_path(manifest).is_file()
