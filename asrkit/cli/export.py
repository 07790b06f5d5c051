"""`attnasr export EXP --format onnx|torchscript --out DIR`: a model to run outside training."""

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
        ExportFormat, typer.Option("--format", help="onnx or torchscript.")
    ] = ExportFormat.onnx,
    force: Annotated[
        bool, typer.Option("--force", help="Replace earlier exported files in --out.")
    ] = False,
) -> None:
    """Export the encoder and one decoder step (its attention state as explicit inputs and
    outputs) as ONNX graphs or traced TorchScript, with what a runtime needs to decode:
    `asrkit.export.onnx_runtime.OnnxRecognizer` decodes either folder, greedy or beam search
    (ONNX: with ONNX Runtime and NumPy alone, pip install "attnasr[onnx]")."""
    from asrkit.checkpoint import load_model

    if fmt is ExportFormat.torchscript:
        from asrkit.export.torchscript_export import export_torchscript

        loaded = load_model(model, "cpu")
        with console.status("tracing ..."):
            paths = export_torchscript(loaded, out, force)
        console.print(f"wrote {', '.join(p.name for p in paths)} to {out}", highlight=False)
        return
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UserError(
            f'ONNX export needs onnx and onnxruntime: pip install "attnasr[onnx]"'
            f" ({exc.name} is missing)"
        ) from exc
    from asrkit.export.onnx_export import export_onnx

    loaded = load_model(model, "cpu")
    with console.status("exporting (about a minute on a CPU) ..."):
        paths = export_onnx(loaded, out, force)
    console.print(f"wrote {', '.join(p.name for p in paths)} to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `export` to `app`."""
    app.command("export")(export_command)
