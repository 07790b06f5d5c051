"""Build the speaker-disjoint mini split from the prepared LibriSpeech manifests.

train = all of train-clean-100 + the dev-clean speakers other than the held-out ones;
dev = the held-out dev-clean speakers (default 2412 and 2078).

Usage: python recipes/mini/local/make_split.py DATA_DIR [--dev-speakers 2412,2078]
Writes DATA_DIR/mini_train.jsonl and DATA_DIR/mini_dev.jsonl.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asrkit.data.manifest import read_manifest, write_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data", type=Path, help="folder with train-clean-100.jsonl and dev-clean.jsonl"
    )
    parser.add_argument("--dev-speakers", default="2412,2078")
    args = parser.parse_args()
    held_out = set(args.dev_speakers.split(","))
    dev_clean = read_manifest(args.data / "dev-clean.jsonl")
    train = read_manifest(args.data / "train-clean-100.jsonl") + [
        u for u in dev_clean if u.speaker not in held_out
    ]
    dev = [u for u in dev_clean if u.speaker in held_out]
    write_manifest(args.data / "mini_train.jsonl", train)
    write_manifest(args.data / "mini_dev.jsonl", dev)
    print(f"mini split: {len(train)} training and {len(dev)} dev utterances")


if __name__ == "__main__":
    main()
