"""Speaker CMN: every speaker lands on the target mean, and decoding feeds the model exactly
the features training does."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from train_corpus import write_corpus

from asrkit.checkpoint import LoadedModel
from asrkit.config import ConfigError, ExperimentConfig, from_dict
from asrkit.data.dataset import SpeechDataset, read_split
from asrkit.data.speaker_cmn import shift_features, speaker_shifts
from asrkit.decoding import DecodeOptions
from asrkit.decoding.api import decode_utterances
from asrkit.model.las import LAS
from asrkit.testing import tiny_config
from asrkit.tokenizer import CharTokenizer

TARGET = torch.tensor([1.0, -2.0, 0.5])


def _utterances() -> list[tuple[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    utts = []
    for i in range(9):  # three speakers, each with its own offset, utterances of unequal length
        speaker = f"s{i % 3}"
        frames = 5 + 7 * i
        utts.append((speaker, torch.randn(frames, 3, generator=gen) + 3.0 * (i % 3)))
    return utts


def test_each_speakers_frames_are_centred_on_the_target() -> None:
    utts = _utterances()
    shifts = speaker_shifts(utts, TARGET)
    for speaker in ("s0", "s1", "s2"):
        frames = [shift_features(f, s, shifts, TARGET) for s, f in utts if s == speaker]
        torch.testing.assert_close(torch.cat(frames).mean(0), TARGET, atol=1e-5, rtol=0)
    # one shift per speaker: a single utterance is not centred on its own
    alone = shift_features(utts[3][1], "s0", shifts, TARGET)
    assert not torch.allclose(alone.mean(0), TARGET, atol=1e-2)


def test_an_utterance_without_a_known_speaker_uses_its_own_mean() -> None:
    shifts = speaker_shifts(_utterances(), TARGET)
    feats = torch.randn(11, 3) + 7.0
    for speaker in ("", "nobody"):
        moved = shift_features(feats, speaker, shifts, TARGET)
        torch.testing.assert_close(moved.mean(0), TARGET, atol=1e-5, rtol=0)
    assert "" not in speaker_shifts([("", feats)], TARGET)


def test_utterance_and_speaker_cmn_are_exclusive() -> None:
    both = {"model": {"utterance_cmn": True, "speaker_cmn": True}}
    with pytest.raises(ConfigError, match="choose one"):
        from_dict(ExperimentConfig, both)


def test_decoding_feeds_the_model_the_features_training_sees(tmp_path) -> None:
    manifest = write_corpus(tmp_path, "dev", 6, seed=3)
    utts = read_split(manifest).utterances
    tokenizer = CharTokenizer.train(["ABCD "])
    cfg = tiny_config("dot", model__speaker_cmn=True)
    mean = torch.linspace(-3.0, 1.0, cfg.features.n_mels)
    dataset = SpeechDataset(utts, tokenizer, cfg.features, cmvn_mean=mean)
    plain = [(u.speaker, dataset.plain_features(i)) for i, u in enumerate(utts)]
    dataset.speaker_shifts = speaker_shifts(plain, mean)
    model = LAS(cfg, tokenizer.vocab_size).eval()
    model.set_cmvn(mean, torch.ones(cfg.features.n_mels))
    seen: list[torch.Tensor] = []
    encode = model.encode

    def recording_encode(feats: torch.Tensor, lengths: torch.Tensor) -> tuple:
        seen.extend(f[: int(n)].clone() for f, n in zip(feats, lengths, strict=True))
        return encode(feats, lengths)

    model.encode = recording_encode  # type: ignore[method-assign]
    loaded = LoadedModel(model, cfg, tokenizer, tmp_path / "tiny.pt")
    opts = DecodeOptions.from_config(cfg.decode, beam=1, batch_size=4)
    decode_utterances(loaded, utts, opts, progress=False)
    assert len(seen) == len(utts)
    for i in range(len(utts)):
        expected = dataset[i].feats
        same = [
            f for f in seen if f.shape == expected.shape and torch.allclose(f, expected, atol=1e-4)
        ]
        assert len(same) == 1, utts[i].id


def test_the_report_says_how_features_were_normalised(tmp_path) -> None:
    from asrkit.evaluation import _feature_normalisation

    utts = read_split(write_corpus(tmp_path, "dev", 4, seed=3)).utterances
    utts[0] = dataclasses.replace(utts[0], speaker="")
    tokenizer = CharTokenizer.train(["ABCD "])
    said = {}
    for name, overrides in {"speaker": {"model__speaker_cmn": True}, "plain": {}}.items():
        cfg = tiny_config("dot", **overrides)
        loaded = LoadedModel(LAS(cfg, tokenizer.vocab_size), cfg, tokenizer, tmp_path / "t.pt")
        said[name] = _feature_normalisation(loaded, utts)
    assert said["speaker"] == (
        "global CMVN + speaker mean (3 speakers; 1 utterances without a speaker: their own mean)"
    )
    assert said["plain"] == "global CMVN"


def test_ensemble_members_get_shifts_onto_their_own_mean_from_one_pass(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asrkit.decoding.api as api

    utts = read_split(write_corpus(tmp_path, "dev", 6, seed=3)).utterances
    tokenizer = CharTokenizer.train(["ABCD "])
    cfg = tiny_config("dot", model__speaker_cmn=True)
    members = []
    for offset in (0.0, 2.0, 0.0):  # the third member shares the first one's CMVN mean
        model = LAS(cfg, tokenizer.vocab_size).eval()
        n_mels = cfg.features.n_mels
        model.set_cmvn(torch.linspace(-3.0, 1.0, n_mels) + offset, torch.ones(n_mels))
        members.append(LoadedModel(model, cfg, tokenizer, tmp_path / "tiny.pt"))
    plain = SpeechDataset(utts, tokenizer, cfg.features)
    features = [(u.speaker, plain.plain_features(i)) for i, u in enumerate(utts)]
    reads = []
    load_audio = api.load_audio
    monkeypatch.setattr(api, "load_audio", lambda *a: reads.append(a) or load_audio(*a))
    shifts = api._member_shifts(members, utts, progress=False, console=None)
    assert len(reads) == len(utts)  # one pass over the audio for all three members
    for member, got in zip(members, shifts, strict=True):
        expected = speaker_shifts(features, member.model.feat_mean)
        assert got is not None and got.keys() == expected.keys()
        for speaker, shift in expected.items():
            torch.testing.assert_close(got[speaker], shift, rtol=0, atol=1e-5)
    speaker = next(iter(features))[0]
    assert shifts[0] is not None and shifts[1] is not None
    torch.testing.assert_close(shifts[1][speaker] - shifts[0][speaker], torch.full((n_mels,), 2.0))
