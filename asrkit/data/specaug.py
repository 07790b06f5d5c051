"""SpecAugment (Park et al., 2019), background noise, noise bursts and speed perturbation,
driven by one generator.

Every random draw goes through a `torch.Generator` that the dataset seeds from
`(seed, epoch, utterance index)`, so an augmented epoch is the same whatever the number of
data-loader workers and whether the run was resumed: exact resume needs no worker RNG state.

Masked values are set to the global CMVN mean, i.e. to 0 after the model's normalisation,
which is what the paper's masks on normalised features do.

Example:
    >>> import torch
    >>> aug = SpecAugment(SpecAugmentConfig(), fill=torch.zeros(80))
    >>> aug(torch.randn(200, 80), torch.Generator().manual_seed(0)).shape
    torch.Size([200, 80])
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor

from asrkit.config import SpecAugmentConfig


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in [low, high] (inclusive); `low` when the range is empty."""
    if high <= low:
        return low
    return int(torch.randint(low, high + 1, (1,), generator=generator))


class SpecAugment:
    """Tempo pieces, time warp, VTLP, background noise, noise bursts, frequency and time masks.

    Args:
        cfg: mask counts and widths.
        fill: (n_mels,) value written into masked cells (the CMVN mean).
    """

    def __init__(self, cfg: SpecAugmentConfig, fill: Tensor) -> None:
        self.cfg = cfg
        self.fill = fill.float()

    def __call__(self, feats: Tensor, generator: torch.Generator) -> Tensor:
        """feats (T, n_mels) -> augmented copy (T', n_mels); the input is not modified.

        T' = T unless `tempo_range` stretches pieces of the utterance.
        """
        cfg = self.cfg
        feats = feats.clone()
        if cfg.tempo_range:
            feats = tempo_pieces(feats, cfg.tempo_piece_frames, cfg.tempo_range, generator)
        frames, bins = feats.shape
        if cfg.time_warp > 0:
            feats = time_warp(feats, cfg.time_warp, generator)
        if cfg.freq_warp > 0:
            feats = freq_warp(feats, cfg.freq_warp, generator)
        # Drawn only when enabled, so configs without it keep their random streams.
        if cfg.noise_snr and float(torch.rand(1, generator=generator)) < cfg.noise_prob:
            feats = background_noise(feats, cfg.noise_snr, cfg.noise_tilt_db, generator)
        for _ in range(cfg.noise_bursts):
            feats = noise_burst(feats, cfg.noise_burst_width, cfg.noise_burst_db, generator)
        for _ in range(cfg.freq_masks):
            width = _randint(0, min(cfg.freq_width, bins), generator)
            start = _randint(0, bins - width, generator)
            feats[:, start : start + width] = self.fill[start : start + width]
        # The paper's upper bound p * T keeps short utterances from being wiped out.
        max_width = min(cfg.time_width, int(cfg.time_max_ratio * frames))
        for _ in range(cfg.time_masks):
            width = _randint(0, max_width, generator)
            start = _randint(0, frames - width, generator)
            feats[start : start + width] = self.fill
        return feats


def time_warp(feats: Tensor, max_warp: int, generator: torch.Generator) -> Tensor:
    """Move a random centre frame by up to `max_warp` frames, stretching both sides.

    The piecewise-linear stretch (as in ESPnet's `time_warp`) replaces the paper's sparse image
    warp; the number of frames is unchanged. feats (T, F) -> (T, F).
    """
    frames = feats.shape[0]
    if frames <= 2 * max_warp + 1:
        return feats
    centre = _randint(max_warp + 1, frames - max_warp - 1, generator)
    moved = centre + _randint(-max_warp, max_warp, generator)
    image = feats.t().unsqueeze(0)  # (1, F, T): interpolate works on the last axis
    left = F.interpolate(image[..., :centre], size=moved, mode="linear", align_corners=False)
    right = F.interpolate(
        image[..., centre:], size=frames - moved, mode="linear", align_corners=False
    )
    return torch.cat([left, right], dim=-1).squeeze(0).t().contiguous()


def tempo_pieces(
    feats: Tensor, piece_frames: int, factor_range: tuple[float, ...], generator: torch.Generator
) -> Tensor:
    """Stretch random pieces of `feats` (T, F) in time, each by its own factor -> (T', F).

    round(T / `piece_frames`) pieces (at least one) between distinct random cut frames; each
    piece of n frames becomes max(1, round(n * factor)) frames by linear interpolation, with
    factor log-uniform in `factor_range` (low, high), so shrinking and stretching by the same
    ratio are equally likely. A factor of 1 returns the piece unchanged.
    """
    frames = feats.shape[0]
    if frames == 0:
        return feats
    count = min(max(1, round(frames / piece_frames)), frames)
    cuts = (torch.randperm(frames - 1, generator=generator)[: count - 1] + 1).sort().values
    bounds = [0, *cuts.tolist(), frames]
    log_low, log_high = (math.log(f) for f in factor_range)
    image = feats.t().unsqueeze(0)  # (1, F, T): interpolate works on the last axis
    pieces = []
    for start, end in itertools.pairwise(bounds):
        factor = math.exp(
            log_low + (log_high - log_low) * float(torch.rand(1, generator=generator))
        )
        size = max(1, round((end - start) * factor))
        piece = image[..., start:end]
        if size != end - start:
            piece = F.interpolate(piece, size=size, mode="linear", align_corners=False)
        pieces.append(piece)
    return torch.cat(pieces, dim=-1).squeeze(0).t().contiguous()


def freq_warp(feats: Tensor, max_warp: float, generator: torch.Generator) -> Tensor:
    """Stretch the mel axis by a factor alpha in [1 - max_warp, 1 + max_warp] (VTLP).

    Output bin j reads input bin j / alpha (linear interpolation, the top bin repeated past
    the edge): alpha > 1 moves formants up, as a shorter vocal tract does. The warp is linear
    on the mel scale, an approximation of VTLP's piecewise-linear warp in Hz that keeps the
    precomputed log-mel features usable. feats (T, F) -> (T, F).
    """
    bins = feats.shape[1]
    alpha = 1.0 + (2.0 * float(torch.rand(1, generator=generator)) - 1.0) * max_warp
    source = (torch.arange(bins, dtype=torch.float32) / alpha).clamp(max=bins - 1)
    low = source.floor().long()
    high = (low + 1).clamp(max=bins - 1)
    frac = (source - low.float()).to(feats.dtype)
    return feats[:, low] * (1.0 - frac) + feats[:, high] * frac


def background_noise(
    feats: Tensor, snr_db: tuple[float, ...], max_tilt_db: float, generator: torch.Generator
) -> Tensor:
    """Add stationary Gaussian noise to log-mel `feats` (T, F) -> (T, F), in power.

    The noise's mean power over all cells is the utterance's mean power divided by
    10^(SNR / 10), SNR uniform in `snr_db`; across the bins its level ramps linearly in dB by
    a tilt uniform in +-`max_tilt_db` (mean power kept), and each cell's power is exponential
    around its bin's level (the power of Gaussian noise). log(exp(x) + noise) never lowers a
    cell, and relative levels make it independent of the features' absolute scale.
    """
    frames, bins = feats.shape
    if frames == 0:
        return feats.clone()
    low, high = snr_db
    snr = low + (high - low) * float(torch.rand(1, generator=generator))
    tilt = max_tilt_db * (2.0 * float(torch.rand(1, generator=generator)) - 1.0)
    db_to_log = math.log(10.0) / 10.0
    # the tilt's shape in natural-log power, shifted so that its mean power over bins is 1
    shape = torch.linspace(0.0, tilt, bins, dtype=torch.float64) * db_to_log
    shape = shape - (torch.logsumexp(shape, dim=0) - math.log(bins))
    log_mean = torch.logsumexp(feats.double().flatten(), dim=0) - math.log(frames * bins)
    level = log_mean - snr * db_to_log + shape  # (F,)
    return _add_gaussian_noise(feats, level, generator)


def noise_burst(
    feats: Tensor, max_width: int, level_db: tuple[float, ...], generator: torch.Generator
) -> Tensor:
    """Add one burst of high-pass noise to log-mel `feats` (T, F) -> (T, F), in power.

    The burst lasts 1..`max_width` frames at a random start and covers the bins from a random
    lowest bin in the lower half to the top. Its mean power in each bin is the utterance's
    mean power there times 10^(dB / 10), dB uniform in `level_db`; each cell's power is
    exponential around that mean (the power of Gaussian noise), and log(exp(x) + noise) never
    lowers a cell. Relative levels make it independent of the features' absolute scale.
    """
    frames, bins = feats.shape
    width = _randint(1, min(max_width, frames), generator)
    start = _randint(0, frames - width, generator)
    lowest = _randint(0, bins // 2, generator)
    low_db, high_db = level_db
    db = low_db + (high_db - low_db) * float(torch.rand(1, generator=generator))
    # log of the mean power per bin, computed stably (logsumexp) whatever the scale
    log_mean = torch.logsumexp(feats[:, lowest:].double(), dim=0) - math.log(frames)
    log_level = log_mean + db * math.log(10.0) / 10.0
    out = feats.clone()
    cells = out[start : start + width, lowest:]
    out[start : start + width, lowest:] = _add_gaussian_noise(cells, log_level, generator)
    return out


def _add_gaussian_noise(cells: Tensor, log_level: Tensor, generator: torch.Generator) -> Tensor:
    """log(exp(cells) + noise): each cell's noise power exponential around exp(log_level) (the
    power of Gaussian noise; `log_level` broadcasts over the cells, e.g. one per bin)."""
    draws = torch.empty(cells.shape, dtype=torch.float64).exponential_(generator=generator)
    return torch.logaddexp(cells.double(), log_level + draws.log()).to(cells.dtype)


def draw_speed(factors: tuple[float, ...], generator: torch.Generator) -> float:
    """The speed factor of one utterance: uniform over `factors`, 1.0 when there are none."""
    if not factors:
        return 1.0
    return factors[_randint(0, len(factors) - 1, generator)]


def speed_perturb(wave: Tensor, sample_rate: int, factor: float) -> Tensor:
    """Play `wave` (N,) faster (`factor` > 1) or slower by `factor` (pitch moves too).

    Resampling from `rate * factor` to `rate` keeps the sample rate and changes the duration
    to N / factor, which is Kaldi's `sox speed` perturbation.
    """
    if factor == 1.0 or wave.numel() == 0:
        return wave
    # resample() wants integer rates; 100 Hz granularity keeps the gcd (and the cost) small.
    source = round(sample_rate * factor / 100) * 100
    return torchaudio.functional.resample(wave, source, sample_rate)
