"""Log-mel features of audio that arrives in pieces, equal to `asrkit.features.Fbank` of the
whole recording.

`Fbank` centres its 512-sample FFT frames (hop 160 at 16 kHz) and reflect-pads both ends, so
frame i covers samples [160 i - 256, 160 i + 256). Here frame i is computed as soon as those
samples are in; the reflection at the start needs the first 257 samples, the one at the end
is made when the input ends (`finish`). Only the samples the next frames need are kept.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor

from asrkit.config import FeaturesConfig
from asrkit.features import LOG_FLOOR, Fbank


class StreamingFbank:
    """Incremental `Fbank`: `accept(samples)` and `finish()` return the frames that became
    final, (T_new, n_mels); all of them together equal `Fbank(cfg)(whole_wave)`.

    Example:
        >>> fbank = StreamingFbank(FeaturesConfig())
        >>> wave = torch.randn(16000)
        >>> parts = [fbank.accept(wave[i : i + 2560]) for i in range(0, 16000, 2560)]
        >>> feats = torch.cat([*parts, fbank.finish()])
        >>> bool(torch.allclose(feats, Fbank(FeaturesConfig())(wave), atol=1e-4))
        True
    """

    def __init__(self, cfg: FeaturesConfig) -> None:
        self.offline = Fbank(cfg)
        spectrogram = self.offline.mel.spectrogram
        self.n_fft = spectrogram.n_fft
        self.hop = self.offline.hop
        self.half = self.n_fft // 2
        self.window = spectrogram.window
        self.win_length = spectrogram.win_length
        self.mel_scale = self.offline.mel.mel_scale
        self.received = 0  # samples accepted so far
        self.emitted = 0  # frames returned so far
        self.head: Tensor = torch.zeros(0)  # the first samples, until the left pad can be made
        self.buffer: Tensor | None = None  # reflect-padded samples from frame `emitted` on

    def accept(self, samples: Tensor) -> Tensor:
        """New mono samples (N,) at the configured rate -> the frames now complete."""
        samples = samples.reshape(-1).float()
        self.received += samples.numel()
        if self.buffer is None:
            self.head = torch.cat([self.head, samples])
            if self.head.numel() <= self.half:
                return self._empty()
            left = self.head[1 : self.half + 1].flip(0)  # reflect, as torch.stft pads
            self.buffer, self.head = torch.cat([left, self.head]), torch.zeros(0)
        else:
            self.buffer = torch.cat([self.buffer, samples])
        complete = (self.buffer.numel() - self.n_fft) // self.hop + 1
        return self._frames(max(complete, 0), final_count=None)

    def finish(self) -> Tensor:
        """The frames that needed the end of the input (its right reflection)."""
        total = self.received // self.hop  # Fbank's frame count (its last frame is dropped)
        if self.buffer is None:  # at most 16 ms: too short to frame (Fbank cannot pad it)
            return self._empty()
        tail = self.buffer[-self.half - 1 : -1].flip(0)
        self.buffer = torch.cat([self.buffer, tail])
        return self._frames(total - self.emitted, final_count=total)

    def _frames(self, count: int, final_count: int | None) -> Tensor:
        if final_count is not None:
            count = min(count, final_count - self.emitted)
        if count <= 0 or self.buffer is None:
            return self._empty()
        span = self.buffer[: (count - 1) * self.hop + self.n_fft]
        power = torchaudio.functional.spectrogram(
            span,
            pad=0,
            window=self.window,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.win_length,
            power=2.0,
            normalized=False,
            center=False,
        )  # (freq, count)
        feats = self.mel_scale(power).clamp_min(LOG_FLOOR).log().transpose(0, 1)
        self.emitted += count
        self.buffer = self.buffer[count * self.hop :]
        return feats.contiguous()

    def _empty(self) -> Tensor:
        return torch.zeros(0, self.mel_scale.n_mels)
