"""Precomputed log-mel features, so CPU training does not decode audio every epoch.

Beside a manifest `DIR/<name>.jsonl` the store is two files:
    `DIR/<name>.feats.npy`: float16 (N_total, n_mels), every utterance's frames concatenated;
    `DIR/<name>.feats.json`: `{"features": to_dict(FeaturesConfig), "manifest_sha256": ...,
    "utts": {id: [offset, frames]}}`.
The array is memory-mapped, so opening a store costs nothing and data-loader workers share the
page cache. Features come from `asrkit.features.load_audio` + `Fbank`, exactly what training
computes on the fly, so a model cannot tell the two apart beyond float16 rounding.

Example:
    >>> compute_features(Path("data/train.jsonl"), FeaturesConfig(), jobs=2)  # doctest: +SKIP
    PosixPath('data/train.feats.npy')
    >>> store = FeatureStore.open(Path("data/train.jsonl"), FeaturesConfig())  # doctest: +SKIP
    >>> store.get("84-121123-0000").shape  # doctest: +SKIP
    torch.Size([1571, 80])
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from asrkit.config import FeaturesConfig, to_dict
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.data.parallel import parallel_map
from asrkit.features import CMVNAccumulator, CMVNStats, Fbank, load_audio
from asrkit.io import UserError, atomic_open, atomic_write_json, ensure_writable_dir, file_sha256

_FBANKS: dict[FeaturesConfig, Fbank] = {}  # one filterbank per process and config


def store_paths(manifest: Path) -> tuple[Path, Path]:
    """(`<name>.feats.npy`, `<name>.feats.json`) beside `manifest`."""
    manifest = Path(manifest)
    stem = manifest.name.removesuffix(".jsonl")
    return manifest.with_name(f"{stem}.feats.npy"), manifest.with_name(f"{stem}.feats.json")


def cmvn_path(manifest: Path) -> Path:
    """`<name>.cmvn.json` beside `manifest`."""
    manifest = Path(manifest)
    return manifest.with_name(f"{manifest.name.removesuffix('.jsonl')}.cmvn.json")


def cmvn_source(manifest: Path, features: FeaturesConfig) -> dict[str, Any]:
    """What CMVN statistics of `manifest` are computed from, as `CMVNStats.made_from` (JSON
    values, so it compares equal to a record read back from the file)."""
    source = {"manifest_sha256": file_sha256(manifest), "features": to_dict(features)}
    return json.loads(json.dumps(source))


def save_cmvn(manifest: Path, features: FeaturesConfig, stats: CMVNStats) -> Path:
    """Write `stats` to `<name>.cmvn.json` with the record of what they were computed from."""
    target = cmvn_path(manifest)
    dataclasses.replace(stats, made_from=cmvn_source(manifest, features)).save(target)
    return target


def cmvn_state(manifest: Path, features: FeaturesConfig) -> str:
    """ "missing", "current", "stale" (another manifest version or feature settings) or
    "unrecorded" (written by an older attnasr, so it cannot be checked) for `<name>.cmvn.json`."""
    target = cmvn_path(manifest)
    if not target.exists():
        return "missing"
    made_from = CMVNStats.load(target).made_from
    if made_from is None:
        return "unrecorded"
    return "current" if made_from == cmvn_source(manifest, features) else "stale"


def featurize(audio: str, features: FeaturesConfig) -> Tensor:
    """Log-mel features of one file, as training computes them: (T, n_mels) float32."""
    fbank = _FBANKS.get(features)
    if fbank is None:
        fbank = _FBANKS[features] = Fbank(features)
    with torch.no_grad():
        return fbank(load_audio(audio, features.sample_rate))


def _featurize_job(job: tuple[str, FeaturesConfig]) -> np.ndarray:
    return featurize(*job).numpy()  # (T, n_mels) float32


def _worker_init() -> None:
    # Each worker process owns one core; intra-op threads would only fight over them.
    torch.set_num_threads(1)


class FeatureStore:
    """Read-only access to a precomputed store; `get(id)` returns (T, n_mels) float32."""

    def __init__(self, npy: Path, index: dict[str, tuple[int, int]], features: FeaturesConfig):
        self.npy = Path(npy)
        self.index = index
        self.features = features
        self._array: np.ndarray | None = None  # opened lazily, so the object pickles cheaply

    @classmethod
    def open(cls, manifest: Path, features: FeaturesConfig) -> FeatureStore | None:
        """The store beside `manifest`, or None when it is absent, was computed with other
        feature settings, or for another version of the manifest."""
        npy, idx = store_paths(manifest)
        if not (npy.is_file() and idx.is_file() and Path(manifest).is_file()):
            return None
        try:
            meta = json.loads(idx.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
        if meta.get("features") != to_dict(features):
            return None
        if meta.get("manifest_sha256") != file_sha256(Path(manifest)):
            return None
        index = {k: (int(v[0]), int(v[1])) for k, v in meta["utts"].items()}
        return cls(npy, index, features)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.npy, mmap_mode="r")
        return self._array

    def get(self, utt_id: str) -> Tensor:
        """Features of one utterance: (T, n_mels) float32 (a copy, safe to modify)."""
        try:
            offset, frames = self.index[utt_id]
        except KeyError as exc:
            raise UserError(f"{self.npy}: no features for utterance {utt_id!r}") from exc
        return torch.from_numpy(self.array[offset : offset + frames].astype(np.float32))

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self.index

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        # Data-loader workers re-open the memory map instead of receiving a pickled copy.
        return {**self.__dict__, "_array": None}


def compute_features(
    manifest: Path,
    features: FeaturesConfig,
    jobs: int = 1,
    force: bool = False,
    show_progress: bool = True,
) -> Path:
    """Compute every utterance's features into the store beside `manifest`.

    Args:
        manifest: a manifest `DIR/<name>.jsonl`.
        features: the feature settings (the store remembers them).
        jobs: worker processes (each with one torch thread).
        force: recompute an existing store.
        show_progress: draw the progress bar.

    Returns:
        The `.feats.npy` path. An up-to-date store is left as it is.

    Raises:
        UserError: a store with other settings exists and `force` is off; unreadable audio.
    """
    manifest = Path(manifest)
    utts = read_manifest(manifest)
    ensure_writable_dir(manifest.parent)
    npy, idx = store_paths(manifest)
    if not force and (npy.exists() or idx.exists()):
        if FeatureStore.open(manifest, features) is not None:
            return npy
        raise UserError(
            f"{npy}: exists but was computed with other feature settings or for another version"
            f" of {manifest.name}; use --force to recompute"
        )
    idx.unlink(missing_ok=True)  # never leave an old index paired with a new array
    raw = npy.with_name(f".{npy.name}.raw.tmp")
    index: dict[str, list[int]] = {}
    offset = 0
    try:
        with raw.open("wb") as handle:
            results = _featurize_all(
                utts, features, jobs, f"{manifest.name}: features", show_progress
            )
            for utt, feats in zip(utts, results, strict=True):
                handle.write(feats.astype(np.float16).tobytes())
                index[utt.id] = [offset, feats.shape[0]]
                offset += feats.shape[0]
        _write_npy(npy, raw, (offset, features.n_mels))
    except UserError:
        raise  # an audio file's problem (a MissingPathError is also an OSError)
    except OSError as exc:  # e.g. the disk filled up: no partial store is left behind
        raise UserError(f"{npy}: cannot write the feature store ({exc.strerror or exc})") from exc
    finally:
        raw.unlink(missing_ok=True)
    atomic_write_json(
        idx,
        {"features": to_dict(features), "manifest_sha256": file_sha256(manifest), "utts": index},
    )
    return npy


def _featurize_all(
    utts: list[Utterance], features: FeaturesConfig, jobs: int, description: str, show: bool
) -> Iterable[np.ndarray]:
    """Features of every utterance, in order, computed by `jobs` worker processes."""
    return parallel_map(
        _featurize_job,
        [(u.audio, features) for u in utts],
        jobs=jobs,
        description=description,
        processes=True,
        show=show,
        initializer=_worker_init,
    )


def _write_npy(npy: Path, raw: Path, shape: tuple[int, int]) -> None:
    """Turn raw float16 bytes into a .npy file (the header needs the total, known only now)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f2")), "fortran_order": False}
    with atomic_open(npy, "wb") as out, raw.open("rb") as src:
        np.lib.format.write_array_header_2_0(out, {**header, "shape": shape})
        shutil.copyfileobj(src, out, length=16 << 20)


def compute_cmvn(
    manifest: Path,
    features: FeaturesConfig,
    jobs: int = 1,
    show_progress: bool = True,
) -> CMVNStats:
    """Global per-bin mean and std of `manifest`'s features (the store when up to date).

    Returns:
        The statistics; the caller saves them (`stats.save(cmvn_path(manifest))`).
    """
    utts = read_manifest(Path(manifest))
    acc = CMVNAccumulator(features.n_mels)
    store = FeatureStore.open(Path(manifest), features)
    if store is not None and all(u.id in store for u in utts):
        for utt in utts:
            acc.add(store.get(utt.id))
        return acc.stats()
    results = _featurize_all(utts, features, jobs, f"{Path(manifest).name}: CMVN", show_progress)
    for feats in results:
        acc.add(torch.from_numpy(feats))
    return acc.stats()
