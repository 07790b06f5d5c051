"""How far the hard monotonic scan reads before it runs off the end, per decoded utterance.

A hypothesis "runs off" when a step before its last token attends nothing (the scan found no
frame with p > 0.5 before the end of the audio). For those, prints the median share of tokens
emitted before it happened and the median share of the audio read by then: a scan that stops
early has both low; one that skips audio reads far with few tokens. Decodes with the model's
own decode settings (beam and CTC weight from its config).

    python recipes/mini/local/scan_reach.py exp/mini/monotonic [--manifest data/mini/mini_dev.jsonl]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from asrkit.checkpoint import load_model
from asrkit.data.manifest import read_manifest
from asrkit.decoding import DecodeOptions, Hypothesis, decode_utterances
from asrkit.scoring.health import ATTENDED_MASS


def reach(hyp: Hypothesis) -> tuple[float, float] | None:
    """(share of tokens, share of frames) when the scan ran off the end, or None if it did not."""
    rows = hyp.attention[: len(hyp.tokens)]  # (U, T'), one row per emitted token
    empty = (rows.sum(dim=1) <= ATTENDED_MASS).nonzero().squeeze(1)
    if not len(hyp.tokens) or not len(empty):
        return None
    step = int(empty[0])
    last = int(rows[:step].argmax(dim=1).max()) if step else 0
    return step / len(hyp.tokens), (last + 1) / rows.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="experiment folder or checkpoint")
    parser.add_argument("--manifest", type=Path, default=Path("data/mini/mini_dev.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.model)
    utts = read_manifest(args.manifest)
    transcripts, _ = decode_utterances(
        loaded, utts, DecodeOptions.from_config(loaded.config.decode)
    )
    found = [reach(t.hypothesis) for t in transcripts if t.hypothesis is not None]
    ran_off = [r for r in found if r is not None]
    print(
        f"{len(ran_off)} of {len(transcripts)} hypotheses ran off the end before their last token"
    )
    if ran_off:
        tokens = statistics.median(r[0] for r in ran_off)
        frames = statistics.median(r[1] for r in ran_off)
        early = sum(r[1] < 0.8 for r in ran_off)
        print(f"median share of tokens before: {tokens:.2f}; of the audio read: {frames:.2f}")
        print(f"ran off before reading 80% of the audio: {early}")


if __name__ == "__main__":
    main()
