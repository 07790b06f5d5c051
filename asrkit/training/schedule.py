"""Learning-rate and scheduled-sampling schedules: pure functions of the step or epoch.

Pure functions (no hidden counters) make the schedules trivially exact across a resume: the
optimizer's LambdaLR only stores the step number.

Example:
    >>> cfg = OptimConfig(lr=1e-3, warmup_steps=10, decay="constant")
    >>> [round(lr_at(s, cfg), 6) for s in (0, 4, 9, 100)]
    [0.0001, 0.0005, 0.001, 0.001]
"""

from __future__ import annotations

import math

import torch

from asrkit.config import OptimConfig, TrainConfig
from asrkit.io import UserError


def lr_at(step: int, cfg: OptimConfig, total_steps: int = 0) -> float:
    """Learning rate of optimizer step `step` (0-based).

    Linear warm-up to `cfg.lr` over `warmup_steps`, then `noam` (inverse square root of the
    step, the Transformer schedule), `cosine` (to `min_lr` at `total_steps`) or `constant`;
    never below `min_lr` after the warm-up.
    """
    warmup = max(1, cfg.warmup_steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.decay == "constant":
        return cfg.lr
    if cfg.decay == "noam":
        return max(cfg.min_lr, cfg.lr * math.sqrt(warmup / (step + 1)))
    if cfg.decay == "cosine":
        span = max(1, total_steps - warmup)
        progress = min(1.0, (step - warmup) / span)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))
    raise UserError(f"unknown optim.decay {cfg.decay!r} (valid: noam, cosine, constant)")


def build_optimizer(
    params: list[torch.nn.Parameter], cfg: OptimConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam or AdamW plus a LambdaLR that follows `lr_at`."""
    if cfg.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay
        )
    elif cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise UserError(f"unknown optim.optimizer {cfg.optimizer!r} (valid: adam, adamw)")
    lr_at(cfg.warmup_steps, cfg, total_steps)  # validates cfg.decay before training starts
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, cfg, total_steps) / cfg.lr
    )
    return optimizer, scheduler


def sampling_prob_at(epoch: int, cfg: TrainConfig) -> float:
    """Scheduled sampling probability for 0-based `epoch`.

    Zero for the first `sampling_warmup_epochs` (the speller must first learn to use the
    reference history), then a linear ramp over as many epochs again up to `sampling_prob`.
    """
    if cfg.sampling_prob <= 0 or epoch < cfg.sampling_warmup_epochs:
        return 0.0
    ramp = max(1, cfg.sampling_warmup_epochs)
    return cfg.sampling_prob * min(1.0, (epoch - cfg.sampling_warmup_epochs + 1) / ramp)


def guide_weight_at(epoch: int, cfg: TrainConfig) -> float:
    """Guided-attention loss weight for 0-based `epoch`: `guide_weight` fading linearly to 0.

    The diagonal prior only has to start the alignment; kept on, it would fight the real
    speaking rate (pauses, fast passages), so it is gone after `guide_epochs` epochs.
    """
    if cfg.guide_weight <= 0 or epoch >= cfg.guide_epochs:
        return 0.0
    return cfg.guide_weight * (1.0 - epoch / max(1, cfg.guide_epochs))
