"""Training throughput of a recipe config as the recipe runs it, in audio seconds per second.

Runs the real trainer through the recipes' own launcher, `cpu_train` of
`recipes/common/cpu_train.sh` (`attnasr train`, under `torchrun` with gloo when `--nproc` > 1,
one torch thread per process, each process taking `train.max_frames / nproc` frames), for
`--minutes` per config, one config at a time, and reads
the throughput the trainer itself logs: audio seconds of the training batches (all processes)
per second of training, validation excluded (`EXP/train_result.json`). Minutes instead of the
recipe's hour, so a change can be measured in a quarter of an hour; the 60-minute figures are in
the README.

    python benchmarks/bench_train_recipe.py --minutes 4 --nproc 2 \
        --train data/mini/mini_train.jsonl --valid data/mini/mini_dev.jsonl \
        --configs recipes/mini/conf/global.yaml recipes/mini/conf/local.yaml \
        recipes/mini/conf/monotonic.yaml --json benchmarks/results/train_recipe_mini.json

Data from `recipes/mini/run.sh --corpus ../shared/data --stage 0 --stop-stage 2`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from asrkit.cli.common import user_errors
from asrkit.config import apply_overrides, load_yaml
from asrkit.io import UserError, atomic_write_json, read_jsonl, refuse_overwrite

CPU_TRAIN = Path(__file__).resolve().parents[1] / "recipes" / "common" / "cpu_train.sh"


def train_command(config: Path, args: argparse.Namespace, exp: Path) -> list[str]:
    """The recipes' `cpu_train NPROC MAX_FRAMES ARGS...` for `config`, writing to `exp`."""
    max_frames = apply_overrides(load_yaml(config), args.set).train.max_frames
    launch = ["bash", "-c", '. "$0" && cpu_train "$@"', str(CPU_TRAIN), str(args.nproc)]
    command = [*launch, str(max_frames), str(config), "--train", str(args.train)]
    command += ["--valid", str(args.valid), "--out", str(exp), "--max-minutes", str(args.minutes)]
    for override in args.set:
        command += ["--set", override]
    return command


def epoch_speeds(exp: Path) -> list[float]:
    """Throughput so far at the end of each epoch (the last: where the budget stopped it)."""
    last = {
        row["epoch"]: row["audio_seconds_per_second"]
        for row in read_jsonl(exp / "metrics.jsonl")
        if row.get("kind") == "train"
    }
    return [last[epoch] for epoch in sorted(last)]


def run_config(config: Path, args: argparse.Namespace, run_dir: Path) -> dict:
    """Train `config` for `args.minutes` in `run_dir` and return its throughput row."""
    exp = run_dir / "exp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_dir.mkdir(parents=True)
    log = run_dir / "train.log"
    with log.open("w") as out:
        done = subprocess.run(train_command(config, args, exp), env=env, stdout=out, stderr=out)
    if done.returncode != 0:
        raise UserError(f"training {config} failed (exit {done.returncode}); see {log}")
    result = json.loads((exp / "train_result.json").read_text())
    return {
        "config": str(config),
        "nproc": args.nproc,
        "threads_per_process": 1,
        "minutes": args.minutes,
        "train_minutes": round(result["train_minutes"], 2),
        "epochs": result["epochs"],
        "steps": result["steps"],
        "audio_seconds_per_second": round(result["audio_seconds_per_second"], 1),
        "per_epoch_cumulative": [round(speed, 1) for speed in epoch_speeds(exp)],
    }


@user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, nargs="+", required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per config")
    parser.add_argument("--nproc", type=int, default=2, help="processes (1 thread each)")
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every config")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--force", action="store_true", help="replace an earlier --json")
    args = parser.parse_args()
    for path in [*args.configs, args.train, args.valid]:
        if not path.is_file():
            raise UserError(f"{path}: no such file")
    refuse_overwrite([args.json], args.force)  # before minutes of training, not after

    with tempfile.TemporaryDirectory(prefix="bench_train_recipe_") as tmp:
        # one folder per position: recipes/mini/conf/local.yaml and recipes/digits/conf/local.yaml
        rows = [run_config(c, args, Path(tmp) / str(i)) for i, c in enumerate(args.configs)]

    table = Table(title=f"training throughput, {args.nproc} process(es) x 1 thread")
    columns = ("config", "epochs", "train min", "audio-s/s", "so far, at each epoch's end")
    for column in columns:
        table.add_column(column)
    for row in rows:
        speeds = ", ".join(f"{speed:.1f}" for speed in row["per_epoch_cumulative"])
        config = Path(row["config"])
        table.add_row(
            f"{config.parent.parent.name}/{config.stem}",  # e.g. mini/local
            str(row["epochs"]),
            f"{row['train_minutes']:.2f}",
            f"{row['audio_seconds_per_second']:.1f}",
            speeds,
        )
    Console().print(table)
    if args.json:
        machine = {"platform": platform.platform(), "cpus": os.cpu_count()}
        atomic_write_json(args.json, {**machine, "rows": rows})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
