"""Decoding speed: real-time factor of greedy and beam search, and batched vs one-at-a-time beam.

Two measurements on shared dev-clean audio:
  1. end-to-end RTF (audio reading + features + search + word times) of `decode_utterances`
     with greedy search and with beam search (default beam 8, joint CTC weight from --ctc-weight);
  2. search only (features computed beforehand): batched beam search over length-sorted
     batches against one utterance at a time, checking that the outputs are identical.

With `--config` instead of `--model` the model is untrained: its outputs run to the maximum
length, so the timings are an upper bound on a trained model's.

    OMP_NUM_THREADS=2 /work/venv/bin/python benchmarks/bench_decode.py \
        --model exp/mini_global --limit 64 --threads 2
    OMP_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_decode.py \
        --config recipes/mini/conf/global.yaml --limit 32
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import string
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.nn.utils.rnn import pad_sequence

from asrkit.checkpoint import LoadedModel, load_model
from asrkit.cli.common import user_errors
from asrkit.config import load_yaml
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.decoding import DecodeOptions, beam_search, decode_utterances
from asrkit.decoding.api import fusion_lm
from asrkit.features import Fbank, load_audio
from asrkit.io import atomic_write_json, refuse_overwrite
from asrkit.lm.model import LanguageModel
from asrkit.model.las import LAS
from asrkit.tokenizer import CharTokenizer

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "LibriSpeech" / "dev-clean"


def dev_utterances(folder: Path, limit: int) -> list[Utterance]:
    """The first `limit` dev-clean files (sorted by name), with their durations.

    `folder` may also be a manifest (.jsonl), e.g. the demo's test set for a trained model.
    """
    import soundfile as sf

    if folder.suffix == ".jsonl":
        return read_manifest(folder)[:limit]

    utts = []
    for path in sorted(folder.rglob("*.mp3"))[:limit]:
        info = sf.info(str(path))
        utts.append(Utterance(path.stem, str(path), info.duration, info.samplerate, "", ""))
    return utts


def build(args: argparse.Namespace) -> LoadedModel:
    if args.model:
        return load_model(Path(args.model))
    cfg = load_yaml(Path(args.config))
    tokenizer = CharTokenizer.train([string.ascii_uppercase + " '"])
    torch.manual_seed(0)
    return LoadedModel(LAS(cfg, tokenizer.vocab_size).eval(), cfg, tokenizer, Path(args.config))


def end_to_end(loaded: LoadedModel, utts: list[Utterance], opts: DecodeOptions) -> dict:
    decode_utterances(loaded, utts[: opts.batch_size], opts, progress=False)  # warm-up
    _, timing = decode_utterances(loaded, utts, opts, progress=False)
    return {"audio_s": timing.audio_seconds, "wall_s": timing.wall_seconds, "rtf": timing.rtf}


def batched_vs_single(
    loaded: LoadedModel,
    utts: list[Utterance],
    opts: DecodeOptions,
    repeats: int,
    lm: LanguageModel | None = None,
) -> dict:
    """Search-only wall time of both modes, alternated `repeats` times (best and median kept).

    The two modes alternate so that a neighbour's load on the shared cores hits both alike;
    the best of the repeats is the figure least disturbed by it (as `timeit` reports).
    """
    fbank = Fbank(loaded.config.features)
    feats = [fbank(load_audio(u.audio, loaded.config.features.sample_rate)) for u in utts]
    feats.sort(key=lambda f: -f.shape[0])
    model, batched_times, single_times = loaded.model, [], []
    for _ in range(repeats):
        started = time.perf_counter()
        batched = []
        for first in range(0, len(feats), opts.batch_size):
            chunk = feats[first : first + opts.batch_size]
            lengths = torch.tensor([f.shape[0] for f in chunk])
            padded = pad_sequence(chunk, batch_first=True)
            batched += beam_search(model, padded, lengths, opts, lm=lm)
        batched_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        single = [
            beam_search(model, f[None], torch.tensor([f.shape[0]]), opts, lm=lm)[0] for f in feats
        ]
        single_times.append(time.perf_counter() - started)
    same = sum(a.tokens == b.tokens for a, b in zip(batched, single, strict=True))
    return {
        "repeats": repeats,
        "batched_s": min(batched_times),
        "single_s": min(single_times),
        "speedup": min(single_times) / min(batched_times),
        "batched_s_all": batched_times,
        "single_s_all": single_times,
        "speedup_median": statistics.median(single_times) / statistics.median(batched_times),
        "identical": f"{same}/{len(feats)}",
    }


@user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help="experiment folder or .pt checkpoint")
    group.add_argument("--config", help="YAML config of an untrained model (upper bound)")
    parser.add_argument("--data", type=Path, default=DEV, help="audio folder or .jsonl manifest")
    parser.add_argument("--limit", type=int, default=64, help="dev utterances")
    parser.add_argument("--beam", type=int, default=8)
    parser.add_argument("--ctc-weight", type=float, default=0.3)
    parser.add_argument("--ctc-window", type=int, default=0, help="CTC frames around attention")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="timings of each search mode")
    parser.add_argument("--lm", help="LM_DIR or .arpa: also time beam search fused with it")
    parser.add_argument("--lm-weight", type=float, default=0.3)
    parser.add_argument("--length-bonus", type=float, default=0.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--force", action="store_true", help="replace an earlier --json")
    args = parser.parse_args()
    refuse_overwrite([args.json], args.force)
    torch.set_num_threads(args.threads)
    loaded, utts = build(args), dev_utterances(args.data, args.limit)
    base = DecodeOptions.from_config(loaded.config.decode, batch_size=args.batch_size)
    greedy = DecodeOptions.from_config(
        loaded.config.decode, batch_size=args.batch_size, beam=1, ctc_weight=0.0
    )
    beam = DecodeOptions.from_config(
        loaded.config.decode,
        batch_size=args.batch_size,
        beam=args.beam,
        ctc_weight=args.ctc_weight,
        ctc_window=args.ctc_window,
    )
    results = {
        "host": f"{platform.processor() or platform.machine()}, {args.threads} thread(s), fp32",
        "model": args.model or f"untrained {args.config}",
        "utterances": len(utts),
        "batch_size": base.batch_size,
        "greedy": end_to_end(loaded, utts, greedy),
        f"beam{args.beam}": end_to_end(loaded, utts, beam),
    }
    lm, searched = None, beam
    if args.lm:  # the same beam with the LM fused; batched vs one at a time on that search
        searched = dataclasses.replace(
            beam, lm=args.lm, lm_weight=args.lm_weight, length_bonus=args.length_bonus
        )
        lm = fusion_lm(loaded, searched)
        results[f"beam{args.beam}+lm"] = end_to_end(loaded, utts, searched)
        results["lm"] = {"path": args.lm, "weight": args.lm_weight, "bonus": args.length_bonus}
    results["batched_vs_single"] = batched_vs_single(loaded, utts, searched, args.repeats, lm)
    table = Table(title=f"decoding, {len(utts)} dev-clean utterances, {results['host']}")
    for column in ("search", "audio (s)", "wall (s)", "RTF"):
        table.add_column(column, justify="right")
    for name in [k for k in ("greedy", f"beam{args.beam}", f"beam{args.beam}+lm") if k in results]:
        row = results[name]
        table.add_row(name, f"{row['audio_s']:.1f}", f"{row['wall_s']:.1f}", f"{row['rtf']:.3f}")
    console = Console()
    console.print(table)
    bvs = results["batched_vs_single"]
    fused = " + LM" if args.lm else ""
    console.print(
        f"beam {args.beam}{fused} search only (best of {args.repeats}): batched"
        f" {bvs['batched_s']:.1f} s,"
        f" one at a time {bvs['single_s']:.1f} s, speed-up {bvs['speedup']:.1f}x (median "
        f"{bvs['speedup_median']:.1f}x), identical {bvs['identical']}"
    )
    if args.json:
        atomic_write_json(args.json, results)


if __name__ == "__main__":
    main()
