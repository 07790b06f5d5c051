"""Re-average a finished run's epoch checkpoints by several policies and score each average.

The run must have kept its epoch checkpoints (`--set train.keep_best=30` keeps them all). A
policy averages the best k epochs by dev WER (the order `train.keep_best` uses) or the last k;
`--epochs` scores every single epoch from the 8th on instead, `--first N` (repeatable) the
best 8 of the first N epochs only: what `train.max_epochs: N` would have averaged, since the
digits configs' constant learning rate makes a run's first N epochs those of an N-epoch run,
and `--last K` (repeatable) the last K whole epochs of the first 30 (a tail average). Each
average is written to EXP/avg/<policy>.pt and scored with `asrkit.evaluate` (`attnasr
evaluate`: the config's search); prints `policy manifest WER epochs`.

Usage: python recipes/digits/local/average_epochs.py EXP_DIR [--manifest M ...] [--epochs]
       [--first N ...] [--last K ...] [--force]   (replace an earlier EXP_DIR/avg)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import asrkit
from asrkit.checkpoint import average_checkpoints, load_checkpoint
from asrkit.io import read_jsonl
from asrkit.training.checkpoints import dev_rank, epoch_checkpoint_name


def kept_epochs(exp: Path) -> list[tuple[tuple[float, float, float], int, str]]:
    """(dev rank, epoch, checkpoint name) of every dev row whose checkpoint is still on disk."""
    kept = []
    for row in read_jsonl(exp / "metrics.jsonl"):
        if row.get("kind") != "dev":
            continue
        name = epoch_checkpoint_name(row["epoch"], bool(row.get("partial")))
        if (exp / "checkpoints" / name).is_file():
            kept.append((dev_rank(row["wer"], row["cer"], row["loss"]), row["epoch"], name))
    return kept


def policies(exp: Path, singles: bool, first: list[int], tails: list[int]) -> dict[str, list[str]]:
    kept = kept_epochs(exp)
    ranked = sorted(kept)  # best first, the order train.keep_best uses
    by_epoch = sorted(kept, key=lambda c: c[1])
    if singles:
        return {f"epoch{epoch}": [name] for _, epoch, name in by_epoch if epoch >= 8}
    if first or tails:
        # Whole epochs only: an N-epoch run has no partial one.
        whole = [(e, name) for _, e, name in ranked if name == epoch_checkpoint_name(e)]
        chosen = {f"best8_of{n}": [name for e, name in whole if e <= n][:8] for n in first}
        in_order = [name for e, name in sorted(whole) if e <= 30]
        chosen.update({f"last{k}_of30": in_order[-k:] for k in tails})
        return chosen
    best = [name for _, _, name in ranked]
    last = [name for _, _, name in by_epoch]
    chosen = {f"best{k}": best[:k] for k in (1, 3, 5, 8)}
    chosen.update({f"last{k}": last[-k:] for k in (1, 5, 8)})
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", type=Path)
    parser.add_argument("--manifest", type=Path, action="append")
    parser.add_argument("--epochs", action="store_true", help="score single epochs")
    parser.add_argument(
        "--first",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="the best 8 of the first N epochs",
    )
    parser.add_argument(
        "--last",
        type=int,
        action="append",
        default=[],
        metavar="K",
        help="the last K whole epochs of the first 30",
    )
    parser.add_argument("--force", action="store_true", help="replace an earlier EXP/avg")
    args = parser.parse_args()
    if (args.exp / "avg").exists() and not args.force:
        raise SystemExit(f"{args.exp / 'avg'}: already exists (use --force to replace it)")
    manifests = args.manifest or [Path("data/digits/test.jsonl"), Path("data/digits/dev.jsonl")]
    base = load_checkpoint(args.exp / "final.pt")  # config, tokenizer and CMVN of the run
    (args.exp / "avg").mkdir(exist_ok=True)  # --force: files of the same names are replaced
    for policy, names in policies(args.exp, args.epochs, args.first, args.last).items():
        model = args.exp / "avg" / f"{policy}.pt"
        state = average_checkpoints([args.exp / "checkpoints" / name for name in names])
        torch.save({**base, "model": state}, model)
        for manifest in manifests:
            out = args.exp / "avg" / f"{policy}_{manifest.stem}"
            wer = asrkit.evaluate(model, manifest, out, force=True).summary()["wer"]
            print(policy, manifest.stem, f"{100 * wer:.2f}", " ".join(names), flush=True)


if __name__ == "__main__":
    main()
