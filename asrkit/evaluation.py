"""`attnasr evaluate` as library functions: decode-and-score a model, or score given files.

Both modes end the same way: a `ScoreReport` written to an output folder (see
`asrkit.scoring.report`), optionally compared with another evaluate folder (`compare.json`).
The model mode adds the real-time factor, attention-health flags for every utterance and
attention plots of the worst ones (`plots/<id>.png`).

Example:
    >>> report = evaluate_files(Path("ref.trn"), Path("hyp.txt"), Path("out"))  # doctest: +SKIP
    >>> report.summary()["wer"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from asrkit.decoding.writers import write_nbest
from asrkit.io import UserError, ensure_writable_dir, file_sha256
from asrkit.scoring.compare import (
    compare_with,
    print_comparison,
    read_other,
    write_comparison,
)
from asrkit.scoring.formats import read_transcripts
from asrkit.scoring.health import HealthFlags, attention_health
from asrkit.scoring.html import write_html
from asrkit.scoring.render import print_summary
from asrkit.scoring.report import ScoreReport, score

if TYPE_CHECKING:
    from asrkit.checkpoint import LoadedModel
    from asrkit.data.manifest import Utterance
    from asrkit.decoding import DecodeOptions, DecodeTiming, Transcript

OUTPUTS = ("report.json", "report.md", "ref.trn", "hyp.trn", "utterances.jsonl", "nbest.jsonl")
OUTPUTS += ("alignments.pra", "compare.json", "report.html")


@dataclass(frozen=True)
class ScoringOptions:
    """What both modes share."""

    normalizer: str = "librispeech"  # librispeech | english | none
    bootstrap: int = 1000  # bootstrap replications for the WER CI and the comparison
    seed: int = 0  # bootstrap seed
    worst: int = 10  # worst utterances listed (and plotted in model mode)
    compare: Path | None = None  # another evaluate output folder to test against
    force: bool = False  # overwrite earlier results in the output folder
    html: bool = True  # also write report.html (one self-contained page for a browser)

    def __post_init__(self) -> None:
        if self.bootstrap < 10:
            raise UserError(f"--bootstrap must be at least 10, got {self.bootstrap}")
        if self.worst < 0:
            raise UserError(f"--worst must not be negative, got {self.worst}")


def prepare_out_dir(out_dir: Path, force: bool) -> Path:
    """Create `out_dir`; refuse one holding earlier results unless `force` (then clear them)."""
    out_dir = Path(out_dir)
    plots = sorted((out_dir / "plots").glob("*.png")) if (out_dir / "plots").is_dir() else []
    earlier = [out_dir / name for name in OUTPUTS if (out_dir / name).exists()] + plots
    if earlier and not force:
        raise UserError(
            f"{out_dir}: holds earlier results ({earlier[0].name}); use --force to overwrite"
        )
    ensure_writable_dir(out_dir)
    for path in earlier:  # stale files of an earlier run would be mistaken for this one's
        path.unlink()
    return out_dir


def _finish(report: ScoreReport, out_dir: Path, opts: ScoringOptions, console: Console) -> None:
    report.write(out_dir, worst=opts.worst)
    print_summary(report, console, worst=min(opts.worst, 5))
    result = other_hyps = None
    if opts.compare is not None:
        other = read_other(opts.compare)  # read once: the tests and the HTML page use it
        result = compare_with(report, opts.compare, opts.bootstrap, opts.seed, other)
        write_comparison(result, out_dir)
        print_comparison(result, console)
        other_hyps = {utt_id: str(row["hyp"]) for utt_id, row in other[1].items()}
    console.print(f"wrote {out_dir}/report.json, report.md, utterances.jsonl, alignments.pra")
    if opts.html:
        page = write_html(report, out_dir, result, other_hyps)
        console.print(f"open {page} in a browser", highlight=False)


def evaluate_files(
    ref: Path,
    hyp: Path,
    out_dir: Path,
    opts: ScoringOptions | None = None,
    console: Console | None = None,
) -> ScoreReport:
    """Score a hypothesis file against a reference file (trn, Kaldi text or JSON lines).

    Args:
        ref: reference transcripts; speakers and durations are read when it is a manifest.
        hyp: hypothesis transcripts of any system, with the same utterance ids.
        out_dir: output folder (see `ScoreReport.write`).
        opts: normaliser, bootstrap, comparison, overwrite.
        console: where the tables go (stderr by default).

    Raises:
        UserError: unreadable files, different utterance ids (named), an empty reference,
            or an output folder with earlier results and no `force`.
    """
    opts = opts or ScoringOptions()
    console = console or Console(stderr=True)
    out_dir = prepare_out_dir(out_dir, opts.force)
    refs, hyps = read_transcripts(ref), read_transcripts(hyp)
    report = score(
        refs.texts,
        hyps.texts,
        normalizer=opts.normalizer,
        speakers=refs.speakers or hyps.speakers or None,
        durations=refs.durations or hyps.durations or None,
        audio=_resolved(refs.audio, Path(ref).parent) or _resolved(hyps.audio, Path(hyp).parent),
        bootstrap=opts.bootstrap,
        seed=opts.seed,
        rtf=None,
        meta={"mode": "files", "ref": str(ref), "hyp": str(hyp)},
    )
    _finish(report, out_dir, opts, console)
    return report


def _resolved(audio: dict[str, str], base: Path) -> dict[str, str]:
    """A manifest's recordings, relative paths taken from the manifest's folder."""
    return {i: str(base / path) for i, path in audio.items()}


@dataclass(frozen=True)
class ModelOptions:
    """Decoding choices of the model mode; None keeps the experiment's `decode` config."""

    beam: int | None = None
    ctc_weight: float | None = None
    batch_size: int | None = None
    device: str = "cpu"
    progress: bool = True
    ctc_window: int | None = None
    att_window: int | None = None
    length_penalty: float | None = None
    fusion: dict[str, object] = field(default_factory=dict)  # lm, lm_weight, length_bonus


def evaluate_model(
    model: Path | Sequence[Path],
    manifest: Path,
    out_dir: Path,
    opts: ScoringOptions | None = None,
    decode: ModelOptions | None = None,
    console: Console | None = None,
) -> ScoreReport:
    """Decode a manifest with a trained model and score it.

    Args:
        model: an experiment dir (final.pt, else checkpoints/last.pt) or a .pt file; several
            decode as an ensemble (the first one's attention is plotted and checked).
        manifest: JSON-lines manifest with reference texts, speakers and durations.
        out_dir: output folder; also receives `plots/<id>.png` for the worst utterances.
        opts: normaliser, bootstrap, worst-k, comparison, overwrite.
        decode: beam, CTC weight and window, batch size, device.
        console: where progress and tables go.

    Raises:
        UserError: no checkpoint, bad manifest, ensemble members that do not fit together,
            or an output folder with earlier results.
    """
    from asrkit.data.manifest import read_manifest
    from asrkit.decoding import decode_utterances
    from asrkit.decoding.api import load_members

    opts, decode = opts or ScoringOptions(), decode or ModelOptions()
    console = console or Console(stderr=True)
    out_dir = prepare_out_dir(out_dir, opts.force)
    members = load_members(model, decode.device)
    loaded = members[0]
    utts = read_manifest(manifest)
    search = loaded.decode_options(
        beam=decode.beam,
        ctc_weight=decode.ctc_weight,
        batch_size=decode.batch_size,
        ctc_window=decode.ctc_window,
        att_window=decode.att_window,
        length_penalty=decode.length_penalty,
        **decode.fusion,
    )
    transcripts, timing = decode_utterances(
        members, utts, search, progress=decode.progress, console=console
    )
    if all(t.failed for t in transcripts):
        raise UserError(
            f"{manifest}: none of the {len(utts)} utterances could be decoded, nothing scored"
            f" ({transcripts[0].warning})"
        )
    decoded = DecodedSet(
        loaded, manifest, utts, transcripts, timing, search, decode.device, tuple(members[1:])
    )
    return score_decoded(decoded, out_dir, opts, console)


def _feature_normalisation(loaded: LoadedModel, utts: list[Utterance]) -> str:
    """What was subtracted from the features before the model, in words for the report."""
    model = loaded.config.model
    if model.speaker_cmn:
        speakers = len({u.speaker for u in utts if u.speaker})
        alone = sum(not u.speaker for u in utts)
        own = f"; {alone} utterances without a speaker: their own mean" if alone else ""
        return f"global CMVN + speaker mean ({speakers} speakers{own})"
    return "global CMVN + utterance mean" if model.utterance_cmn else "global CMVN"


@dataclass(frozen=True)
class DecodedSet:
    """A manifest decoded by a model: what `score_decoded` needs to write a model-mode report."""

    loaded: LoadedModel
    manifest: Path
    utterances: list[Utterance]
    transcripts: list[Transcript]
    timing: DecodeTiming  # wall time and audio seconds of the decoding: the RTF
    search: DecodeOptions  # recorded in the report
    device: str
    others: tuple[LoadedModel, ...] = ()  # the other members of an ensemble (after `loaded`)


def score_decoded(
    decoded: DecodedSet,
    out_dir: Path,
    opts: ScoringOptions | None = None,
    console: Console | None = None,
) -> ScoreReport:
    """Score transcripts that were already decoded (the demo decodes once for both uses).

    Raises:
        UserError: an output folder with earlier results (without `opts.force`).
    """
    opts = opts or ScoringOptions()
    console = console or Console(stderr=True)
    out_dir = prepare_out_dir(out_dir, opts.force)
    utts, transcripts = decoded.utterances, decoded.transcripts
    report = score(
        {u.id: u.text for u in utts},
        {t.id: t.text for t in transcripts},
        normalizer=opts.normalizer,
        speakers={u.id: u.speaker for u in utts if u.speaker},
        durations={u.id: u.duration for u in utts},
        health=_health(transcripts),
        audio={u.id: u.audio for u in utts},
        bootstrap=opts.bootstrap,
        seed=opts.seed,
        rtf=decoded.timing.rtf,
        meta={
            "mode": "model",
            "model": str(decoded.loaded.path),
            # the exact files scored, so a report can be matched to its model and test set
            "model_sha256": file_sha256(decoded.loaded.path),
            "manifest": str(decoded.manifest),
            "manifest_sha256": file_sha256(decoded.manifest),
            "device": decoded.device,
            "decode": _jsonable(asdict(decoded.search)),
            "feature_normalisation": _feature_normalisation(decoded.loaded, utts),
            # the weights the health flags and plots read (a Transformer's block and heads)
            "alignment": decoded.loaded.model.alignment_source or "attention",
            "audio_seconds": decoded.timing.audio_seconds,
            "wall_seconds": decoded.timing.wall_seconds,
            # audio that could not be read is scored as an empty hypothesis (all deletions,
            # as sclite scores a missing one) and named here; the command then exits 3
            "undecoded": [
                {"id": t.id, "audio": t.audio, "reason": t.warning} for t in transcripts if t.failed
            ],
        },
    )
    if decoded.others:  # "model" above is the first member, whose attention is plotted
        members = (decoded.loaded, *decoded.others)
        report.meta["ensemble"] = [
            {"model": str(m.path), "model_sha256": file_sha256(m.path)} for m in members
        ]
    worst = report.worst(opts.worst)
    report.meta["worst"] = opts.worst  # how many of the worst utterances are plotted
    report.meta["plots"] = _plot_worst(decoded.loaded, utts, transcripts, worst, out_dir / "plots")
    if decoded.search.nbest > 1:  # for `attnasr rescore`, which re-ranks without decoding
        write_nbest(out_dir / "nbest.jsonl", transcripts, decoded.search, decoded.loaded)
    _finish(report, out_dir, opts, console)
    if report.meta["undecoded"]:
        console.print(
            f"[yellow]{len(report.meta['undecoded'])} of {len(utts)} utterances could not be"
            " decoded and were scored as empty hypotheses (listed in report.json, meta.undecoded)"
            "[/]",
            highlight=False,
        )
    return report


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
        for k, v in values.items()
    }


def _health(transcripts: list[Transcript]) -> dict[str, HealthFlags]:
    """Flags for every utterance decoded in one piece (long audio has no single matrix)."""
    return {
        t.id: attention_health(t.hypothesis.attention, t.hypothesis.tokens)
        for t in transcripts
        if t.hypothesis is not None and t.hypothesis.attention.numel() > 0
    }


def _plot_worst(
    loaded: LoadedModel,
    utts: list[Utterance],
    transcripts: list[Transcript],
    worst: list[Any],
    plot_dir: Path,
) -> dict[str, str]:
    """Attention plots of the worst utterances; returns {id: path relative to the report}."""
    from asrkit.features import Fbank, load_audio
    from asrkit.plotting import plot_alignment

    by_id = {t.id: t for t in transcripts}
    audio = {u.id: u.audio for u in utts}
    fbank = Fbank(loaded.config.features)
    frame_shift = loaded.model.subsampling * loaded.config.features.hop_ms / 1000.0
    pieces = loaded.tokenizer.pieces
    plots = {}
    for utt in worst:
        hypothesis = by_id[utt.id].hypothesis
        if hypothesis is None or hypothesis.attention.numel() == 0:
            continue
        wave = load_audio(audio[utt.id], loaded.config.features.sample_rate)
        labels = [pieces[i] for i in hypothesis.tokens] + ["<eos>"]
        path = plot_dir / f"{utt.id}.png"
        flags = ", ".join(utt.health.names()) if utt.health is not None else ""
        title = f"{utt.id}: {utt.errors} errors" + (f" ({flags})" if flags else "")
        if loaded.model.alignment_source:
            title += f"; {loaded.model.alignment_source}"
        plot_alignment(path, fbank(wave), hypothesis.attention, labels, frame_shift, title)
        plots[utt.id] = f"plots/{path.name}"
    return plots
