"""Training and evaluation datasets: manifest utterances -> (features, token ids).

Features come from the feature store written by `attnasr prepare` when it matches the
config, otherwise they are computed on the fly (`load_audio` + `Fbank`, inside the data-loader
workers). Augmentation draws from a generator seeded by `(seed, epoch, index)`, so an epoch is
reproducible whatever the number of workers (see specaug.py). Speed perturbation picks one of a
few factors, so the log-mel of each (utterance, factor) is kept in memory once computed, within
a byte budget: after the first epochs its audio is no longer decoded and resampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from asrkit.config import FeaturesConfig, SpecAugmentConfig
from asrkit.data.feature_store import FeatureStore
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.data.speaker_cmn import shift_features
from asrkit.data.specaug import SpecAugment, draw_speed, speed_perturb
from asrkit.features import Fbank, load_audio
from asrkit.io import MissingPathError, UserError
from asrkit.tokenizer import Tokenizer


@dataclass(frozen=True)
class Example:
    """One item: id, raw log-mel `feats` (T, n_mels) float32, `tokens` (U,) long (no eos)."""

    id: str
    feats: Tensor
    tokens: Tensor


@dataclass(frozen=True)
class Split:
    """Utterances kept from a manifest, and how many were skipped for being too long."""

    utterances: list[Utterance]
    skipped: int


def read_split(manifest: Path, max_seconds: float = 0.0) -> Split:
    """Read a manifest and drop utterances longer than `max_seconds` (0 keeps all).

    Raises:
        UserError: missing or empty manifest, a line with an empty audio path, or nothing
            left after the length filter.
    """
    utts = read_manifest(manifest)
    for number, utt in enumerate(utts, 1):
        if not utt.audio.strip():
            raise UserError(f"{manifest}:{number}: utterance {utt.id!r} has no audio path")
    kept = [u for u in utts if max_seconds <= 0 or u.duration <= max_seconds]
    if not kept:
        raise UserError(f"{manifest}: every utterance is longer than {max_seconds:g} s")
    return Split(kept, len(utts) - len(kept))


def open_store(
    manifest: Path, features: FeaturesConfig, utts: list[Utterance]
) -> FeatureStore | None:
    """The prepared feature store of `manifest` if it exists, matches and covers every utt."""
    store = FeatureStore.open(manifest, features)
    if store is None or not all(u.id in store for u in utts):
        return None
    return store


class SpeechDataset(torch.utils.data.Dataset):
    """Map-style dataset over utterances.

    Args:
        utts: the utterances, in a fixed order (the sampler refers to these indices).
        tokenizer: encodes the transcripts.
        features: the feature configuration (sample rate, bins).
        store: a `FeatureStore` (precomputed features) or None to compute them on the fly.
        specaug: SpecAugment settings for training, None for evaluation.
        cmvn_mean: (n_mels,) the global mean: fill value of the masks, and where speaker
            shifts move each speaker's mean.
        seed: base seed of the augmentation.
        cache_mb: memory for the log-mel of speed-perturbed audio, kept per (utterance,
            factor) so that each is computed once (0 = recompute every time); the items are
            the same either way.

    Attributes:
        speaker_shifts: per-speaker shifts (`speaker_cmn.speaker_shifts`, computed from
            `plain_features`) added before augmentation, or None (features as computed).
    """

    def __init__(
        self,
        utts: list[Utterance],
        tokenizer: Tokenizer,
        features: FeaturesConfig,
        store: FeatureStore | None = None,
        specaug: SpecAugmentConfig | None = None,
        cmvn_mean: Tensor | None = None,
        seed: int = 0,
        cache_mb: float = 0.0,
    ) -> None:
        self.utts = utts
        self.tokens = [torch.tensor(tokenizer.encode(u.text), dtype=torch.long) for u in utts]
        self.features = features
        self.speed_factors = specaug.speed_perturb if specaug else ()
        # Speed perturbation changes the waveform, so precomputed features cannot serve it.
        self.store = None if self.speed_factors else store
        if self.store is None:
            missing = next((u for u in utts if not Path(u.audio).is_file()), None)
            if missing is not None:
                raise MissingPathError(f"{missing.audio}: audio file of {missing.id!r} not found")
        self.mean = cmvn_mean if cmvn_mean is not None else torch.zeros(features.n_mels)
        self.augment = SpecAugment(specaug, self.mean) if specaug is not None else None
        self.speaker_shifts: dict[str, Tensor] | None = None
        self.seed = seed
        self.epoch = 0
        self._fbank: Fbank | None = None
        self._cache: dict[tuple[int, float], Tensor] = {}
        self._cache_room = int(cache_mb * 2**20)  # bytes still free

    @property
    def frames(self) -> list[int]:
        """Approximate frames per utterance (from the duration), used for batching."""
        per_second = 1000.0 / self.features.hop_ms
        return [max(1, int(u.duration * per_second)) for u in self.utts]

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of `epoch` (call before creating the loader iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, index: int) -> Example:
        utt = self.utts[index]
        generator = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index
        )
        feats = self._features(index, generator)
        if self.speaker_shifts is not None:
            feats = shift_features(feats, utt.speaker, self.speaker_shifts, self.mean)
        if self.augment is not None:
            feats = self.augment(feats, generator)
        return Example(utt.id, feats, self.tokens[index])

    def plain_features(self, index: int) -> Tensor:
        """Raw log-mel (T, n_mels) of utterance `index`: no perturbation, shift or masks."""
        return self._features(index, None)

    def _features(self, index: int, generator: torch.Generator | None) -> Tensor:
        """Stored or computed log-mel; speed-perturbed when a generator is given."""
        utt = self.utts[index]
        if self.store is not None:
            return self.store.get(utt.id).float()
        factor = 1.0 if generator is None else draw_speed(self.speed_factors, generator)
        cached = self._cache.get((index, factor))
        if cached is not None:
            return cached  # callers copy before changing it (shift_features, SpecAugment)
        if self._fbank is None:  # built lazily: one per worker process
            self._fbank = Fbank(self.features)
        wave = load_audio(utt.audio, self.features.sample_rate)
        wave = speed_perturb(wave, self.features.sample_rate, factor)
        with torch.no_grad():
            feats = self._fbank(wave)
        size = feats.numel() * feats.element_size()
        if size <= self._cache_room:
            self._cache[(index, factor)] = feats
            self._cache_room -= size
        return feats
