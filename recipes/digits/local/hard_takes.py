"""Which FSDD recordings (takes) the errors on the digit strings fall on, over several runs.

`attnasr prepare fsdd` joins takes into strings with a seeded plan; this script replays that
plan (the same seed, string count and digits per string as the prepare run), aligns every
hypothesis of each run's `utterances.jsonl` with its reference (jiwer), and charges each
substituted or deleted reference word to the take that fills its slot. A take wrong in most
runs is a property of the recording, not of one model; the table gives its length beside the
median length of the speaker's takes of the same digit, and how much of it lies more than
30 dB below its loudest 20 ms (pauses and silence).

Usage: python recipes/digits/local/hard_takes.py ../shared/data/fsdd/recordings \
    exp/*/eval/test [--speaker theo] [--top 25]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf

from data_prep.fsdd import (
    DIGIT_WORDS,
    Take,
    list_recordings,
    load_takes,
    plan_strings,
    speaker_rng,
)


def replay_plan(
    by_speaker: dict[str, list[Take]],
    speaker: str,
    count: int,
    digits: tuple[int, int],
    seed: int,
) -> list[list[Path]]:
    """The takes of each of `speaker`'s strings, in order, as `prepare_fsdd` drew them."""
    # the takes prepare planned with: it drops unreadable and empty ones first
    usable, _ = load_takes(by_speaker[speaker], [])
    plan = plan_strings(usable, count, digits[0], digits[1], speaker_rng(seed, speaker))
    return [[path for _, path in string] for string in plan]


def charge_errors(
    run: Path, plan: list[list[Path]], errors: Counter[Path], hyps: dict[Path, Counter[str]]
) -> None:
    """Add one run's substituted and deleted reference words to the takes that hold them."""
    for line in (run / "utterances.jsonl").read_text().splitlines():
        utt = json.loads(line)
        takes = plan[int(utt["id"].rsplit("-", 1)[1])]
        ref = utt["ref"].split()
        expected = [DIGIT_WORDS[int(t.name.split("_")[0])] for t in takes]
        if ref != expected:
            raise SystemExit(f"{run}: {utt['id']} does not match the replayed plan; check --seed")
        out = jiwer.process_words(utt["ref"], utt["hyp"] or "<empty>")
        hyp = out.hypotheses[0]
        for chunk in out.alignments[0]:
            if chunk.type not in ("substitute", "delete"):
                continue
            for k in range(chunk.ref_start_idx, chunk.ref_end_idx):
                errors[takes[k]] += 1
                shift = k - chunk.ref_start_idx
                word = hyp[chunk.hyp_start_idx + shift] if chunk.type == "substitute" else "-"
                hyps[takes[k]][word] += 1


def quiet_seconds(path: Path, below_db: float = 30.0) -> float:
    """Seconds of 20 ms frames more than `below_db` under the loudest frame of the take."""
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = wave.mean(axis=1)
    hop = max(1, int(0.02 * rate))
    frames = mono[: len(mono) // hop * hop].reshape(-1, hop)
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return float((level < level.max() - below_db).sum() * hop / rate)


def length_table(
    by_speaker: dict[str, list[Take]],
    trained_on: list[str],
    uses: Counter[Path],
    seconds: dict[Path, float],
    errors: Counter[Path],
    runs: int,
) -> None:
    """Error rate of the takes by length against the training speakers' takes of their digit."""
    lengths: dict[str, list[float]] = defaultdict(list)
    for speaker in trained_on:
        for digit, path in by_speaker.get(speaker, []):
            lengths[str(digit)].append(sf.info(str(path)).duration)
    bands: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for take, used in uses.items():
        reference = lengths[take.name[0]]
        low, high = np.percentile(reference, [5, 95])
        ratio = seconds[take] / statistics.median(reference)
        quarter = int(ratio * 4) / 4  # the ratio, in quarters
        inside = "inside" if low <= seconds[take] <= high else "outside"
        for band in (
            f"{inside} their 5-95% range",
            f"x{quarter:.2f}-{quarter + 0.25:.2f} their median",
        ):
            bands[band][0] += errors[take]
            bands[band][1] += used * runs
    print("take length against the training speakers' takes of the same digit:")
    for band, (wrong, seen) in sorted(bands.items()):
        print(f"  {band}: {wrong} wrong of {seen} ({wrong / seen:.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", type=Path, help="FSDD recordings/ folder")
    parser.add_argument("runs", type=Path, nargs="+", help="eval dirs with utterances.jsonl")
    parser.add_argument("--speaker", default="theo")
    parser.add_argument("--strings", type=int, default=200, help="the speaker's string count")
    parser.add_argument("--min-digits", type=int, default=2)
    parser.add_argument("--max-digits", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0, help="prepare fsdd's --seed")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--trained-on",
        nargs="+",
        default=["george", "jackson", "lucas", "nicolas", "yweweler"],
        help="the training speakers, whose take lengths are the reference",
    )
    args = parser.parse_args()
    span = (args.min_digits, args.max_digits)
    by_speaker, _ = list_recordings(args.recordings)  # the takes as prepare lists them
    plan = replay_plan(by_speaker, args.speaker, args.strings, span, args.seed)
    errors: Counter[Path] = Counter()
    hyps: dict[Path, Counter[str]] = defaultdict(Counter)
    for run in args.runs:
        charge_errors(run, plan, errors, hyps)
    uses = Counter(take for string in plan for take in string)
    seconds = {take: sf.info(str(take)).duration for take in uses}
    medians = {
        digit: statistics.median(s for t, s in seconds.items() if t.name[0] == digit)
        for digit in {t.name[0] for t in uses}
    }
    total, runs = sum(errors.values()), len(args.runs)
    print(f"{total} wrong reference words in {runs} runs ({total / runs:.1f} per run)")
    print("take | used | wrong / occurrences | heard as | seconds (digit median) | quiet s | share")
    covered = 0
    for take, count in errors.most_common(args.top):
        covered += count
        heard = ", ".join(f"{w} {n}" for w, n in hyps[take].most_common(3))
        print(
            f"{take.stem} | {uses[take]} | {count} / {uses[take] * runs} | {heard} | "
            f"{seconds[take]:.2f} ({medians[take.name[0]]:.2f}) | {quiet_seconds(take):.2f} | "
            f"{covered / total:.0%}"
        )
    length_table(by_speaker, args.trained_on, uses, seconds, errors, runs)


if __name__ == "__main__":
    main()
