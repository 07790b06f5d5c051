"""Hold out dev strings from the five FSDD training speakers, so theo stays a pure test set.

Checkpoint selection (best dev WER, averaging, early stopping) must never look at the test
speaker; the dev set is every `--every`-th string of each training speaker, so it covers the
same speakers as training (the test measures the unseen speaker, dev measures overfitting).

Usage: python recipes/digits/local/make_split.py DATA_DIR [--every 10]
Reads DATA_DIR/train.jsonl; writes DATA_DIR/train_fit.jsonl and DATA_DIR/dev.jsonl.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asrkit.data.manifest import read_manifest, write_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with train.jsonl from 'prepare fsdd'")
    parser.add_argument("--every", type=int, default=10, help="every N-th string goes to dev")
    args = parser.parse_args()
    if args.every < 2:
        raise SystemExit(f"--every must be at least 2, got {args.every}")
    utts = read_manifest(args.data / "train.jsonl")
    counts: dict[str, int] = {}
    fit, dev = [], []
    for utt in utts:  # per-speaker counter: every speaker contributes the same share to dev
        index = counts[utt.speaker] = counts.get(utt.speaker, -1) + 1
        (dev if index % args.every == args.every - 1 else fit).append(utt)
    write_manifest(args.data / "train_fit.jsonl", fit)
    write_manifest(args.data / "dev.jsonl", dev)
    print(f"digits split: {len(fit)} training and {len(dev)} dev strings ({len(counts)} speakers)")


if __name__ == "__main__":
    main()
