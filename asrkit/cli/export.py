"""`attnasr export EXP --format onnx --out DIR`: a model to run outside the training stack."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from asrkit.cli.common import console, user_errors
from asrkit.io import UserError


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


@user_errors
def export_command(
    model: Annotated[Path, typer.Argument(help="Experiment folder or .pt checkpoint.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the exported files.")],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="onnx (torchscript is not built yet).")
    ] = ExportFormat.onnx,
    force: Annotated[
        bool, typer.Option("--force", help="Replace earlier exported files in --out.")
    ] = False,
) -> None:
    """Export the encoder and one decoder step (its attention state as explicit inputs and
    outputs) as ONNX graphs, with what a runtime needs to decode: `asrkit.export.onnx_runtime`
    decodes them greedily with ONNX Runtime and NumPy alone (pip install "attnasr[onnx]")."""
    if fmt is ExportFormat.torchscript:
        raise UserError(
            "--format torchscript: not built yet (the listener's length-dependent padding and"
            " the attention registry do not script); use --format onnx"
        )
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UserError(
            f'ONNX export needs onnx and onnxruntime: pip install "attnasr[onnx]"'
            f" ({exc.name} is missing)"
        ) from exc
    from asrkit.checkpoint import load_model
    from asrkit.export.onnx_export import export_onnx

    loaded = load_model(model, "cpu")
    with console.status("exporting (about a minute on a CPU) ..."):
        paths = export_onnx(loaded, out, force)
    console.print(f"wrote {', '.join(p.name for p in paths)} to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `export` to `app`."""
    app.command("export")(export_command)
