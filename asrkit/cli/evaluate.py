"""`attnasr evaluate --model EXP --manifest M.jsonl --out DIR` | `--ref REF --hyp HYP --out DIR`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from asrkit.cli.common import (
    AttWindowOption,
    BeamOption,
    CtcWeightOption,
    CtcWindowOption,
    DeviceOption,
    LengthBonusOption,
    LengthPenaltyOption,
    LmOption,
    LmWeightOption,
    NbestOption,
    console,
    fusion_overrides,
    resolve_device,
    user_errors,
)
from asrkit.io import EXIT_PARTIAL, UserError


class Normalizer(str, Enum):
    librispeech = "librispeech"
    english = "english"
    none = "none"


@user_errors
def evaluate_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder for the report files.")],
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            help="Experiment folder or .pt file to decode with; repeat it to decode with an "
            "ensemble (mean scores; one tokenizer).",
        ),
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="Manifest to decode (with --model).")
    ] = None,
    ref: Annotated[
        Path | None, typer.Option("--ref", help="Reference: trn, Kaldi text or JSON lines.")
    ] = None,
    hyp: Annotated[
        Path | None, typer.Option("--hyp", help="Hypothesis of any system, same utterance ids.")
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option("--compare", help="Another evaluate folder: significance tests vs it."),
    ] = None,
    normalizer: Annotated[
        Normalizer, typer.Option("--normalizer", help="Text normalisation of both sides.")
    ] = Normalizer.librispeech,
    beam: BeamOption = None,
    ctc_weight: CtcWeightOption = None,
    ctc_window: CtcWindowOption = None,
    att_window: AttWindowOption = None,
    length_penalty: LengthPenaltyOption = None,
    lm: LmOption = None,
    lm_weight: LmWeightOption = None,
    length_bonus: LengthBonusOption = None,
    nbest: NbestOption = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Utterances decoded together.")
    ] = None,
    device: DeviceOption = "auto",
    worst: Annotated[
        int, typer.Option("--worst", help="Worst utterances listed (and plotted).")
    ] = 10,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Bootstrap replications for CIs.")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite earlier results in --out.")
    ] = False,
    html: Annotated[
        bool,
        typer.Option(
            "--html/--no-html",
            help="Also write OUT/report.html: one self-contained page (tables, every utterance's"
            " coloured alignment, attention plots, audio players).",
        ),
    ] = True,
) -> None:
    """Decode and score a test set (WER, CER, SER, CIs, breakdowns), or score given files.

    Exit codes: 0 done; 1 an error (or no utterance could be decoded); 3 the report is
    written but some utterances could not be decoded (scored as empty, named in report.json).
    """
    from asrkit.evaluation import ModelOptions, ScoringOptions, evaluate_files, evaluate_model

    opts = ScoringOptions(normalizer.value, bootstrap, seed, worst, compare, force, html)
    if model and manifest is not None and ref is None and hyp is None:
        device_name = resolve_device(device)
        decode = ModelOptions(
            beam,
            ctc_weight,
            batch_size,
            device_name,
            ctc_window=ctc_window,
            att_window=att_window,
            length_penalty=length_penalty,
            fusion=fusion_overrides(lm, lm_weight, length_bonus, nbest),
        )
        report = evaluate_model(model, manifest, out, opts, decode, console=console)
        if report.meta["undecoded"]:
            raise typer.Exit(EXIT_PARTIAL)
    elif ref is not None and hyp is not None and not model and manifest is None:
        evaluate_files(ref, hyp, out, opts, console=console)
    else:
        raise UserError("give either --model and --manifest, or --ref and --hyp")


def register(app: typer.Typer) -> None:
    """Add `evaluate` to `app`."""
    app.command("evaluate")(evaluate_command)
