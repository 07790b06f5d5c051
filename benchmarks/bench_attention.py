"""Cost of every attention kind as the number of encoder frames T grows (CPU, one thread).

For each kind and T it measures

- a teacher-forced training step: `prepare` + U train-mode steps + backward of the summed
  contexts (what one batch of speller training costs in the attention), and
- one eval-mode decoding step from a mid-utterance state (memory prepared beforehand, as the
  decoder does once per utterance),

each as the median wall time over repeats and the peak CPU memory allocated inside the measured
region (torch profiler `[memory]` events, cumulated in time order). The monotonic kinds are
timed with the energy offset r = +4 so the untrained scan stops at the pointer, as a trained
model's does within a few frames: the step then costs what the lazy scan costs per evaluated
frame, and `energies_per_step` records how many were evaluated.

Writes attention_cost.json and attention_cost.png into `--out` (benchmarks/results), and
refuses to replace earlier ones without `--force`.

    OMP_NUM_THREADS=1 python benchmarks/bench_attention.py --force    # full run (~3 min)
    OMP_NUM_THREADS=1 python benchmarks/bench_attention.py --quick --out /tmp/bench_quick
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from asrkit.cli.common import user_errors
from asrkit.config import AttentionConfig
from asrkit.io import atomic_write_json, refuse_overwrite
from asrkit.model.attention import REGISTRY, build_attention
from asrkit.model.attention.base import AttendMemory, Attention, State
from asrkit.model.attention.monotonic import MonotonicAttention

RESULTS = Path(__file__).resolve().parent / "results"
QUERY_DIM, MEMORY_DIM = 256, 512  # speller LSTM size; 2 x 256 BiLSTM listener


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated on the CPU while `fn` runs (net of what existed before).

    The profiler attributes each allocation and free to the innermost op ("self" memory; the
    rest appear as "[memory]" events); cumulating them in start-time order gives the live
    total at op granularity, whose maximum is the peak.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.time_range.start, e.self_cpu_memory_usage)
        for e in prof.events()
        if e.self_cpu_memory_usage
    )
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocator, lazy init)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(att: Attention, memory: torch.Tensor, queries: torch.Tensor) -> None:
    """prepare + U train steps + backward; memory (B, T, D), queries (U, B, query_dim)."""
    lengths = torch.full((memory.shape[0],), memory.shape[1])
    mem = att.prepare(memory, lengths)
    state = att.initial_state(mem)
    loss = memory.new_zeros(())
    for query in queries:
        out = att.step(query, mem, state, "train")
        state = out.state
        loss = loss + out.context.sum()
    loss.backward()


def decode_state(att: Attention, mem: AttendMemory, query: torch.Tensor) -> State:
    """A mid-utterance eval state: pointer / window centre at T / 2, other kinds after 3 steps."""
    state = att.initial_state(mem)
    for _ in range(3):
        state = att.step(query, mem, state, "eval").state
    middle = torch.full_like(mem.lengths, mem.values.shape[1] // 2)
    for key in ("pointer", "centre"):
        if key in state:
            state[key] = middle
    return state


def measure(kind: str, frames: int, args: argparse.Namespace) -> dict[str, float]:
    cfg = AttentionConfig(kind=kind, dim=256, heads=4, channels=10, kernel=31, window=8, chunk=2)
    torch.manual_seed(0)
    att = build_attention(cfg, QUERY_DIM, MEMORY_DIM)
    memory = torch.randn(args.batch, frames, MEMORY_DIM, requires_grad=True)
    queries = torch.randn(args.steps, args.batch, QUERY_DIM, requires_grad=True)
    result = {
        "train_seconds": median_seconds(lambda: train_step(att, memory, queries), args.repeats),
        "train_peak_bytes": peak_memory(lambda: train_step(att, memory, queries)),
    }
    if isinstance(att, MonotonicAttention):
        att.energy.r.data.fill_(4.0)  # see the module docstring
    with torch.no_grad():
        lengths = torch.full((args.batch,), frames)
        mem = att.prepare(memory.detach(), lengths)
        state = decode_state(att, mem, queries[0].detach())
        query = queries[1].detach()

        def decode() -> None:
            att.step(query, mem, state, "eval")

        result["decode_seconds"] = median_seconds(decode, args.repeats * 10)
        result["decode_peak_bytes"] = peak_memory(decode)
        if isinstance(att, MonotonicAttention):
            att.energy_evaluations = 0
            decode()
            result["energies_per_step"] = att.energy_evaluations / args.batch
    return result


def plot(results: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5))
    panels = [
        ("train_seconds", "training step (fwd+bwd, U steps)"),
        ("decode_seconds", "one decoding step"),
    ]
    for ax, (key, title) in zip(fig.subplots(1, 2), panels, strict=True):
        for kind, by_frames in results.items():
            frames = sorted(by_frames, key=int)
            style = "--" if kind in ("local-m", "local-p", "monotonic", "mocha") else "-"
            ax.loglog(
                [int(t) for t in frames],
                [by_frames[t][key] for t in frames],
                style,
                marker="o",
                label=kind,
            )
        ax.set_xlabel("encoder frames T")
        ax.set_ylabel("seconds (median)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    fig.axes[1].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def describe(row: dict[str, float]) -> str:
    train = f"train {row['train_seconds'] * 1e3:8.1f} ms {row['train_peak_bytes'] / 2**20:7.1f} MiB"
    decode = (
        f"decode {row['decode_seconds'] * 1e6:8.0f} us {row['decode_peak_bytes'] / 2**10:8.1f} KiB"
    )
    return f"{train}   {decode}"


@user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 250, 500, 1000, 2000, 4000])
    parser.add_argument("--kinds", nargs="+", default=sorted(REGISTRY))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="output tokens U per training step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="T in {100, 400}, 1 repeat")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and PNG")
    parser.add_argument("--force", action="store_true", help="replace earlier results in --out")
    args = parser.parse_args()
    json_path, png_path = args.out / "attention_cost.json", args.out / "attention_cost.png"
    refuse_overwrite([json_path, png_path], args.force)
    if args.quick:
        args.frames, args.repeats = [100, 400], 1
    torch.set_num_threads(1)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for kind in args.kinds:
        results[kind] = {}
        for frames in args.frames:
            results[kind][str(frames)] = row = measure(kind, frames, args)
            print(f"{kind:>10} T={frames:>5}  {describe(row)}", flush=True)
    setup = {k: getattr(args, k) for k in ("batch", "steps", "repeats", "frames")}
    payload = {"setup": setup | {"query_dim": QUERY_DIM, "memory_dim": MEMORY_DIM, "threads": 1}}
    atomic_write_json(json_path, payload | {"results": results})
    plot(results, png_path)
    print(f"wrote {json_path} and {png_path.name}")


if __name__ == "__main__":
    main()
