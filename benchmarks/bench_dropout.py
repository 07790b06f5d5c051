"""Cost of one dropout call on the CPU: torch's `F.dropout` against `asrkit.model.layers.Dropout`.

`F.dropout` draws its mask with `bernoulli_`, which on this project's 2-core machine took a
third of a Conformer training step; `Dropout` compares random bytes (eight per int64 draw)
with a threshold. Both are timed forward and backward on a (batch, frames, width) activation
of the mini Conformer's size, as the median of repeats, and the realised drop rate is printed.

    OMP_NUM_THREADS=1 python benchmarks/bench_dropout.py
    OMP_NUM_THREADS=1 python benchmarks/bench_dropout.py --shape 8 250 576 --p 0.1
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from bench_attention import median_seconds  # the same timing as the attention benchmark

from asrkit.model.layers import Dropout


def forward_backward(drop: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    drop(x).sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[8, 250, 576])
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    x = torch.randn(*args.shape, requires_grad=True)
    ours = Dropout(args.p).train()
    candidates = {
        "F.dropout (bernoulli_)": lambda t: F.dropout(t, args.p, training=True),
        "rand_like(x) >= p": lambda t: t * (torch.rand_like(t) >= args.p) / (1 - args.p),
        "asrkit Dropout (random bytes)": ours,
    }
    print(f"shape {tuple(args.shape)}, p {args.p}, {torch.get_num_threads()} thread(s)")
    for name, drop in candidates.items():
        forward_ms = 1e3 * median_seconds(lambda d=drop: d(x.detach()), args.repeats)
        both_ms = 1e3 * median_seconds(lambda d=drop: forward_backward(d, x), args.repeats)
        with torch.no_grad():
            rate = float((drop(x.detach()) == 0).float().mean())
        print(
            f"{name:32s} forward {forward_ms:6.2f} ms  forward+backward {both_ms:6.2f} ms  "
            f"dropped {rate:.4f}"
        )


if __name__ == "__main__":
    main()
