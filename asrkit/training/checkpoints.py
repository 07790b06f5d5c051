"""Which checkpoints a run keeps: the last one (with the resume state) and the best k by dev WER.

Files, all written atomically by `asrkit.checkpoint.save_checkpoint`:
    EXP/checkpoints/last.pt       model + `train_state` (optimizer, RNG, counters): resume point
    EXP/checkpoints/epoch-<n>.pt  model only, kept while among the best `keep_best` by dev WER
                                  (`epoch-<n>-partial.pt`: an epoch cut short by the time budget)
    EXP/final.pt                  the average of the kept epoch checkpoints (what `--model` loads)

A checkpoint leaves the best list only after its replacement is safely on disk, so running out
of space while saving never costs an existing checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from asrkit.checkpoint import average_checkpoints, save_checkpoint
from asrkit.config import ExperimentConfig
from asrkit.io import UserError
from asrkit.tokenizer import Tokenizer


def epoch_checkpoint_name(epoch: int, partial: bool = False) -> str:
    """File name under checkpoints/ of an epoch's weights (1-based `epoch`)."""
    return f"epoch-{epoch}-partial.pt" if partial else f"epoch-{epoch}.pt"


def dev_rank(wer: float, cer: float, loss: float) -> tuple[float, float, float]:
    """Sort key of an epoch's dev scores (lower is better), shared by the checkpoint keeper
    and early stopping.

    WER at or above 100% says nothing (a model that has not aligned yet, or has just aligned
    and still loops in greedy decoding, scores 105% and 215% alike): such epochs tie and are
    ordered by the teacher-forced dev loss, which keeps falling, instead of by a noisy CER.

    >>> dev_rank(2.15, 0.9, 1.2) < dev_rank(1.05, 0.6, 1.4)
    True
    """
    capped = min(wer, 1.0)
    return (capped, cer if capped < 1.0 else 0.0, loss)


@dataclass(frozen=True)
class Candidate:
    """A kept checkpoint: its file name under checkpoints/ and its dev WER, CER and loss."""

    name: str
    wer: float
    epoch: int
    cer: float = 0.0
    loss: float = 0.0  # teacher-forced dev loss

    @property
    def rank(self) -> tuple[float, float, float, int]:
        return (*dev_rank(self.wer, self.cer, self.loss), -self.epoch)


class CheckpointKeeper:
    """Saves last/epoch checkpoints, prunes to the best k and averages them into final.pt.

    Args:
        exp_dir: the experiment directory.
        model: the (unwrapped) model whose weights are saved.
        cfg: the resolved config stored in every checkpoint.
        tokenizer: stored in every checkpoint, so a checkpoint is self-contained.
        keep_best: how many epoch checkpoints to keep and average.
        longest_training_seconds: stored in every checkpoint (bounds decoding segments).
    """

    def __init__(
        self,
        exp_dir: Path,
        model: nn.Module,
        cfg: ExperimentConfig,
        tokenizer: Tokenizer,
        keep_best: int,
        longest_training_seconds: float | None = None,
    ) -> None:
        self.dir = Path(exp_dir) / "checkpoints"
        self.final_path = Path(exp_dir) / "final.pt"
        self.model = model
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.keep_best = max(1, keep_best)
        self.longest_training_seconds = longest_training_seconds
        self.best: list[Candidate] = []

    @property
    def last_path(self) -> Path:
        return self.dir / "last.pt"

    def _save(self, path: Path, model: nn.Module, train_state: dict[str, Any] | None) -> None:
        try:
            save_checkpoint(
                path,
                model,
                self.cfg,
                self.tokenizer,
                train_state=train_state,
                longest_training_seconds=self.longest_training_seconds,
            )
        except OSError as exc:
            raise UserError(
                f"{path}: cannot save checkpoint ({exc.strerror or exc}); "
                "the previous checkpoint is kept"
            ) from exc

    def save_last(self, train_state: dict[str, Any]) -> None:
        """Write last.pt with the state needed to resume exactly."""
        self._save(self.last_path, self.model, train_state)

    def add_epoch(
        self, epoch: int, wer: float, cer: float, partial: bool = False, loss: float = 0.0
    ) -> bool:
        """Save the current weights as a candidate; returns True when it is among the best."""
        name = epoch_checkpoint_name(epoch, partial)
        others = [c for c in self.best if c.name != name]
        ranked = sorted([*others, Candidate(name, wer, epoch, cer, loss)], key=lambda c: c.rank)
        keep = ranked[: self.keep_best]
        if all(c.name != name for c in keep):
            return False
        self._save(self.dir / name, self.model, None)
        dropped = [c for c in others if c not in keep]
        self.best = keep
        for cand in dropped:  # only now: the new file is safely written
            if cand.name != name:
                (self.dir / cand.name).unlink(missing_ok=True)
        return True

    def finalize(self) -> Path:
        """Average the kept checkpoints (or take the current weights) into final.pt."""
        paths = [self.dir / c.name for c in self.best if (self.dir / c.name).is_file()]
        model = self.model
        if paths:
            model = copy.deepcopy(self.model)
            model.load_state_dict(average_checkpoints(paths))
        self._save(self.final_path, model, None)
        return self.final_path

    def state_dict(self) -> list[dict[str, Any]]:
        return [
            {"name": c.name, "wer": c.wer, "epoch": c.epoch, "cer": c.cer, "loss": c.loss}
            for c in self.best
        ]

    def load_state_dict(self, rows: list[dict[str, Any]]) -> None:
        self.best = [
            Candidate(r["name"], r["wer"], r["epoch"], r["cer"], r.get("loss", 0.0)) for r in rows
        ]
