"""`attnasr demo`: train, transcribe and score a small LAS on the embedded corpus, end to end.

The corpus in `asrkit/demo_data/` (see its README) is synthetic speech with a 49-word
vocabulary, split by speaker. `asrkit/conf/demo.yaml` trains for 60 seeded epochs (about 3.3
CPU minutes on one thread, capped at 4 wall-clock minutes on a busy machine); the held-out WER
is then 6.1% (CER 4.5%). The demo runs the same library functions as the real commands,
in the order a user would run them:

    OUT/data/          manifests, feature stores, CMVN and the char tokenizer
    OUT/exp/           the experiment (config, checkpoints, metrics, training plots)
    OUT/transcripts/   transcripts.jsonl: text and word times of every held-out utterance
    OUT/plots/         attention alignments of a few held-out utterances
    OUT/report/        the WER report (report.json, report.md, trn files, alignments, and
                       plots of the worst utterances)

Example:
    >>> result = run_demo(Path("demo-run"), attention="location")  # doctest: +SKIP
    >>> round(result.wer, 3)                                       # doctest: +SKIP
    0.061
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import soundfile as sf
from rich.console import Console
from rich.table import Table

from asrkit.config import ExperimentConfig, apply_overrides, load_yaml
from asrkit.data.manifest import Utterance, write_manifest
from asrkit.io import UserError, ensure_writable_dir

if TYPE_CHECKING:
    from asrkit.evaluation import DecodedSet

DEMO_DATA = Path(__file__).parent / "demo_data"
DEMO_CONFIG = Path(__file__).parent / "conf" / "demo.yaml"
# The subfolders the demo writes; `--force` replaces these and nothing else in OUT, so pointing
# --out at a folder with other files in it can never delete them.
OUTPUTS = ("data", "exp", "transcripts", "plots", "report")
# Model selection needs a dev set that is neither train nor test: the training speakers of one
# voice variant are held out of training for it (the test split keeps its own unseen variants).
DEV_VARIANT = "f5"
PLOTTED_UTTERANCES = 20  # the report.html shows these utterances with their attention


@dataclass(frozen=True)
class DemoResult:
    """What a demo run produced.

    Attributes:
        out_dir: the output folder.
        wer: held-out word error rate (a fraction).
        cer: held-out character error rate (a fraction).
        num_utterances: held-out utterances scored.
        train_minutes: wall time of training.
        total_minutes: wall time of the whole demo.
        report_dir: where report.json / report.md are.
    """

    out_dir: Path
    wer: float
    cer: float
    num_utterances: int
    train_minutes: float
    total_minutes: float
    report_dir: Path


def read_split(name: str, limit: int | None = None, data_dir: Path = DEMO_DATA) -> list[Utterance]:
    """Utterances of the embedded corpus split `name` ("train" or "test").

    Args:
        name: the split; `DATA_DIR/<name>.tsv` lists id, path, speaker, text.
        limit: keep only the first `limit` utterances (for quick runs and tests).
        data_dir: the corpus folder.

    Returns:
        Utterances with absolute audio paths and durations read from the FLAC headers.

    Raises:
        UserError: the corpus files are missing or a listed audio file is unreadable.
    """
    table = data_dir / f"{name}.tsv"
    if not table.is_file():
        raise UserError(
            f"{table}: demo corpus not found (reinstall attnasr or regenerate it with"
            " data_prep/make_demo_corpus.py)"
        )
    with table.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))[:limit]
    utts = []
    for row in rows:
        audio = (data_dir / row["path"]).resolve()
        try:
            info = sf.info(str(audio))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UserError(f"{audio}: demo audio not readable ({exc})") from exc
        utts.append(
            Utterance(
                id=row["id"],
                audio=str(audio),
                duration=info.frames / info.samplerate,
                sample_rate=info.samplerate,
                speaker=row["speaker"],
                text=row["text"],
            )
        )
    return utts


def split_dev(utts: list[Utterance]) -> tuple[list[Utterance], list[Utterance]]:
    """(train, dev): dev holds the utterances of the `DEV_VARIANT` training speakers."""
    dev = [u for u in utts if u.speaker.endswith(f"+{DEV_VARIANT}")]
    train = [u for u in utts if not u.speaker.endswith(f"+{DEV_VARIANT}")]
    if not dev:  # a --limit that cut every dev speaker: fall back to a slice of train
        dev, train = train[: max(1, len(train) // 8)], train[max(1, len(train) // 8) :]
    return train, dev


def prepare_out_dir(out_dir: Path, force: bool) -> Path:
    """Create OUT. An existing OUT is refused unless `force`, which deletes only `OUTPUTS`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    if out_dir.exists() and not force:
        raise UserError(f"{out_dir}: already exists (use --force to replace its demo outputs)")
    ensure_writable_dir(out_dir)
    for name in OUTPUTS:
        shutil.rmtree(out_dir / name, ignore_errors=True)
    return out_dir


# Settings a kind needs on top of asrkit/conf/demo.yaml. The hard monotonic scan does not stop
# at all in a 60-epoch run with the default gain g = 1/sqrt(dim), which caps |e - r| at 1 (test
# WER 84.1%, empty alignments); measured on the demo's dev split (60 epochs, one thread):
# g_init 2 alone 54.6%, with guided attention over 10 epochs 16.5%, over 20 epochs 12.4%
# (greedy), and that model searched with beam 4 + CTC 0.5: 5.8% (recipes/digits does the same).
KIND_OVERRIDES: dict[str, tuple[str, ...]] = {
    kind: (
        "attention.g_init=2.0",
        "train.guide_weight=1.0",
        "train.guide_epochs=20",
        "decode.beam=4",
        "decode.ctc_weight=0.5",
    )
    for kind in ("monotonic", "mocha")
}


def load_demo_config(
    attention: str, minutes: float | None, streaming: bool = False
) -> ExperimentConfig:
    """`asrkit/conf/demo.yaml` with the chosen attention kind (and what it needs, see
    `KIND_OVERRIDES`), training budget and, with `streaming`, a left-to-right listener.

    Raises:
        UserError: an unknown kind, a budget <= 0, or `streaming` with a kind that reads every
            frame.
    """
    from asrkit.model.attention import resolve_kind
    from asrkit.streaming import KINDS_TEXT, STREAMING_KINDS

    kind = resolve_kind(attention)  # a typo fails now, not after the data preparation
    if streaming and kind not in STREAMING_KINDS:
        raise UserError(
            f"--streaming needs {KINDS_TEXT} attention (they can emit before the end of the"
            f" audio); {kind} reads every frame"
        )
    overrides = [f"attention.kind={attention}", *KIND_OVERRIDES.get(kind, ())]
    overrides += ["listener.streaming=true"] if streaming else []
    cfg = apply_overrides(load_yaml(DEMO_CONFIG), overrides)
    if minutes is not None:
        if minutes <= 0:
            raise UserError(f"--minutes must be positive, got {minutes}")
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_minutes=minutes))
    return cfg


def prepare_data(
    data_dir: Path, cfg: ExperimentConfig, limit: int | None
) -> tuple[Path, Path, Path]:
    """Write the manifests, feature stores, CMVN and tokenizer; returns (train, dev, test)."""
    from asrkit.data.feature_store import compute_cmvn, compute_features, save_cmvn
    from asrkit.tokenizer import CharTokenizer

    train, dev = split_dev(read_split("train", limit))
    test = read_split("test", None if limit is None else max(1, limit // 4))
    paths = []
    for name, utts in (("train", train), ("dev", dev), ("test", test)):
        path = data_dir / f"{name}.jsonl"
        write_manifest(path, utts)
        compute_features(path, cfg.features)
        paths.append(path)
    save_cmvn(paths[0], cfg.features, compute_cmvn(paths[0], cfg.features))
    CharTokenizer.train(u.text for u in train).save(data_dir / "tokenizer.json")
    return paths[0], paths[1], paths[2]


def transcribe_test(
    exp_dir: Path, test: Path, out_dir: Path, device: str, console: Console
) -> DecodedSet:
    """Decode the held-out manifest into OUT/transcripts and plot a few alignments in OUT/plots.

    Returns:
        The decoded set, scored afterwards without decoding it again.
    """
    from asrkit.checkpoint import load_model
    from asrkit.data.manifest import read_manifest
    from asrkit.decoding import decode_utterances
    from asrkit.decoding.writers import plot_transcript, write_transcripts
    from asrkit.evaluation import DecodedSet
    from asrkit.features import Fbank, load_audio

    loaded = load_model(exp_dir, device)
    utts = read_manifest(test)
    opts = loaded.decode_options()
    transcripts, timing = decode_utterances(loaded, utts, opts, console=console)
    write_transcripts(transcripts, out_dir / "transcripts", [], timing)
    fbank = Fbank(loaded.config.features)
    frame_shift = loaded.model.subsampling * loaded.config.features.hop_ms / 1000.0
    for t in transcripts[:PLOTTED_UTTERANCES]:
        feats = fbank(load_audio(t.audio, loaded.config.features.sample_rate))  # (T, n_mels)
        path = out_dir / "plots" / f"{t.id}.png"
        source = loaded.model.alignment_source
        plot_transcript(path, t, feats, loaded.tokenizer, frame_shift, source)
    return DecodedSet(loaded, test, utts, transcripts, timing, opts, device)


def run_demo(
    out_dir: Path,
    attention: str = "location",
    minutes: float | None = None,
    force: bool = False,
    device: str = "cpu",
    limit: int | None = None,
    console: Console | None = None,
    streaming: bool = False,
) -> DemoResult:
    """Prepare the embedded corpus, train, transcribe the held-out speakers and score them.

    Args:
        out_dir: output folder (see the module docstring for its layout).
        attention: attention kind or family name (`asrkit.model.attention.REGISTRY`).
        minutes: training budget; None keeps `train.max_minutes` of `asrkit/conf/demo.yaml`.
        force: replace the demo outputs of an earlier run in `out_dir`.
        device: "cpu" or "cuda".
        limit: use only the first `limit` training utterances (and a quarter as many test
            utterances), for quick checks.
        console: where progress and tables go (stderr by default).
        streaming: train a streaming model (left-to-right listener), for `transcribe --stream`.

    Returns:
        The held-out WER/CER and where the outputs are.

    Raises:
        UserError: `out_dir` exists without `force`, is not writable, or the corpus is missing.
        KeyboardInterrupt: Ctrl-C during training, after the trainer saved its progress.
    """
    from asrkit.evaluation import ScoringOptions, score_decoded
    from asrkit.training.run import train

    started = time.perf_counter()
    console = console or Console(stderr=True)
    cfg = load_demo_config(attention, minutes, streaming)
    out_dir = prepare_out_dir(out_dir, force)
    console.rule("[bold]1/4 prepare the embedded corpus")
    train_jsonl, dev_jsonl, test_jsonl = prepare_data(out_dir / "data", cfg, limit)
    console.rule(f"[bold]2/4 train ({cfg.attention.kind} attention)")
    train_started = time.perf_counter()
    trained = train(cfg, train_jsonl, dev_jsonl, out_dir / "exp", device=device)
    train_minutes = (time.perf_counter() - train_started) / 60
    if trained.stop_reason == "interrupted":
        console.print(f"demo stopped; the partial experiment is in {out_dir / 'exp'}")
        raise KeyboardInterrupt
    console.rule("[bold]3/4 transcribe the held-out speakers")
    decoded = transcribe_test(out_dir / "exp", test_jsonl, out_dir, device, console)
    console.rule("[bold]4/4 evaluate")
    report = score_decoded(
        decoded, out_dir / "report", ScoringOptions(worst=PLOTTED_UTTERANCES), console
    )
    summary = report.summary()
    return DemoResult(
        out_dir=out_dir,
        wer=float(summary["wer"]),
        cer=float(summary["cer"]),
        num_utterances=int(summary["num_utterances"]),
        train_minutes=train_minutes,
        total_minutes=(time.perf_counter() - started) / 60,
        report_dir=out_dir / "report",
    )


def print_summary(result: DemoResult, console: Console | None = None) -> None:
    """The closing table: held-out error rates, timings and where to look."""
    console = console or Console(stderr=True)
    table = Table(title="attnasr demo: held-out speakers", show_header=False)
    table.add_row("WER", f"{100 * result.wer:.1f}%")
    table.add_row("CER", f"{100 * result.cer:.1f}%")
    table.add_row("utterances", str(result.num_utterances))
    table.add_row("training", f"{result.train_minutes:.1f} min")
    table.add_row("whole demo", f"{result.total_minutes:.1f} min")
    out = result.out_dir
    table.add_row("report (open in a browser)", f"{result.report_dir / 'report.html'}")
    table.add_row("report (text)", f"{result.report_dir / 'report.md'}")
    table.add_row("transcripts", f"{out / 'transcripts' / 'transcripts.jsonl'}")
    table.add_row("alignment plots", f"{out / 'plots'}, {result.report_dir / 'plots'}")
    table.add_row("training curves", f"{out / 'exp' / 'plots'}")
    console.print(table)
