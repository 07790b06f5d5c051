"""Everything `train()` settles before the first step: the experiment folder, tokenizer, CMVN,
datasets, and whether a resumed run matches the config it was started with."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import track

from asrkit.cli.common import console
from asrkit.config import ExperimentConfig, from_dict, to_dict
from asrkit.data.dataset import SpeechDataset, open_store, read_split
from asrkit.data.speaker_cmn import speaker_shifts
from asrkit.features import CMVNStats
from asrkit.io import UserError, ensure_writable_dir
from asrkit.tokenizer import CharTokenizer, Tokenizer, load_tokenizer

# Keys that may change when a run is resumed: budgets and bookkeeping, not what is learned.
RESUMABLE_CHANGES = (
    "train.max_epochs",
    "train.max_minutes",
    "train.max_steps",
    "train.patience",
    "train.num_workers",
    "train.log_every",
    "train.plot_utterances",
    "train.align_check_steps",
)
OUTPUTS = ("checkpoints", "plots", "final.pt", "metrics.jsonl", "config.yaml", "provenance.json")


def check_exp_dir(exp_dir: Path, resume: bool, force: bool, is_main: bool) -> None:
    """Refuse to overwrite a run unless `force`; with `resume`, require a last.pt.

    With `force` (and no `resume`), the previous run's outputs are deleted by rank 0.
    """
    last = exp_dir / "checkpoints" / "last.pt"
    if resume:
        if not last.is_file():
            raise UserError(f"{exp_dir}: nothing to resume (no checkpoints/last.pt)")
        return
    used = [name for name in OUTPUTS if (exp_dir / name).exists()]
    if used and not force:
        what = "a finished run" if (exp_dir / "final.pt").exists() else "an earlier run"
        raise UserError(
            f"{exp_dir}: holds {what} ({', '.join(used)}); "
            "use --resume to continue it or --force to start over"
        )
    if is_main:
        ensure_writable_dir(exp_dir)
        for name in used:
            path = exp_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def check_resumable(saved: dict, cfg: ExperimentConfig, path: Path) -> None:
    """A checkpoint from another config cannot be resumed: name the keys that differ."""
    old = _flatten(to_dict(from_dict(ExperimentConfig, saved)))
    new = _flatten(to_dict(cfg))
    changed = [k for k in new if old.get(k) != new[k] and k not in RESUMABLE_CHANGES]
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed[:4])
        raise UserError(f"{path}: checkpoint was trained with another config ({details})")


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def data_path(value: str, train_manifest: Path) -> Path:
    """A `data.*` path: as given if it exists, else relative to the training manifest's folder.

    So a recipe config can name `bpe256/tokenizer.json` inside whatever data folder it is
    run on, and a path from the working directory keeps working.
    """
    given = Path(value)
    beside = Path(train_manifest).parent / given
    if given.exists() or given.is_absolute() or not beside.exists():
        return given  # a missing file is reported under the name the user gave
    return beside


def resolve_tokenizer(cfg: ExperimentConfig, train_manifest: Path, texts: list[str]) -> Tokenizer:
    """`data.tokenizer`, else `tokenizer.json` beside the manifest, else a new char tokenizer."""
    if cfg.data.tokenizer:
        return load_tokenizer(data_path(cfg.data.tokenizer, train_manifest))
    beside = Path(train_manifest).with_name("tokenizer.json")
    if beside.is_file():
        return load_tokenizer(beside)
    console.print(f"no tokenizer given and none beside {train_manifest}: using characters")
    return CharTokenizer.train(texts)


def resolve_cmvn(cfg: ExperimentConfig, train_manifest: Path) -> CMVNStats:
    """`data.cmvn`, else `<train>.cmvn.json`, else computed from the training manifest."""
    from asrkit.data.feature_store import cmvn_path, cmvn_state, compute_cmvn

    if cfg.data.cmvn:
        return CMVNStats.load(data_path(cfg.data.cmvn, train_manifest))
    beside = cmvn_path(train_manifest)
    if beside.is_file():
        if cmvn_state(Path(train_manifest), cfg.features) == "stale":
            raise UserError(
                f"{beside}: computed from another version of {Path(train_manifest).name} or other"
                f" feature settings; run 'attnasr prepare features {train_manifest} --force'"
            )
        return CMVNStats.load(beside)
    console.print(f"no CMVN statistics beside {train_manifest}: computing them")
    return compute_cmvn(Path(train_manifest), cfg.features)


@dataclass(frozen=True)
class Data:
    """The datasets of a run and what was derived for them."""

    tokenizer: Tokenizer
    cmvn: CMVNStats
    train: SpeechDataset
    dev: SpeechDataset


def load_data(
    cfg: ExperimentConfig, train_manifest: Path, valid_manifest: Path, tokenizer: Tokenizer | None
) -> Data:
    """Read both manifests, resolve tokenizer and CMVN, and build the datasets.

    Args:
        tokenizer: the tokenizer of a resumed run (from its checkpoint), else None.
    """
    train_split = read_split(train_manifest, cfg.train.max_utt_seconds)
    dev_split = read_split(valid_manifest)
    if train_split.skipped:
        console.print(
            f"skipped {train_split.skipped} training utterances longer than "
            f"{cfg.train.max_utt_seconds:g} s (train.max_utt_seconds)"
        )
    texts = [u.text for u in train_split.utterances]
    tokenizer = tokenizer or resolve_tokenizer(cfg, train_manifest, texts)
    cmvn = resolve_cmvn(cfg, train_manifest)
    if len(cmvn.mean) != cfg.features.n_mels:
        raise UserError(
            f"CMVN statistics have {len(cmvn.mean)} bins, config has n_mels={cfg.features.n_mels}"
        )
    use_store = cfg.data.use_feature_store
    train_store = (
        open_store(train_manifest, cfg.features, train_split.utterances) if use_store else None
    )
    dev_store = (
        open_store(valid_manifest, cfg.features, dev_split.utterances) if use_store else None
    )
    mean = torch.tensor(cmvn.mean)
    train_set = SpeechDataset(
        train_split.utterances,
        tokenizer,
        cfg.features,
        train_store,
        cfg.specaug,
        mean,
        cfg.train.seed,
        # data-loader workers start afresh every epoch, so only the main process can keep it
        cfg.data.perturbed_cache_mb if cfg.train.num_workers == 0 else 0,
    )
    dev_set = SpeechDataset(dev_split.utterances, tokenizer, cfg.features, dev_store, None, mean)
    if cfg.model.speaker_cmn:
        normalise_speakers(train_set, train_manifest)
        normalise_speakers(dev_set, valid_manifest)
    return Data(tokenizer, cmvn, train_set, dev_set)


def normalise_speakers(dataset: SpeechDataset, manifest: Path) -> None:
    """Speaker CMN: one pass over the plain features gives each speaker's shift."""
    indices = track(
        range(len(dataset)),
        description=f"speaker means of {manifest.name}",
        console=console,
        transient=True,
    )
    plain = ((dataset.utts[i].speaker, dataset.plain_features(i)) for i in indices)
    dataset.speaker_shifts = speaker_shifts(plain, dataset.mean)


def warn_if_too_short_for_ctc(cfg: ExperimentConfig, data: Data, subsampling: int) -> None:
    """CTC needs at least one encoder frame per token; name the problem before training."""
    if cfg.model.ctc_weight <= 0:
        return
    frames, tokens = data.train.frames, data.train.tokens
    short = sum(-(-f // subsampling) < len(t) for f, t in zip(frames, tokens, strict=True))
    if short > 0.05 * len(frames):
        console.print(
            f"[bold yellow]warning:[/] {short} of {len(frames)} training utterances have fewer "
            f"encoder frames ({subsampling}x subsampling) than tokens, so their CTC loss is "
            "dropped; use less subsampling (listener.layers, listener.conv_subsample) or "
            "larger units (a BPE tokenizer)",
            highlight=False,
        )
