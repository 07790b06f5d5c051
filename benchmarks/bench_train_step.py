"""Training throughput of LAS on real LibriSpeech audio, in audio-seconds per second.

Times forward + backward + Adam step on length-sorted batches of about `--max-frames` input
frames (padding included), for several listener shapes and attention kinds, and prints a table
(and optionally writes JSON). Features are computed once, before timing.

    OMP_NUM_THREADS=2 /work/venv/bin/python benchmarks/bench_train_step.py \
        --data ../shared/data/LibriSpeech/train-clean-100 --threads 2 --steps 3

With `--configs`, the recipe configs themselves are timed (their listener, attention, speller
and batch size `train.max_frames`) instead of the listener x attention grid:

    OMP_NUM_THREADS=1 python benchmarks/bench_train_step.py --threads 1 --steps 6 \
        --configs recipes/mini/conf/local.yaml recipes/mini/conf/global.yaml

`--set key=value ...` applies the same overrides to every config (as `attnasr train --set`);
`--set train.precision=bf16` times the forward pass under bf16 autocast, as the trainer does.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from asrkit.cli.common import user_errors
from asrkit.config import ExperimentConfig, apply_overrides, load_yaml
from asrkit.features import Fbank, load_audio
from asrkit.io import atomic_write_json, refuse_overwrite
from asrkit.model.attention import REGISTRY, resolve_kind
from asrkit.model.las import LAS, Batch
from asrkit.tokenizer import CharTokenizer
from asrkit.training.loop import autocast
from asrkit.training.run import precision_dtype

# name -> listener/speller overrides; all use the default 80-bin features and ctc_weight 0.3.
LISTENERS: dict[str, list[str]] = {
    # 8x: LAS as published (full-rate BiLSTM + 3 pyramid levels).
    "pblstm3-h256": ["listener.hidden=256", "listener.layers=3"],
    # 8x: conv front end replaces two pyramid levels.
    "conv4-pblstm1-h256": ["listener.hidden=256", "listener.layers=1", "listener.conv_subsample=4"],
    "conv4-pblstm1-h320": ["listener.hidden=320", "listener.layers=1", "listener.conv_subsample=4"],
    # 4x: enough encoder frames for character CTC (LibriSpeech speaks ~15 chars/s).
    "conv2-pblstm1-h256": ["listener.hidden=256", "listener.layers=1", "listener.conv_subsample=2"],
    "conv4-blstm1-h320": ["listener.hidden=320", "listener.layers=0", "listener.conv_subsample=4"],
    "conformer-conv4-d256x6": [
        "listener.kind=conformer",
        "listener.hidden=256",
        "listener.layers=6",
        "listener.conv_subsample=4",
    ],
}


def load_utterances(root: Path, limit: int) -> list[tuple[torch.Tensor, str]]:
    """(features (T, 80), transcript) of the first `limit` utterances of a LibriSpeech part."""
    fbank = Fbank(ExperimentConfig().features)
    out = []
    for trans in sorted(root.glob("*/*/*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt_id, text = line.split(" ", 1)
            audio = next(trans.parent.glob(f"{utt_id}.*"))
            with torch.no_grad():
                out.append((fbank(load_audio(audio)), text))
            if len(out) == limit:
                return out
    return out


def make_batches(
    utts: list[tuple[torch.Tensor, str]], tok: CharTokenizer, max_frames: int
) -> list[Batch]:
    """Length-sorted batches whose padded size B * T_max stays under `max_frames`."""
    utts = sorted(utts, key=lambda u: u[0].shape[0])
    batches, current = [], []
    for utt in utts:
        if current and (len(current) + 1) * utt[0].shape[0] > max_frames:
            batches.append(collate(current, tok))
            current = []
        current.append(utt)
    if current:
        batches.append(collate(current, tok))
    return batches


def collate(utts: list[tuple[torch.Tensor, str]], tok: CharTokenizer) -> Batch:
    pad = torch.nn.utils.rnn.pad_sequence
    tokens = [torch.tensor(tok.encode(text)) for _, text in utts]
    return Batch(
        feats=pad([f for f, _ in utts], batch_first=True),
        feat_lengths=torch.tensor([f.shape[0] for f, _ in utts]),
        tokens=pad(tokens, batch_first=True),
        token_lengths=torch.tensor([len(t) for t in tokens]),
        ids=[str(i) for i in range(len(utts))],
    )


def measure(
    model: LAS, batches: list[Batch], steps: int, dtype: torch.dtype | None = None
) -> tuple[float, float]:
    """Audio seconds per second over `steps` batches after one warm-up step, the forward pass
    under autocast in `dtype` (None: fp32), as the trainer runs `train.precision`.

    Returns (per CPU-second, per wall-second). On a shared machine the wall clock mostly
    measures the neighbours; CPU time of this process is the stable number.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    audio, cpu, wall = 0.0, 0.0, 0.0
    for i, batch in enumerate(batches[: steps + 1]):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        with autocast("cpu", dtype):
            loss, stats = model(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if i >= 1:  # the first step allocates and warms caches
            audio += stats["frames"] / 100.0
            cpu += time.process_time() - cpu_start
            wall += time.perf_counter() - wall_start
    return audio / cpu, audio / wall


@user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/LibriSpeech/train-clean-100")
    )
    parser.add_argument("--utterances", type=int, default=120)
    parser.add_argument("--max-frames", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--listeners", nargs="+", default=list(LISTENERS)[:3])
    parser.add_argument("--attention", nargs="+", default=["location", "local-m", "monotonic"])
    parser.add_argument("--attention-dim", type=int, default=256)
    parser.add_argument("--configs", nargs="+", type=Path, help="time these YAML configs")
    parser.add_argument("--set", nargs="+", default=[], help="overrides for every config")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="replace an earlier --json")
    args = parser.parse_args()
    refuse_overwrite([args.json], args.force)
    if args.configs:
        rows = time_configs(args)
        if args.json:
            atomic_write_json(args.json, rows)
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    utts = load_utterances(args.data, args.utterances)
    tok = CharTokenizer.train(text for _, text in utts)
    # Middle-length batches: typical of a LibriSpeech epoch (~12-15 s utterances).
    batches = make_batches(utts, tok, args.max_frames)
    batches = batches[len(batches) // 3 :]
    rows = []
    print(f"{'listener':24} {'attention':10} {'params':>8} {'per CPU-s':>10} {'per wall-s':>10}")
    for listener in args.listeners:
        for kind in args.attention:
            if kind not in REGISTRY and resolve_kind_or_none(kind) is None:
                print(f"{listener:24} {kind:10} skipped: not registered")
                continue
            cfg = apply_overrides(ExperimentConfig(), LISTENERS[listener])
            cfg = replace(cfg, attention=replace(cfg.attention, kind=kind, dim=args.attention_dim))
            model = LAS(cfg, tok.vocab_size)
            params = sum(p.numel() for p in model.parameters())
            cpu, wall = measure(model, batches, args.steps)
            rows.append(
                {
                    "listener": listener,
                    "attention": kind,
                    "attention_dim": args.attention_dim,
                    "params": params,
                    "audio_s_per_cpu_s": cpu,
                    "audio_s_per_wall_s": wall,
                }
            )
            print(
                f"{listener:24} {kind:10} {params / 1e6:7.2f}M {cpu:10.1f} {wall:10.1f}", flush=True
            )
    if args.json:
        atomic_write_json(args.json, rows)


def time_configs(args: argparse.Namespace) -> list[dict]:
    """Audio seconds per CPU second of each recipe config, as it is (batches of its
    train.max_frames, the middle-length ones of the first `--utterances`)."""
    torch.set_num_threads(args.threads)
    utts = load_utterances(args.data, args.utterances)
    tok = CharTokenizer.train(text for _, text in utts)
    rows = []
    for path in args.configs:
        cfg = apply_overrides(load_yaml(path), args.set)
        batches = make_batches(utts, tok, cfg.train.max_frames)
        batches = batches[len(batches) // 3 :]
        torch.manual_seed(0)
        model = LAS(cfg, tok.vocab_size)
        cpu, wall = measure(model, batches, args.steps, precision_dtype(cfg, "cpu"))
        name = " ".join([str(path), *args.set])
        rows.append({"config": name, "audio_s_per_cpu_s": cpu, "audio_s_per_wall_s": wall})
        print(f"{name}: {cpu:.1f} audio-s per CPU-s, {wall:.1f} per wall-s", flush=True)
    return rows


def resolve_kind_or_none(kind: str) -> str | None:
    try:
        return resolve_kind(kind)
    except Exception:
        return None


if __name__ == "__main__":
    main()
