"""Fuzz every parser a user feeds with many more examples than CI runs, and count outcomes.

The targets and the property are `tests/fuzz_targets.py`'s: a parsed result or a one-line
`UserError`. Each parser gets `--examples` fresh random inputs (not derandomized, so every run
explores new ones; `--seed` repeats a run); the counts of parsed and refused inputs, and any
unexpected exception with the smallest input hypothesis shrank it to, go to a JSON file.

    python benchmarks/fuzz_parsers.py --examples 2000
    python benchmarks/fuzz_parsers.py --examples 200 --only manifest --out /tmp/fuzz
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the targets live beside the CI test that runs them

from fuzz_targets import TARGETS, FuzzTarget, outcome  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from asrkit.io import UserError, refuse_overwrite  # noqa: E402


def fuzz(target: FuzzTarget, examples: int, run_seed: int) -> dict[str, object]:
    """Run one target; the counts, and the first unexpected exception (shrunk) if any."""
    counts: Counter[str] = Counter()

    @seed(run_seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(target.inputs)
    def check(value: object) -> None:
        counts[outcome(target, value)] += 1

    started = time.perf_counter()
    failure = None
    try:
        check()
    except Exception as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        failure = text if len(text) < 800 else text[:800] + " ..."  # inputs can be huge
    return {
        "parser": target.name,
        "examples": sum(counts.values()),
        "parsed": counts["parsed"],
        "refused": counts["refused"],
        "unexpected": failure,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="Per parser.")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--only", default="", help="Run the parsers whose name contains this.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--force", action="store_true", help="Replace an earlier result.")
    args = parser.parse_args()
    target = args.out / f"fuzz_parsers_{args.examples}.json"
    try:
        refuse_overwrite([target], args.force)
    except UserError as exc:
        sys.exit(f"error: {exc}")
    rows = []
    for fuzz_target in TARGETS:
        if args.only and args.only not in fuzz_target.name:
            continue
        row = fuzz(fuzz_target, args.examples, args.seed)
        rows.append(row)
        print(
            f"{row['parser']:52s} {row['examples']:6d} examples  {row['parsed']:6d} parsed  "
            f"{row['refused']:6d} refused  {row['seconds']:7.1f} s  "
            f"{'OK' if row['unexpected'] is None else 'UNEXPECTED: ' + str(row['unexpected'])}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "command": " ".join(["python", "benchmarks/fuzz_parsers.py", *sys.argv[1:]]),
        "seed": args.seed,
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "rows": rows,
    }
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {target}")
    if any(row["unexpected"] for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
