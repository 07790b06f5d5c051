"""Self-describing checkpoints: a model loads from one file, with no other input.

A checkpoint is a dict saved with `torch.save` (atomically):

    {"format": "attnasr-v1", "config": to_dict(ExperimentConfig), "tokenizer": tok.to_dict(),
     "cmvn": {"mean": [...], "std": [...]}, "model": state_dict, "train_state": dict | None,
     "longest_training_seconds": float | None}

Example:
    >>> loaded = load_model(Path("exp/las_char"))          # doctest: +SKIP
    >>> loaded.model.encode(feats, lengths)                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from asrkit.config import ConfigError, ExperimentConfig, from_dict, to_dict
from asrkit.io import UserError, atomic_open, require_file
from asrkit.model.las import LAS
from asrkit.tokenizer import Tokenizer, tokenizer_from_dict

if TYPE_CHECKING:
    from asrkit.decoding.options import DecodeOptions

FORMAT = "attnasr-v1"
REQUIRED_KEYS = ("format", "config", "tokenizer", "model")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for decoding.

    Attributes:
        model: in eval mode, on the requested device.
        config: the experiment config it was trained with.
        tokenizer: the tokenizer it was trained with.
        path: the .pt file that was read.
        longest_training_seconds: the longest utterance it was trained on (None in checkpoints
            of older versions); longer audio is cut into segments no longer than this.
    """

    model: LAS
    config: ExperimentConfig
    tokenizer: Tokenizer
    path: Path
    longest_training_seconds: float | None = None

    def decode_options(self, **overrides: object) -> DecodeOptions:
        """The config's decode options with overrides (None = keep the config's value).

        Unless overridden, audio is cut into segments no longer than the longest training
        utterance (at least 2 s): an attention decoder given longer audio than it was trained
        on tends to lose its place and loop.
        """
        from asrkit.decoding.options import DecodeOptions

        opts = DecodeOptions.from_config(self.config.decode, **overrides)
        longest = self.longest_training_seconds
        if overrides.get("max_segment_seconds") is None and longest is not None:
            limit = max(min(opts.max_segment_seconds, longest), 2.0)
            opts = dataclasses.replace(opts, max_segment_seconds=limit)
        return opts


def save_checkpoint(
    path: Path,
    model: LAS,
    cfg: ExperimentConfig,
    tokenizer: Tokenizer,
    train_state: dict[str, Any] | None = None,
    longest_training_seconds: float | None = None,
) -> None:
    """Write a checkpoint atomically (a crash never leaves a truncated file at `path`).

    Args:
        path: destination .pt file; parent directories are created.
        model: the model; its state dict is copied to CPU.
        cfg: the config the model was built from.
        tokenizer: the tokenizer of its vocabulary.
        train_state: optimizer/scheduler/epoch state for resuming, or None.
        longest_training_seconds: the longest training utterance (bounds decoding segments).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    data = {
        "format": FORMAT,
        "config": to_dict(cfg),
        "tokenizer": tokenizer.to_dict(),
        "cmvn": {"mean": state["feat_mean"].tolist(), "std": state["feat_std"].tolist()},
        "model": state,
        "train_state": train_state,
        "longest_training_seconds": longest_training_seconds,
    }
    with atomic_open(Path(path), "wb") as handle:
        torch.save(data, handle)


def load_checkpoint(
    path: Path, fmt: str = FORMAT, required: tuple[str, ...] = REQUIRED_KEYS
) -> dict[str, Any]:
    """Read a checkpoint file on CPU and check its format (`fmt`: an acoustic model's, or
    the language model's `asrkit.lm.checkpoint.LM_FORMAT`) and keys.

    Raises:
        UserError: the file is missing, unreadable or not a checkpoint of that format.
    """
    path = require_file(Path(path), "checkpoint")
    try:
        # weights_only=False: train_state may hold optimizer state with Python scalars; only
        # load checkpoints you trust (as with any torch checkpoint).
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        EOFError,
        RuntimeError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        OverflowError,
        MemoryError,
        UnicodeDecodeError,
        OSError,  # torch's zip reader fails so on a damaged central directory
    ) as exc:
        # A damaged file makes the unpickler fail in any of these ways; the reason's words
        # go on one line, cut short (zip and pickle errors can be long).
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint ({reason})") from exc
    if not isinstance(data, dict) or data.get("format") != fmt:
        found = data.get("format") if isinstance(data, dict) else None
        what = f"format {found!r}" if isinstance(found, str) else "no attnasr format"
        raise UserError(f"{path}: not an attnasr checkpoint of format {fmt!r} (it has {what})")
    missing = [key for key in required if key not in data]
    if missing:
        raise UserError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return data


def resolve_checkpoint(path: Path) -> Path:
    """A .pt file as is; an experiment dir -> EXP/final.pt, else EXP/checkpoints/last.pt."""
    path = Path(path)
    if not path.is_dir():
        return path
    for candidate in (path / "final.pt", path / "checkpoints" / "last.pt"):
        if candidate.is_file():
            return candidate
    raise UserError(f"{path}: no checkpoint found (expected final.pt or checkpoints/last.pt)")


def load_model(path: Path, device: str = "cpu") -> LoadedModel:
    """Rebuild the model of a checkpoint file or experiment directory, in eval mode.

    Args:
        path: a .pt file, or an experiment dir (EXP/final.pt, else EXP/checkpoints/last.pt).
        device: "cpu", "cuda", ...

    Raises:
        UserError: no checkpoint, unreadable file, or weights that do not fit the config.
    """
    file = resolve_checkpoint(path)
    data = load_checkpoint(file)
    try:
        cfg = from_dict(ExperimentConfig, data["config"])
    except ConfigError as exc:
        raise UserError(f"{file}: bad config in checkpoint ({exc})") from exc
    if not isinstance(data["tokenizer"], dict):
        raise UserError(f"{file}: bad tokenizer in checkpoint")
    try:
        tokenizer = tokenizer_from_dict(data["tokenizer"])
    except UserError as exc:
        raise UserError(f"{file}: bad tokenizer in checkpoint ({exc})") from exc
    model = LAS(cfg, tokenizer.vocab_size)
    try:
        model.load_state_dict(data["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{file}: weights do not match the stored config ({first})") from exc
    longest = data.get("longest_training_seconds")
    return LoadedModel(model.to(device).eval(), cfg, tokenizer, file, longest)


def average_checkpoints(paths: list[Path]) -> dict[str, Tensor]:
    """Element-wise mean of the model weights of several checkpoints of one model.

    Integer buffers (none in LAS today) are taken from the last checkpoint.

    Raises:
        UserError: no paths, or checkpoints of different models.
    """
    if not paths:
        raise UserError("no checkpoints to average")
    total: dict[str, Tensor] = {}
    last: dict[str, Tensor] = {}
    for path in paths:
        state = load_checkpoint(path)["model"]
        if total and state.keys() != total.keys():
            raise UserError(f"{path}: weights do not match those of {paths[0]}")
        for key, value in state.items():
            if value.is_floating_point():
                total[key] = total.get(key, torch.zeros_like(value, dtype=torch.float64))
                total[key] += value.to(torch.float64)
            else:
                total.setdefault(key, value)
            last[key] = value
    return {
        key: (total[key] / len(paths)).to(last[key].dtype)
        if last[key].is_floating_point()
        else last[key]
        for key in total
    }
