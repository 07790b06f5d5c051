"""`attnasr prepare ...`: manifests (LibriSpeech, FSDD digits, your own folder or table),
precomputed features + CMVN, and tokenizers. Each command parses options and calls one library
function from `data_prep` or `asrkit.data.feature_store`."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from asrkit.cli.common import console, user_errors
from asrkit.io import UserError

if TYPE_CHECKING:
    from data_prep.common import PartReport

prepare_app = typer.Typer(
    help="Prepare data: manifests, precomputed features and CMVN, tokenizers.",
    no_args_is_help=True,
)
MIRROR_ENV = "ATTNASR_LIBRISPEECH_URL"  # base URL holding <part>.tar.gz
LM_MIRROR_ENV = "ATTNASR_LM_TEXT_URL"  # base URL holding librispeech-lm-norm.txt.gz
_LISTED_PROBLEMS = 20  # per part; the rest are in <part>.problems.json

Out = Annotated[Path, typer.Option("--out", help="DATA_DIR: where the manifests are written.")]
Jobs = Annotated[int, typer.Option("--jobs", min=1, help="Parallel workers.")]
Force = Annotated[bool, typer.Option("--force", help="Redo outputs that already exist.")]
Strict = Annotated[bool, typer.Option("--strict", help="Exit 1 if any problem was found.")]
Verify = Annotated[
    bool, typer.Option("--verify", help="Decode all audio: finds truncated files (slower).")
]
Name = Annotated[str | None, typer.Option("--name", help="Manifest name (DATA_DIR/NAME.jsonl).")]


def register(app: typer.Typer) -> None:
    """Add the prepare commands to `app`."""
    app.add_typer(prepare_app, name="prepare")


def _summarise(reports: dict[str, PartReport], strict: bool) -> None:
    """Print the per-part table and every problem; with `strict`, problems are an error."""
    table = Table(title="prepared")
    for column in ("part", "utterances", "speakers", "hours", "problems", "status"):
        table.add_column(column, justify="left" if column in ("part", "problems") else "right")
    total = 0
    for name, report in reports.items():
        kinds = Counter(p.kind for p in report.problems)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
        status = "already prepared" if report.skipped else "written"
        table.add_row(
            name,
            str(report.utterances),
            str(report.speakers),
            f"{report.hours:.2f}",
            summary,
            status,
        )
        total += len(report.problems)
    console.print(table)
    for name, report in reports.items():
        if report.skipped and not report.inputs_recorded:
            console.print(
                f"[yellow]{name}: prepared by an older attnasr, which did not record its inputs;"
                " kept unchecked (--force prepares it again)[/]",
                highlight=False,
                soft_wrap=True,
            )
        for problem in report.problems[:_LISTED_PROBLEMS]:
            utt = f" {problem.utt_id}" if problem.utt_id else ""
            where = escape(f"{problem.path} {problem.detail}".strip())
            console.print(f"[yellow]{name}: {problem.kind}{utt}[/] {where}", highlight=False)
        if len(report.problems) > _LISTED_PROBLEMS:
            rest = len(report.problems) - _LISTED_PROBLEMS
            side = report.path.with_name(f"{name}.problems.json")
            console.print(f"[yellow]{name}: ... and {rest} more, see {side}[/]")
        typer.echo(str(report.path))
    if strict and total:
        raise UserError(f"{total} problem(s) found and --strict was given (listed above)")


def _features(manifest: Path, jobs: int, force: bool, cmvn: bool) -> None:
    from asrkit.config import FeaturesConfig
    from asrkit.data.feature_store import (
        cmvn_path,
        cmvn_state,
        compute_cmvn,
        compute_features,
        save_cmvn,
    )

    features = FeaturesConfig()
    npy = compute_features(manifest, features, jobs=jobs, force=force)
    console.print(f"features: {npy}")
    if not cmvn:
        return
    state = cmvn_state(manifest, features)
    if state == "stale" and not force:
        raise UserError(
            f"{cmvn_path(manifest)}: computed from another version of {manifest.name} or other"
            " feature settings; use --force to recompute"
        )
    if force or state == "missing":
        save_cmvn(manifest, features, compute_cmvn(manifest, features, jobs=jobs))
        state = "written"
    note = " (kept; written by an older attnasr, so not checked)" if state == "unrecorded" else ""
    console.print(f"CMVN: {cmvn_path(manifest)}{note}")


@prepare_app.command("librispeech")
@user_errors
def librispeech(
    corpus_dir: Annotated[
        Path, typer.Argument(help="Folder holding LibriSpeech/, or LibriSpeech/ itself.")
    ],
    out: Out,
    parts: Annotated[
        str, typer.Option("--parts", help="Comma-separated parts; default every part present.")
    ] = "",
    jobs: Jobs = 1,
    download: Annotated[
        bool,
        typer.Option(
            "--download",
            help=f"Fetch --parts from openslr first (resumable); ${MIRROR_ENV} sets a mirror.",
        ),
    ] = False,
    force: Force = False,
    strict: Strict = False,
    verify: Verify = False,
    features: Annotated[
        bool, typer.Option("--features", help="Also precompute features and CMVN.")
    ] = False,
) -> None:
    """Write DATA_DIR/<part>.jsonl for each LibriSpeech part, with a summary of problems."""
    from data_prep.download import OPENSLR_URL, download_librispeech
    from data_prep.librispeech import prepare_librispeech

    names = [p.strip() for p in parts.split(",") if p.strip()]
    if download:
        if not names:
            raise UserError("--download needs --parts (e.g. --parts dev-clean,train-clean-100)")
        # A mirror (openslr's US/EU/CN ones, or a local copy) can stand in for the main site.
        download_librispeech(names, corpus_dir, base_url=os.environ.get(MIRROR_ENV, OPENSLR_URL))
    reports = prepare_librispeech(
        corpus_dir, out, parts=names or None, jobs=jobs, force=force, verify=verify
    )
    _summarise(reports, strict)
    if features:
        for report in reports.values():
            _features(report.path, jobs, force, cmvn=True)


@prepare_app.command("folder")
@user_errors
def folder(
    directory: Annotated[Path, typer.Argument(help="Audio files with sibling .txt transcripts.")],
    out: Out,
    name: Name = None,
    jobs: Jobs = 1,
    force: Force = False,
    strict: Strict = False,
    verify: Verify = False,
) -> None:
    """Manifest of a folder of audio files, each transcribed by a .txt of the same name."""
    from data_prep.own_data import prepare_folder

    report = prepare_folder(directory, out, name=name, jobs=jobs, force=force, verify=verify)
    _summarise({report.name: report}, strict)


@prepare_app.command("table")
@user_errors
def table(
    file: Annotated[
        Path, typer.Argument(help="TSV/CSV with columns path and text (optional id, speaker).")
    ],
    out: Out,
    name: Name = None,
    jobs: Jobs = 1,
    force: Force = False,
    strict: Strict = False,
    verify: Verify = False,
) -> None:
    """Manifest of the audio files listed in a TSV or CSV table."""
    from data_prep.own_data import prepare_table

    report = prepare_table(file, out, name=name, jobs=jobs, force=force, verify=verify)
    _summarise({report.name: report}, strict)


@prepare_app.command("fsdd")
@user_errors
def fsdd(
    fsdd_dir: Annotated[Path, typer.Argument(help="The FSDD recordings/ folder.")],
    out: Out,
    strings_per_speaker: Annotated[
        int, typer.Option("--strings-per-speaker", help="Per training speaker; theo gets half.")
    ] = 400,
    min_digits: Annotated[int, typer.Option("--min-digits", help="Shortest string.")] = 2,
    max_digits: Annotated[int, typer.Option("--max-digits", help="Longest string.")] = 6,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same strings.")] = 0,
    force: Force = False,
) -> None:
    """Connected-digit strings: train.jsonl (five speakers) and test.jsonl (theo)."""
    from data_prep.fsdd import prepare_fsdd

    reports = prepare_fsdd(
        fsdd_dir, out, strings_per_speaker, min_digits, max_digits, seed=seed, force=force
    )
    _summarise(reports, strict=False)


@prepare_app.command("lm-text")
@user_errors
def lm_text(
    corpus_dir: Annotated[Path, typer.Argument(help="Folder for librispeech-lm-norm.txt.gz.")],
    out: Annotated[Path, typer.Option("--out", help="The text file to write.")],
    exclude: Annotated[
        list[Path] | None,
        typer.Option("--exclude", help="Drop this manifest's sentences (repeatable: dev, test)."),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download", help=f"Fetch it from openslr first (resumable); ${LM_MIRROR_ENV} mirror."
        ),
    ] = False,
    force: Force = False,
) -> None:
    """The LibriSpeech LM corpus (openslr 11) as one normalised text file for train-lm."""
    from data_prep.lm_text import LM_TEXT_URL, prepare_lm_text

    base = os.environ.get(LM_MIRROR_ENV, LM_TEXT_URL)
    report = prepare_lm_text(corpus_dir, out, exclude or [], download, base, force=force)
    console.print(
        f"{report.sentences} sentences written, {report.excluded} excluded (in --exclude),"
        f" {report.empty} empty",
        highlight=False,
    )
    typer.echo(str(report.path))


@prepare_app.command("features")
@user_errors
def features(
    manifest: Annotated[Path, typer.Argument(help="A manifest DIR/<name>.jsonl.")],
    jobs: Jobs = 1,
    force: Force = False,
    cmvn: Annotated[
        bool, typer.Option("--cmvn/--no-cmvn", help="Also write <name>.cmvn.json.")
    ] = True,
) -> None:
    """Precompute log-mel features (<name>.feats.npy/.json) and CMVN beside MANIFEST."""
    _features(manifest, jobs, force, cmvn)


@prepare_app.command("tokenizer")
@user_errors
def tokenizer(
    manifest: Annotated[Path, typer.Option("--manifest", help="Manifest whose text trains it.")],
    kind: Annotated[str, typer.Option("--kind", help="char, bpe or unigram.")] = "char",
    vocab_size: Annotated[
        int | None, typer.Option("--vocab-size", help="Vocabulary size, for bpe/unigram.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Default: tokenizer.json beside the manifest.")
    ] = None,
    force: Force = False,
) -> None:
    """Train a character or SentencePiece tokenizer on a manifest's transcripts."""
    from data_prep.tokenizer import train_tokenizer

    path = train_tokenizer(manifest, kind=kind, vocab_size=vocab_size, out=out, force=force)
    console.print(f"tokenizer: {path}")
    typer.echo(str(path))
