"""SpecAugment, background noise, noise bursts, speed perturbation: shapes, levels, repeats."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.config import ConfigError, SpecAugmentConfig
from asrkit.data.specaug import (
    SpecAugment,
    background_noise,
    draw_speed,
    freq_warp,
    noise_burst,
    speed_perturb,
    tempo_pieces,
    time_warp,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_masks_write_the_fill_value_and_keep_the_rest() -> None:
    feats = torch.randn(300, 80) + 10
    fill = torch.full((80,), -7.0)
    out = SpecAugment(SpecAugmentConfig(freq_width=20, time_width=50), fill)(feats, _gen())
    assert out.shape == feats.shape
    changed = out != feats
    assert changed.any()
    assert torch.all(out[changed] == -7.0)
    assert torch.equal(feats, feats.clone())  # input untouched


def test_time_masks_never_exceed_the_ratio_of_the_utterance() -> None:
    cfg = SpecAugmentConfig(freq_masks=0, time_masks=1, time_width=100, time_max_ratio=0.1)
    aug = SpecAugment(cfg, torch.zeros(80))
    for seed in range(20):
        out = aug(torch.ones(50, 80), _gen(seed))
        assert int((out == 0).all(dim=1).sum()) <= 5


def test_same_generator_seed_same_augmentation() -> None:
    feats = torch.randn(200, 80)
    aug = SpecAugment(SpecAugmentConfig(time_warp=5), torch.zeros(80))
    assert torch.equal(aug(feats, _gen(4)), aug(feats, _gen(4)))
    assert not torch.equal(aug(feats, _gen(4)), aug(feats, _gen(5)))


def test_time_warp_keeps_the_length_and_the_ends() -> None:
    feats = torch.arange(100, dtype=torch.float32).unsqueeze(1).repeat(1, 4)  # a ramp in time
    out = time_warp(feats, 8, _gen(1))
    assert out.shape == feats.shape
    assert torch.all(out[1:, 0] >= out[:-1, 0] - 1e-4)  # a warp of a ramp stays monotonic


def test_speed_perturbation_changes_the_duration_by_the_factor() -> None:
    wave = torch.randn(16000)
    faster = speed_perturb(wave, 16000, 1.1)
    slower = speed_perturb(wave, 16000, 0.9)
    assert abs(faster.numel() - 16000 / 1.1) < 20
    assert abs(slower.numel() - 16000 / 0.9) < 20
    assert speed_perturb(wave, 16000, 1.0) is wave


def test_speed_factors_are_drawn_uniformly_from_the_list() -> None:
    generator = _gen(3)
    draws = [draw_speed((0.9, 1.0, 1.1), generator) for _ in range(600)]
    assert {d: draws.count(d) for d in draws}.keys() == {0.9, 1.0, 1.1}
    assert all(150 < draws.count(d) < 250 for d in (0.9, 1.0, 1.1))
    assert draw_speed((), generator) == 1.0


def test_freq_warp_moves_a_formant_by_the_drawn_factor() -> None:
    # A single bright bin (a "formant") at bin 40 of 80 lands at 40 * alpha, alpha in [0.9, 1.1].
    feats = torch.zeros(5, 80)
    feats[:, 40] = 1.0
    positions = set()
    for seed in range(30):
        warped = freq_warp(feats, 0.1, torch.Generator().manual_seed(seed))
        assert warped.shape == feats.shape
        centre = float((warped[0] * torch.arange(80)).sum() / warped[0].sum())
        assert 36.0 - 0.5 <= centre <= 44.0 + 0.5
        positions.add(round(centre))
    assert len(positions) >= 5  # the factor varies between draws
    same = freq_warp(feats, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(same, freq_warp(feats, 0.1, torch.Generator().manual_seed(3)))


def test_a_noise_burst_raises_one_high_pass_block_and_nothing_else() -> None:
    feats = torch.randn(120, 80) * 3 - 4
    for seed in range(20):
        out = noise_burst(feats, 10, (-10.0, 5.0), _gen(seed))
        assert out.shape == feats.shape
        assert torch.all(out >= feats)  # power is added, never taken away
        rows, cols = (out > feats).nonzero(as_tuple=True)
        frames, lowest = rows.unique(), int(cols.min())
        assert 1 <= frames.numel() <= 10
        assert int(frames.max() - frames.min()) + 1 == frames.numel()  # one contiguous run
        assert lowest <= 40
        block = out[frames.min() : frames.max() + 1, lowest:]
        assert torch.all(block > feats[frames.min() : frames.max() + 1, lowest:])
        assert torch.equal(out[:, :lowest], feats[:, :lowest])


def test_the_burst_level_is_relative_to_the_utterance_power() -> None:
    # Shifting every log-mel value by c (a gain) shifts the burst by c too: same output + c.
    feats = torch.randn(60, 80, dtype=torch.float64)
    out = noise_burst(feats, 8, (-5.0, 5.0), _gen(7))
    shifted = noise_burst(feats + 12.0, 8, (-5.0, 5.0), _gen(7))
    torch.testing.assert_close(shifted, out + 12.0)
    # At +10 dB the added power averages 10 times the utterance's mean power in each bin.
    level = torch.linspace(-6.0, 2.0, 80, dtype=torch.float64)  # a constant spectrum
    ratios = []
    for seed in range(200):
        burst = noise_burst(level.repeat(4, 1), 1, (10.0, 10.0), _gen(seed))
        added = burst.exp() - level.exp()
        ratios.append(added[added > 0] / level.exp().expand_as(added)[added > 0])
    assert 9.0 < float(torch.cat(ratios).mean()) < 11.0


def test_noise_bursts_are_part_of_specaugment_and_repeatable() -> None:
    feats = torch.randn(200, 80)
    aug = SpecAugment(SpecAugmentConfig(freq_masks=0, time_masks=0, noise_bursts=3), feats[0])
    out = aug(feats, _gen(2))
    assert torch.all(out >= feats) and torch.any(out > feats)
    assert torch.equal(out, aug(feats, _gen(2)))
    with pytest.raises(ConfigError, match=r"noise_burst_db must be \[low, high\]"):
        SpecAugmentConfig(noise_burst_db=(5.0, -5.0))
    with pytest.raises(ConfigError, match="noise_bursts must be >= 0"):
        SpecAugmentConfig(noise_bursts=-1)


def _ramp(frames: int) -> torch.Tensor:
    return torch.arange(frames, dtype=torch.float32).unsqueeze(1).repeat(1, 3)


def test_tempo_pieces_change_the_length_by_their_factors() -> None:
    feats = torch.randn(230, 80)
    assert torch.equal(tempo_pieces(feats, 50, (1.0, 1.0), _gen()), feats)
    assert tempo_pieces(feats, 50, (2.0, 2.0), _gen()).shape == (460, 80)
    assert tempo_pieces(torch.zeros(0, 80), 50, (2.0, 2.0), _gen()).shape == (0, 80)
    halved = tempo_pieces(feats, 50, (0.5, 0.5), _gen()).shape[0]
    assert abs(halved - 115) <= 5  # one rounding per piece
    ramp = tempo_pieces(_ramp(300), 50, (0.5, 2.0), _gen(3))
    assert torch.all(ramp[1:, 0] >= ramp[:-1, 0])  # time runs forward in every piece
    assert ramp[0, 0] < 1.0 and ramp[-1, 0] > 298.0  # and it still runs from end to end


def test_each_tempo_piece_has_its_own_factor() -> None:
    out = tempo_pieces(_ramp(400), 50, (0.5, 2.0), _gen(1))[:, 0]
    steps = out[1:] - out[:-1]  # a ramp's step is 1 / factor inside a piece
    inner = steps[(steps > 0.3) & (steps < 2.2)]
    assert float(inner.max() / inner.min()) > 1.5


def test_tempo_factors_are_log_uniform() -> None:
    # One piece per utterance: the new length / the old is the factor, so stretching and
    # shrinking are equally likely and the median is sqrt(low * high) = 1.
    ratios = torch.tensor(
        [
            tempo_pieces(torch.zeros(200, 2), 400, (0.5, 2.0), _gen(s)).shape[0] / 200
            for s in range(400)
        ]
    )
    assert 0.42 < float((ratios > 1.0).float().mean()) < 0.58
    assert ratios.min() >= 0.5 and ratios.max() <= 2.0
    assert float((ratios < 0.71).float().mean()) == pytest.approx(0.25, abs=0.07)


def test_tempo_pieces_are_part_of_specaugment_and_repeatable() -> None:
    cfg = SpecAugmentConfig(time_masks=2, time_width=30, tempo_range=(0.6, 1.6))
    aug = SpecAugment(cfg, torch.zeros(80))
    lengths = {aug(torch.randn(200, 80), _gen(s)).shape[0] for s in range(10)}
    assert len(lengths) > 1
    feats = torch.randn(200, 80)
    assert torch.equal(aug(feats, _gen(2)), aug(feats, _gen(2)))
    with pytest.raises(ConfigError, match=r"tempo_range must be \[\] or \[low, high\]"):
        SpecAugmentConfig(tempo_range=(1.5, 0.5))
    with pytest.raises(ConfigError, match="tempo_piece_frames must be >= 1"):
        SpecAugmentConfig(tempo_range=(0.5, 1.5), tempo_piece_frames=0)


def test_background_noise_has_the_drawn_snr_and_a_tilt_within_its_bound() -> None:
    power = torch.full((400, 80), 2.0).log()  # every cell at power 2
    tilts = []
    for seed, snr in enumerate((20.0, 10.0, 0.0, 15.0)):
        out = background_noise(power, (snr, snr), 12.0, _gen(seed))
        assert bool((out >= power).all())  # noise never lowers a cell
        added = out.double().exp() - 2.0
        # the noise's mean power is the utterance's mean power over 10^(snr / 10)
        assert float(added.mean()) == pytest.approx(2.0 / 10 ** (snr / 10), rel=0.03)
        tilts.append(10 * math.log10(float(added[:, -4:].mean() / added[:, :4].mean())))
    assert all(abs(t) < 12.5 for t in tilts) and max(tilts) - min(tilts) > 3.0  # drawn, bounded
    flat = background_noise(power, (10.0, 10.0), 0.0, _gen(0)).double().exp() - 2.0
    assert float(flat[:, -4:].mean() / flat[:, :4].mean()) == pytest.approx(1.0, rel=0.05)


def test_background_noise_is_off_unless_configured_and_follows_noise_prob() -> None:
    feats = torch.randn(120, 80)
    plain = SpecAugmentConfig(freq_masks=0, time_masks=0)
    assert torch.equal(SpecAugment(plain, feats[0])(feats, _gen(2)), feats)
    never = SpecAugmentConfig(freq_masks=0, time_masks=0, noise_snr=(10.0, 30.0), noise_prob=0.0)
    assert torch.equal(SpecAugment(never, feats[0])(feats, _gen(2)), feats)
    always = SpecAugmentConfig(freq_masks=0, time_masks=0, noise_snr=(10.0, 30.0), noise_prob=1.0)
    noisy = SpecAugment(always, feats[0])
    assert bool((noisy(feats, _gen(2)) > feats).all())
    assert torch.equal(noisy(feats, _gen(2)), noisy(feats, _gen(2)))  # repeatable per seed
    with pytest.raises(ConfigError, match=r"noise_snr must be \[\] or \[low, high\]"):
        SpecAugmentConfig(noise_snr=(30.0, 10.0))
    with pytest.raises(ConfigError, match=r"noise_prob must be in \[0, 1\]"):
        SpecAugmentConfig(noise_prob=1.5)
