"""Hold out dev strings from the five FSDD training speakers, so theo stays a pure test set.

Checkpoint selection (best dev WER, averaging, early stopping) must never look at the test
speaker; the dev set is every `--every`-th string of each training speaker, so it covers the
same speakers as training (the test measures the unseen speaker, dev measures overfitting).

`--hold-out SPEAKER --out DIR` makes a leave-one-speaker-out split instead: all strings of
SPEAKER go to DIR/heldout.jsonl and the other speakers are split as above into
DIR/train_fit.jsonl and DIR/dev.jsonl. A setting meant to help the unseen test speaker can then
be chosen on a training speaker that the model has not heard, without looking at theo.

Usage: python recipes/digits/local/make_split.py DATA_DIR [--every 10] [--hold-out S --out DIR]
Reads DATA_DIR/train.jsonl; writes DATA_DIR/train_fit.jsonl and DATA_DIR/dev.jsonl (or DIR/...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asrkit.data.manifest import read_manifest, write_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with train.jsonl from 'prepare fsdd'")
    parser.add_argument("--every", type=int, default=10, help="every N-th string goes to dev")
    parser.add_argument("--hold-out", help="a training speaker whose strings all go to heldout")
    parser.add_argument(
        "--out", type=Path, help="folder of the split (default: DATA_DIR; needed with --hold-out)"
    )
    args = parser.parse_args()
    if args.every < 2:
        raise SystemExit(f"--every must be at least 2, got {args.every}")
    if args.hold_out is not None and args.out is None:
        # without a folder of its own, the held-out split would replace the recipe's split
        raise SystemExit("--hold-out needs --out DIR (a folder other than the recipe's split)")
    out = args.out or args.data
    source = args.data / "train.jsonl"
    utts = read_manifest(source)
    if args.hold_out is not None and args.hold_out not in {utt.speaker for utt in utts}:
        raise SystemExit(f"--hold-out {args.hold_out!r} is not a speaker of {source}")
    counts: dict[str, int] = {}
    fit, dev, heldout = [], [], []
    for utt in utts:  # per-speaker counter: every speaker contributes the same share to dev
        if utt.speaker == args.hold_out:
            heldout.append(utt)
            continue
        index = counts[utt.speaker] = counts.get(utt.speaker, -1) + 1
        (dev if index % args.every == args.every - 1 else fit).append(utt)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out / "train_fit.jsonl", fit)
    write_manifest(out / "dev.jsonl", dev)
    if heldout:
        write_manifest(out / "heldout.jsonl", heldout)
    print(
        f"digits split: {len(fit)} training and {len(dev)} dev strings ({len(counts)} speakers)"
        + (f", {len(heldout)} held-out strings of {args.hold_out}" if heldout else "")
    )


if __name__ == "__main__":
    main()
