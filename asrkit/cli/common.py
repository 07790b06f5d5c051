"""What every command shares: one-line errors for user mistakes, the console, devices."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from asrkit.config import ConfigError
from asrkit.io import EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError, one_line

console = Console(stderr=True)  # progress and tables on stderr; stdout is for results
F = TypeVar("F", bound=Callable[..., Any])

DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]

# Decoding options that transcribe and evaluate share.
BeamOption = Annotated[int | None, typer.Option("--beam", help="Beam width (1 = greedy).")]
CtcWeightOption = Annotated[
    float | None, typer.Option("--ctc-weight", help="Joint CTC weight in beam search.")
]
CtcWindowOption = Annotated[
    int | None,
    typer.Option(
        "--ctc-window", help="CTC scoring within N encoder frames of the attention (0 = all)."
    ),
]
LengthPenaltyOption = Annotated[
    float | None,
    typer.Option(
        "--length-penalty",
        help="Beam search ranks finished hypotheses by score / (tokens + 1)**P (0 = none).",
    ),
]
AttWindowOption = Annotated[
    int | None,
    typer.Option(
        "--att-window",
        help="Global attention reads at most N encoder frames past its last peak (0 = all).",
    ),
]
LmOption = Annotated[
    Path | None,
    typer.Option("--lm", help="Language model (LM_DIR from train-lm) fused in the search."),
]
LmWeightOption = Annotated[
    float | None, typer.Option("--lm-weight", help="Weight of the LM's log-probs (fusion).")
]
LengthBonusOption = Annotated[
    float | None,
    typer.Option("--length-bonus", help="Score added per output unit (counters short output)."),
]


NbestOption = Annotated[
    int | None,
    typer.Option("--nbest", help="Also write nbest.jsonl: the N best hypotheses with scores."),
]


def fusion_overrides(
    lm: Path | None, lm_weight: float | None, bonus: float | None, nbest: int | None = None
) -> dict[str, object]:
    """The `DecodeOptions` overrides of --lm, --lm-weight, --length-bonus and --nbest (None
    keeps the experiment's decode config)."""
    path = str(lm) if lm is not None else None
    return {"lm": path, "lm_weight": lm_weight, "length_bonus": bonus, "nbest": nbest}


def user_errors(func: F) -> F:
    """Turn a user mistake into `error: <message>` on one line and exit code 1, never a
    traceback; Ctrl-C exits 130 after the command has had its chance to clean up."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (UserError, ConfigError) as exc:
            console.print(f"[bold red]error:[/] {one_line(exc)}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def resolve_device(name: str) -> str:
    """`auto` picks CUDA when present, else the CPU."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r} (valid: auto, cpu, cuda)")
    return name
