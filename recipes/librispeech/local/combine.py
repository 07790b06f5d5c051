"""Concatenate prepared part manifests into one training manifest (e.g. the 960 h set).

Usage: python recipes/librispeech/local/combine.py DATA_DIR PART[,PART...] OUT.jsonl
reads DATA_DIR/<part>.jsonl for each part.
"""

from __future__ import annotations

import sys
from pathlib import Path

from asrkit.data.manifest import read_manifest, write_manifest


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    data, parts, out = Path(sys.argv[1]), sys.argv[2].split(","), Path(sys.argv[3])
    utts = [u for part in parts for u in read_manifest(data / f"{part}.jsonl")]
    count = write_manifest(out, utts)
    print(f"{out}: {count} utterances from {len(parts)} parts")


if __name__ == "__main__":
    main()
