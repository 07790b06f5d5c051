"""Audio loading (soundfile), log-mel filterbanks (torchaudio) and global CMVN.

Audio is read with soundfile (FLAC, WAV, MP3, OGG), mixed to mono and resampled to the
feature rate with `torchaudio.functional.resample`; torchaudio's own loader is not used because
it now needs FFmpeg and torchcodec.

Example:
    >>> import torch
    >>> fbank = Fbank(FeaturesConfig())
    >>> fbank(torch.zeros(16000)).shape
    torch.Size([100, 80])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import Tensor

from asrkit.audio_integrity import nonfinite_problem
from asrkit.config import FeaturesConfig
from asrkit.io import MissingPathError, UserError, atomic_write_json, require_file

LOG_FLOOR = 1e-6  # keeps log() finite on digital silence


def load_audio(path: str | Path, sample_rate: int = 16000) -> Tensor:
    """Read any libsndfile format, mix to mono, resample; returns float32 (N,) in [-1, 1].

    Raises:
        UserError: naming the file when it is missing, unreadable or not audio.
    """
    path = require_file(Path(path), "audio file")
    try:
        data, native_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: not readable as audio ({exc})") from exc
    problem = nonfinite_problem(data)
    if problem:
        raise UserError(f"{path}: {problem}; the file is refused (repair or remove it)")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))  # (N,) mono
    if native_rate != sample_rate and wave.numel() > 0:
        wave = torchaudio.functional.resample(wave, native_rate, sample_rate)
    return wave


class Fbank(torch.nn.Module):
    """80-bin log-mel filterbank, 25 ms window, 10 ms hop: (N,) samples -> (T, n_mels).

    T = 1 + N // hop (centred frames), so 1 s of 16 kHz audio gives 101 frames; we drop the last
    frame so that T = N // hop, which makes frame i cover [i*hop, (i+1)*hop) for word timings.
    """

    def __init__(self, cfg: FeaturesConfig) -> None:
        super().__init__()
        self.hop = int(cfg.sample_rate * cfg.hop_ms / 1000)
        win = int(cfg.sample_rate * cfg.win_ms / 1000)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=512,
            win_length=win,
            hop_length=self.hop,
            n_mels=cfg.n_mels,
            power=2.0,
        )

    def forward(self, wave: Tensor) -> Tensor:
        frames = wave.shape[-1] // self.hop
        if frames == 0:
            return wave.new_zeros(0, self.mel.n_mels)
        spec = self.mel(wave)[..., :frames]  # (n_mels, T)
        return spec.clamp_min(LOG_FLOOR).log().transpose(-1, -2).contiguous()  # (T, n_mels)


@dataclass(frozen=True)
class CMVNStats:
    """Global per-bin mean and standard deviation of the training features."""

    mean: list[float]
    std: list[float]
    frames: int
    # What they were computed from ({"manifest_sha256", "features"}); None in older files and
    # in an experiment's own copy, which is tied to its checkpoint instead.
    made_from: dict[str, Any] | None = None

    def save(self, path: Path) -> None:
        row: dict[str, Any] = {"mean": self.mean, "std": self.std, "frames": self.frames}
        if self.made_from is not None:
            row["made_from"] = self.made_from
        atomic_write_json(Path(path), row)

    @classmethod
    def load(cls, path: Path) -> CMVNStats:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            made_from = data.get("made_from")
            return cls(data["mean"], data["std"], int(data["frames"]), made_from)
        except FileNotFoundError as exc:
            hint = "run 'attnasr prepare'"
            raise MissingPathError(f"{path}: CMVN statistics not found ({hint})") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # JSONDecodeError and UnicodeDecodeError are ValueErrors; a list is an AttributeError
            raise UserError(f"{path}: not a CMVN statistics file") from exc


class CMVNAccumulator:
    """Streaming sums in float64, so hours of features do not lose precision."""

    def __init__(self, n_mels: int) -> None:
        self.total = torch.zeros(n_mels, dtype=torch.float64)
        self.total_sq = torch.zeros(n_mels, dtype=torch.float64)
        self.frames = 0

    def add(self, feats: Tensor) -> None:
        feats = feats.to(torch.float64)
        self.total += feats.sum(0)
        self.total_sq += (feats**2).sum(0)
        self.frames += feats.shape[0]

    def stats(self) -> CMVNStats:
        if self.frames == 0:
            raise UserError("no frames to compute CMVN statistics from")
        mean = self.total / self.frames
        var = (self.total_sq / self.frames - mean**2).clamp_min(1e-8)
        return CMVNStats(mean=mean.tolist(), std=var.sqrt().tolist(), frames=self.frames)
