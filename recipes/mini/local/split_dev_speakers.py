"""Split the mini dev manifest by speaker, for choosing decoding weights on one speaker and
reporting on the other (a weight chosen on the speakers it is scored on flatters it).

Writes DATA_DIR/mini_dev_<speaker>.jsonl for each dev speaker (2078: 52 utterances, 481.8 s;
2412: 58 utterances, 483.9 s).

Usage (from the repo root):
    python recipes/mini/local/split_dev_speakers.py data/mini
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asrkit.data.manifest import read_manifest, write_manifest
from asrkit.io import UserError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="DATA_DIR holding mini_dev.jsonl")
    args = parser.parse_args()
    try:
        utts = read_manifest(args.data / "mini_dev.jsonl")
    except UserError as exc:
        sys.exit(f"error: {exc}")
    for speaker in sorted({u.speaker for u in utts}):
        path = args.data / f"mini_dev_{speaker}.jsonl"
        count = write_manifest(path, [u for u in utts if u.speaker == speaker])
        print(f"{path}: {count} utterances")


if __name__ == "__main__":
    main()
