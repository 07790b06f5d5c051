"""Language-model checkpoints: one self-describing file, like the acoustic model's.

    {"format": "attnasr-lm-v1", "config": to_dict(LMExperimentConfig), "tokenizer": dict,
     "model": state_dict, "train_state": dict | None}

An LM directory holds `final.pt` (the epoch with the best dev perplexity) and
`checkpoints/last.pt` (what `--resume` continues from).

Example:
    >>> lm = load_lm(Path("exp/lm_char"))  # doctest: +SKIP
    >>> check_units(lm, acoustic.tokenizer, "exp/lm_char", "exp/mini")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from asrkit.checkpoint import load_checkpoint
from asrkit.config import ConfigError, from_dict, to_dict
from asrkit.io import UserError, atomic_open
from asrkit.lm.config import LMExperimentConfig
from asrkit.lm.model import LanguageModel, build_lm
from asrkit.tokenizer import Tokenizer, tokenizer_from_dict

LM_FORMAT = "attnasr-lm-v1"
LM_REQUIRED = ("format", "config", "tokenizer", "model")


@dataclass(frozen=True)
class LoadedLM:
    """A language model ready for fusion or rescoring (eval mode)."""

    model: LanguageModel
    config: LMExperimentConfig
    tokenizer: Tokenizer
    path: Path


def save_lm(
    path: Path,
    model: LanguageModel,
    cfg: LMExperimentConfig,
    tokenizer: Tokenizer,
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write an LM checkpoint atomically."""
    data = {
        "format": LM_FORMAT,
        "config": to_dict(cfg),
        "tokenizer": tokenizer.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_state": train_state,
    }
    with atomic_open(Path(path), "wb") as handle:
        torch.save(data, handle)


def is_arpa(path: Path) -> bool:
    """A word n-gram in ARPA text (`asrkit.lm.ngram`), by its name: .arpa or .arpa.gz."""
    return path.name.endswith((".arpa", ".arpa.gz"))


def resolve_lm(path: Path) -> Path:
    """An LM_DIR -> LM_DIR/final.pt, else LM_DIR/checkpoints/last.pt, else LM_DIR/lm.arpa
    (`train-lm --kind ngram`); a file as is."""
    path = Path(path)
    if not path.is_dir():
        return path
    for candidate in (path / "final.pt", path / "checkpoints" / "last.pt", path / "lm.arpa"):
        if candidate.is_file():
            return candidate
    raise UserError(f"{path}: no language model found (expected final.pt, run 'attnasr train-lm')")


def load_lm(path: Path, device: str = "cpu") -> LoadedLM:
    """Rebuild the language model of an LM_DIR or .pt file, in eval mode.

    Raises:
        UserError: no checkpoint, an acoustic model's checkpoint, or a damaged file.
    """
    file = resolve_lm(path)
    data = load_checkpoint(file, LM_FORMAT, LM_REQUIRED)
    try:
        cfg = from_dict(LMExperimentConfig, data["config"])
    except ConfigError as exc:
        raise UserError(f"{file}: bad config in LM checkpoint ({exc})") from exc
    try:
        tokenizer = tokenizer_from_dict(data["tokenizer"])
    except (UserError, AttributeError) as exc:
        raise UserError(f"{file}: bad tokenizer in LM checkpoint ({exc})") from exc
    model = build_lm(cfg.model, tokenizer.vocab_size)
    try:
        model.load_state_dict(data["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{file}: weights do not match the stored config ({first})") from exc
    return LoadedLM(model.to(device).eval(), cfg, tokenizer, file)


def check_units(lm: LoadedLM, tokenizer: Tokenizer, lm_name: object, model_name: object) -> None:
    """Fusion adds the LM's log-probability of each unit to the model's: the two must share
    one vocabulary, unit for unit."""
    if lm.tokenizer.pieces != tokenizer.pieces:
        raise UserError(
            f"{lm_name}: its units ({lm.tokenizer.kind}, {lm.tokenizer.vocab_size}) are not those"
            f" of {model_name} ({tokenizer.kind}, {tokenizer.vocab_size}); train the LM with"
            " --model or --tokenizer of that model"
        )
