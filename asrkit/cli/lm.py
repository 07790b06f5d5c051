"""`attnasr train-lm TEXT... --out LM_DIR (--model EXP | --tokenizer TOKENIZER.json)` and
`attnasr tune-weights --model EXP --manifest DEV.jsonl --lm LM_DIR --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from asrkit.cli.common import DeviceOption, console, resolve_device, user_errors
from asrkit.io import UserError

if TYPE_CHECKING:
    from asrkit.tokenizer import Tokenizer


def _units(model: Path | None, tokenizer: Path | None) -> Tokenizer:
    """The acoustic model's units: from its experiment (or checkpoint), or a tokenizer file."""
    if (model is None) == (tokenizer is None):
        raise UserError("give the units to model: --model EXP or --tokenizer TOKENIZER.json")
    if tokenizer is not None:
        from asrkit.tokenizer import load_tokenizer

        return load_tokenizer(tokenizer)
    from asrkit.checkpoint import load_checkpoint, resolve_checkpoint
    from asrkit.tokenizer import tokenizer_from_dict

    assert model is not None
    data = load_checkpoint(resolve_checkpoint(model))
    return tokenizer_from_dict(data["tokenizer"])


def _train_ngram(text: list[Path], out: Path, order: int, force: bool) -> None:
    """`--kind ngram`: LM_DIR/lm.arpa by interpolated absolute discounting (pure Python)."""
    from asrkit.io import atomic_write_text, refuse_overwrite
    from asrkit.lm.data import read_sentences
    from asrkit.lm.ngram import build_arpa

    target = out / "lm.arpa"
    refuse_overwrite([target], force)
    sentences = read_sentences(text)
    atomic_write_text(target, build_arpa(sentences, order))
    console.print(f"{order}-gram of {len(sentences)} sentences: {target}", highlight=False)


@user_errors
def train_lm_command(
    text: Annotated[
        list[Path], typer.Argument(help="Plain text files (a sentence per line) or manifests.")
    ],
    out: Annotated[Path, typer.Option("--out", help="LM_DIR to write.")],
    model: Annotated[
        Path | None, typer.Option("--model", help="Acoustic EXP_DIR or .pt whose units to use.")
    ] = None,
    tokenizer: Annotated[
        Path | None, typer.Option("--tokenizer", help="Or: a tokenizer.json of those units.")
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="lstm, transformer or ngram (a word ARPA model).")
    ] = "lstm",
    order: Annotated[int, typer.Option("--order", help="--kind ngram: the n-gram order.")] = 3,
    valid: Annotated[
        list[Path] | None,
        typer.Option("--valid", help="Dev text (repeatable); default: a held-out 2%."),
    ] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs")] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Stop cleanly after this many minutes.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="model.KEY=V or train.KEY=V (repeatable), e.g. model.hidden=1024."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from LM_DIR/checkpoints/last.pt.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Start over in an LM_DIR that holds a run.")
    ] = False,
    device: DeviceOption = "auto",
) -> None:
    """Train a neural language model over an acoustic model's units, for --lm in transcribe
    and evaluate (shallow fusion) and in rescore."""
    from asrkit.config import apply_overrides
    from asrkit.lm.config import LMExperimentConfig
    from asrkit.lm.train import train_lm

    if kind == "ngram":
        _train_ngram(text, out, order, force)
        return
    options = [f"model.kind={kind}"]
    options += [f"train.max_epochs={max_epochs}"] if max_epochs is not None else []
    options += [f"train.max_minutes={max_minutes}"] if max_minutes is not None else []
    cfg = apply_overrides(LMExperimentConfig(), [*options, *(overrides or [])])
    units = _units(model, tokenizer)
    result = train_lm(text, out, units, cfg, valid, resume, force, resolve_device(device))
    console.print(
        f"best dev perplexity {result.best_dev_perplexity:.3f} per unit after {result.epochs}"
        f" epochs ({result.stop_reason}); LM: {result.lm_dir / 'final.pt'}",
        highlight=False,
    )


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise UserError(f"{option}: expected comma-separated numbers, got {text!r}") from exc
    if not values:
        raise UserError(f"{option}: give at least one value")
    return values


@user_errors
def tune_weights_command(
    model: Annotated[Path, typer.Option("--model", help="Acoustic EXP_DIR or .pt.")],
    manifest: Annotated[Path, typer.Option("--manifest", help="Tuning manifest (dev speakers).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for tune.json and decode.yaml.")],
    lm: Annotated[Path | None, typer.Option("--lm", help="LM_DIR to fuse.")] = None,
    lm_weights: Annotated[str, typer.Option("--lm-weights")] = "0.1,0.2,0.3,0.5,0.7",
    length_bonuses: Annotated[str, typer.Option("--length-bonuses")] = "0,0.5,1",
    ctc_weights: Annotated[
        str, typer.Option("--ctc-weights", help="Default: the model's decode config.")
    ] = "",
    beam: Annotated[int | None, typer.Option("--beam", help="Default: the model's config.")] = None,
    device: DeviceOption = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier tune.json.")] = False,
) -> None:
    """Decode a dev manifest with every combination of fusion weights; keep the best WER."""
    from asrkit.lm.tune import WeightGrid, tune_weights

    grid = WeightGrid(
        _floats(lm_weights, "--lm-weights"),
        _floats(length_bonuses, "--length-bonuses"),
        _floats(ctc_weights, "--ctc-weights") if ctc_weights else (None,),
    )
    rows = tune_weights(
        model, manifest, lm, grid, out, beam, resolve_device(device), force, console
    )
    best = rows[0]
    console.print(
        f"chosen: lm_weight {best['lm_weight']:g}, length_bonus {best['length_bonus']:g},"
        f" ctc_weight {best['ctc_weight']:g} (WER {100 * best['wer']:.2f}%); {out / 'decode.yaml'}",
        highlight=False,
    )


@user_errors
def rescore_command(
    nbest: Annotated[Path, typer.Argument(help="nbest.jsonl of evaluate/transcribe --nbest N.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for hyp.jsonl, rescored.jsonl.")],
    lm: Annotated[
        Path | None, typer.Option("--lm", help="Another LM whose scores replace the list's.")
    ] = None,
    lm_weight: Annotated[float | None, typer.Option("--lm-weight")] = None,
    ctc_weight: Annotated[float | None, typer.Option("--ctc-weight")] = None,
    length_bonus: Annotated[float | None, typer.Option("--length-bonus")] = None,
    length_penalty: Annotated[float | None, typer.Option("--length-penalty")] = None,
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="References: also write OUT/report/.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace earlier outputs.")] = False,
) -> None:
    """Re-rank N-best lists with other weights or another LM, without decoding again
    (weights not given stay as decoded)."""
    from asrkit.evaluation import ScoringOptions, evaluate_files
    from asrkit.lm.rescore import rescore_file

    overrides = {
        "lm_weight": lm_weight,
        "ctc_weight": ctc_weight,
        "length_bonus": length_bonus,
        "length_penalty": length_penalty,
    }
    hyp = rescore_file(nbest, out, overrides, lm, force)
    console.print(f"wrote {hyp} and {out / 'rescored.jsonl'}")
    if manifest is not None:
        evaluate_files(manifest, hyp, out / "report", ScoringOptions(force=force), console)


def register(app: typer.Typer) -> None:
    """Add `train-lm`, `tune-weights` and `rescore` to `app`."""
    app.command("train-lm")(train_lm_command)
    app.command("tune-weights")(tune_weights_command)
    app.command("rescore")(rescore_command)
