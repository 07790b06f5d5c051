"""Speed of `prepare` on the shared LibriSpeech tree, as a multiple of real time.

Measures, for `--jobs 1` and `--jobs N`: manifests (audio headers of every part), feature
extraction into the store; then what the store saves per training epoch: reading every
utterance's features from the store versus decoding its audio and computing the filterbank.
Writes the figures to the "prepare" section of benchmarks/RESULTS.md (other sections kept).

    OMP_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_prepare.py \
        --corpus ../shared/data --jobs 2
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from asrkit.config import FeaturesConfig
from asrkit.data.feature_store import FeatureStore, compute_features, featurize
from asrkit.data.manifest import read_manifest
from data_prep.librispeech import prepare_librispeech

RESULTS = Path(__file__).with_name("RESULTS.md")


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children (pool workers)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Bench:
    """Times stages: wall and CPU seconds, turned into rows once the audio duration is known."""

    def __init__(self) -> None:
        self.timings: list[tuple[str, float, float]] = []
        self.audio_seconds = 0.0

    def run(self, stage: str, fn: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), _cpu()
        result = fn()
        self.timings.append((stage, time.perf_counter() - wall, _cpu() - cpu))
        return result

    def rows(self) -> list[list[str]]:
        audio = self.audio_seconds
        return [
            [stage, f"{wall:.2f}", f"{audio / wall:.0f}", f"{audio / cpu:.0f}"]
            for stage, wall, cpu in self.timings
        ]


def measure(corpus: Path, jobs: int) -> Bench:
    """Run every stage on every part of `corpus`."""
    feats = FeaturesConfig()
    bench = Bench()
    with tempfile.TemporaryDirectory() as tmp:
        manifests: list[Path] = []
        for n in sorted({1, jobs}):
            for verify in (False, True):
                out = Path(tmp) / f"jobs{n}-{verify}"
                what = "decode all audio (--verify)" if verify else "audio headers"
                reports = bench.run(
                    f"manifests, {what}, --jobs {n}",
                    lambda out=out, n=n, verify=verify: prepare_librispeech(
                        corpus, out, jobs=n, verify=verify, show_progress=False
                    ),
                )
                manifests = [r.path for r in reports.values()]  # type: ignore[attr-defined]
                hours = sum(r.hours for r in reports.values())  # type: ignore[attr-defined]
                bench.audio_seconds = 3600 * hours
        for n in sorted({1, jobs}):
            bench.run(
                f"features into the store, --jobs {n}",
                lambda n=n: [
                    compute_features(m, feats, jobs=n, force=True, show_progress=False)
                    for m in manifests
                ],
            )
        utts = [(m, u) for m in manifests for u in read_manifest(m)]
        stores = {m: FeatureStore.open(m, feats) for m in manifests}
        bench.run(
            "one training epoch of features: store read",
            lambda: [stores[m].get(u.id) for m, u in utts],  # type: ignore[union-attr]
        )
        bench.run(
            "one training epoch of features: decode + fbank",
            lambda: [featurize(u.audio, feats) for _, u in utts],
        )
    return bench


def write_section(text: str) -> None:
    """Replace (or append) the `## prepare` section of RESULTS.md, keeping the others."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## prepare\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(
        os.environ.get("ATTNASR_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data")
    )
    parser.add_argument("--corpus", type=Path, default=default, help="folder holding LibriSpeech/")
    parser.add_argument("--jobs", type=int, default=2, help="parallel run to compare with 1 job")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = measure(args.corpus, args.jobs)
    load = os.getloadavg()[0]
    lines = [
        "## prepare",
        "",
        f"`prepare` on the shared LibriSpeech tree ({bench.audio_seconds / 3600:.2f} h:"
        f" train-clean-100 FLAC + dev-clean MP3), {os.cpu_count()} cores, load average"
        f" {load:.1f} at the end. The machine is shared, so wall-clock figures depend on the"
        " load; audio seconds per CPU second does not. x real time = audio seconds per wall"
        " second (higher is faster). Each worker runs one torch thread.",
        "",
        "    OMP_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_prepare.py"
        f" --corpus ../shared/data --jobs {args.jobs}",
        "",
        "| stage | wall s | x real time | audio s per CPU s |",
        "|---|---:|---:|---:|",
        *[f"| {' | '.join(row)} |" for row in bench.rows()],
        "",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
