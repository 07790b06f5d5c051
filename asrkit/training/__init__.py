"""Training: the loop, schedules, checkpoints, plots, DDP and `train()` (see run.py)."""
