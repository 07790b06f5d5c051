"""asrkit: the library behind the `attnasr` command.

The public API is three functions and `Stream` (recognition while audio arrives); everything
else is importable from its module.

Example:
    >>> import asrkit
    >>> model = asrkit.load_model("exp/mini_global")  # doctest: +SKIP
    >>> for t in asrkit.transcribe(model, ["a.flac", "b.wav"], beam=8):  # doctest: +SKIP
    ...     print(t.id, t.text, [(w.word, w.start) for w in t.words])
    >>> report = asrkit.evaluate(model, "data/dev.jsonl", "exp/mini_global/eval")  # doctest: +SKIP
    >>> report.summary()["wer"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from asrkit.checkpoint import LoadedModel
    from asrkit.decoding import Transcript
    from asrkit.scoring.report import ScoreReport


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a trained model from an experiment folder or a checkpoint file.

    Args:
        path: `attnasr train`'s EXP_DIR (reads `final.pt`, else `checkpoints/last.pt`) or a `.pt`.
        device: "cpu", "cuda" or "auto".

    Returns:
        The model (eval mode), its resolved config and its tokenizer.
    """
    from asrkit.checkpoint import load_model as _load
    from asrkit.cli.common import resolve_device

    return _load(Path(path), resolve_device(device))


def transcribe(
    model: LoadedModel | str | Path | Sequence[LoadedModel | str | Path],
    audio: Sequence[str | Path],
    beam: int | None = None,
    ctc_weight: float | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    att_window: int | None = None,
    lm: str | Path | None = None,
    lm_weight: float | None = None,
) -> list[Transcript]:
    """Transcribe audio files (any libsndfile format, rate and channel count; long files are
    cut at quiet points and stitched).

    Args:
        model: a `load_model` result, or a path to load; a list of them decodes as an
            ensemble (mean scores of models sharing a tokenizer).
        audio: audio file paths.
        beam: beam size (1 = greedy); None keeps the experiment's decode config.
        ctc_weight: joint CTC prefix-scoring weight; None keeps the config.
        batch_size: files decoded together.
        progress: show a progress bar on stderr.
        att_window: global attention reads at most this many encoder frames past its previous
            peak (0 = all frames); None keeps the config.
        lm: a language model (LM_DIR from `attnasr train-lm`) fused in the search, with
            `lm_weight` (> 0); None keeps the config's.

    Returns:
        One `Transcript` (id, text, word timings, hypothesis with its attention) per file.
    """
    from asrkit.decoding import transcribe_files
    from asrkit.decoding.api import ensemble_members

    given = list(model) if isinstance(model, Sequence) and not isinstance(model, str) else [model]
    members = ensemble_members(
        [m if not isinstance(m, str | Path) else load_model(m) for m in given]
    )
    opts = members[0].decode_options(
        beam=beam,
        ctc_weight=ctc_weight,
        batch_size=batch_size,
        att_window=att_window,
        lm=None if lm is None else str(lm),
        lm_weight=lm_weight,
    )
    transcripts, _ = transcribe_files(members, [Path(a) for a in audio], opts, progress=progress)
    return transcripts


def evaluate(
    model: str | Path | Sequence[str | Path],
    manifest: str | Path,
    out_dir: str | Path,
    beam: int | None = None,
    force: bool = False,
    lm: str | Path | None = None,
    lm_weight: float | None = None,
) -> ScoreReport:
    """Decode a manifest with a trained model and write the WER report to `out_dir`.

    Args:
        model: EXP_DIR or checkpoint path; a list of them decodes as an ensemble.
        manifest: JSON-lines manifest with reference texts.
        out_dir: receives report.json, report.md, report.html, ref.trn, hyp.trn,
            utterances.jsonl, alignments.pra, plots/.
        beam: beam size; None keeps the experiment's decode config.
        force: overwrite earlier results in `out_dir`.
        lm: a language model fused in the search, with `lm_weight`; None keeps the config's.

    Returns:
        The report; `report.summary()` is the content of report.json.
    """
    from asrkit.evaluation import ModelOptions, ScoringOptions, evaluate_model

    paths = [Path(model)] if isinstance(model, str | Path) else [Path(m) for m in model]
    return evaluate_model(
        paths,
        Path(manifest),
        Path(out_dir),
        ScoringOptions(force=force),
        ModelOptions(
            beam=beam,
            progress=False,
            fusion={"lm": None if lm is None else str(lm), "lm_weight": lm_weight},
        ),
    )


def __getattr__(name: str) -> object:
    """`asrkit.Stream`: streaming recognition (`asrkit.streaming.Stream`), imported on use."""
    if name == "Stream":
        from asrkit.streaming import Stream

        return Stream
    raise AttributeError(f"module 'asrkit' has no attribute {name!r}")


__all__ = ["Stream", "__version__", "evaluate", "load_model", "transcribe"]
