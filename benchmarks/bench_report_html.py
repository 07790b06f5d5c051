"""What report.html costs for a large test set: writing it, its size, and the browser's time to
load, sort and filter it.

A synthetic scored set (N utterances of 20 words, 40 speakers, about 20% of the words changed:
the size of LibriSpeech dev-clean) is rendered by `asrkit.scoring.html.render_html`, then opened
in headless Chromium (Playwright, `--chromium` binary) where the WER column is sorted and the
list filtered. Writes report_html.json into `--out` (benchmarks/results); refuses to replace it
without `--force`.

    python benchmarks/bench_report_html.py --utterances 2700 --force
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

from asrkit.io import atomic_write_json, refuse_overwrite
from asrkit.scoring import score
from asrkit.scoring.html import render_html

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "hello",
    "world",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def synthetic_set(utterances: int, seed: int) -> tuple[dict[str, str], dict[str, str]]:
    rng = random.Random(seed)
    refs = {
        f"spk{i % 40}-{i:05d}": " ".join(rng.choice(WORDS) for _ in range(20))
        for i in range(utterances)
    }
    hyps = {
        utt: " ".join(w if rng.random() > 0.2 else rng.choice(WORDS) for w in text.split())
        for utt, text in refs.items()
    }
    return refs, hyps


def browse(page_path: Path, chromium: str) -> dict[str, float]:
    """Seconds to load the page, sort the utterances by WER and filter them."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(page_path.as_uri())
        loaded = time.perf_counter()
        page.locator("#utterances th[data-key=wer]").click()
        sorted_at = time.perf_counter()
        page.fill("#filter", "spk3")
        filtered = time.perf_counter()
        browser.close()
    return {
        "load_s": loaded - started,
        "sort_s": sorted_at - loaded,
        "filter_s": filtered - sorted_at,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=2700)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="replace earlier results in --out")
    args = parser.parse_args()
    out = args.out / "report_html.json"
    refuse_overwrite([out], args.force)
    refs, hyps = synthetic_set(args.utterances, args.seed)
    report = score(refs, hyps, bootstrap=100)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        page = render_html(report, Path(tmp))
        render_s = time.perf_counter() - started
        page_path = Path(tmp) / "report.html"
        page_path.write_text(page, encoding="utf-8")
        timings = browse(page_path, args.chromium)
    result = {
        "utterances": args.utterances,
        "render_s": render_s,
        "size_mb": len(page.encode("utf-8")) / 1e6,
        **timings,
        "machine": f"{cpu_model()}, {platform.platform()}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
