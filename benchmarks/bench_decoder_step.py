"""Cost of one Transformer decoder step as the output prefix grows (CPU).

For each cross-attention family of a recipe config and each prefix length t it times

- the cached step (`TransformerDecoder.step` from a state holding t earlier steps: the
  self-attention reads t cached keys and values), as beam search runs it, and
- the same step without a cache: the teacher-forced pass over all t + 1 positions, whose last
  row is the step's output (what a decoder without a key/value cache recomputes every step),

for N rows (utterances x beams) over T' encoder frames, each as the median wall time of
repeats. The cached step should stay about flat in t (its projections and feed-forward cost
the same at every step; only the attention over t cached keys grows, by O(t d)), the uncached
one grows with t.

Writes decoder_step_cost.json and decoder_step_cost.png into `--out` (benchmarks/results), and
refuses to replace earlier ones without `--force`.

    OMP_NUM_THREADS=1 python benchmarks/bench_decoder_step.py --force
    OMP_NUM_THREADS=1 python benchmarks/bench_decoder_step.py --quick --out /tmp/bench_quick
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from bench_attention import median_seconds  # the same timing as the attention benchmark

from asrkit.cli.common import user_errors
from asrkit.config import load_yaml
from asrkit.io import atomic_write_json, refuse_overwrite
from asrkit.model.las import LAS
from asrkit.model.transformer_decoder import TransformerDecoder

RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "mini" / "conf" / "conformer_global.yaml"
FAMILIES = ("global", "local", "monotonic")
VOCAB = 31  # the mini recipe's characters


def decoder_for(family: str) -> TransformerDecoder:
    cfg = load_yaml(CONFIG)
    cfg = replace(cfg, attention=replace(cfg.attention, kind=family, g_init=2.0))
    torch.manual_seed(0)
    model = LAS(cfg, VOCAB).eval()
    assert isinstance(model.speller, TransformerDecoder)
    return model.speller


def measure(family: str, rows: int, frames: int, prefixes: list[int], repeats: int) -> list[dict]:
    decoder = decoder_for(family)
    dim = decoder.blocks[0].cross.memory_dim
    memory = torch.randn(1, frames, dim).expand(rows, frames, dim).contiguous()
    lengths = torch.full((rows,), frames)
    results = []
    with torch.inference_mode():
        mem = decoder.prepare(memory, lengths)
        tokens = torch.randint(3, VOCAB, (rows, max(prefixes) + 1))
        state = decoder.initial_state(mem)
        states = {}
        for t in range(max(prefixes) + 1):
            if t in prefixes:
                states[t] = state
            state = decoder.step(tokens[:, t], state, mem, "eval").state
        for t in prefixes:
            cached = median_seconds(
                lambda t=t: decoder.step(tokens[:, t], states[t], mem, "eval"), repeats
            )
            uncached = median_seconds(
                lambda t=t: decoder(mem, tokens[:, : t + 1], "eval"), max(1, repeats // 2)
            )
            results.append({"family": family, "prefix": t, "cached_s": cached, "full_s": uncached})
            times = f"cached {1e3 * cached:7.2f} ms  full {1e3 * uncached:8.2f} ms"
            print(f"{family:10s} t={t:4d}  {times}")
    return results


def plot(path: Path, rows: list[dict], title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for family in FAMILIES:
        mine = [r for r in rows if r["family"] == family]
        if not mine:
            continue
        prefix = [r["prefix"] for r in mine]
        line = ax.plot(prefix, [1e3 * r["cached_s"] for r in mine], "o-", label=f"{family}, cached")
        color = line[0].get_color()
        ax.plot(
            prefix,
            [1e3 * r["full_s"] for r in mine],
            "x--",
            color=color,
            label=f"{family}, no cache",
        )
    ax.set(xlabel="output prefix length t (tokens)", ylabel="ms per decoder step", title=title)
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


@user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=32, help="utterances x beams (4 x 8)")
    parser.add_argument("--frames", type=int, default=250, help="encoder frames (10 s at 40 ms)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="few prefixes and repeats")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="replace earlier results")
    args = parser.parse_args()
    prefixes = [1, 50, 100] if args.quick else [1, 25, 50, 100, 200, 300, 400]
    repeats = 3 if args.quick else args.repeats
    files = [args.out / "decoder_step_cost.json", args.out / "decoder_step_cost.png"]
    refuse_overwrite(files, args.force)
    rows = []
    for family in FAMILIES:
        rows += measure(family, args.rows, args.frames, prefixes, repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    info = {
        "config": str(CONFIG.name),
        "rows": args.rows,
        "frames": args.frames,
        "threads": threads,
    }
    atomic_write_json(files[0], {**info, "results": rows})
    title = f"{CONFIG.stem} decoder, {args.rows} rows x {args.frames} frames, {threads} thread(s)"
    plot(files[1], rows, title)
    print(f"wrote {files[0]} and {files[1]}")


if __name__ == "__main__":
    main()
