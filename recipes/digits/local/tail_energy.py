"""Per speaker and digit: how much of the energy at the end of each recording lies above a
cut-off frequency (a diagnostic for confusions such as theo's EIGHT -> SIX).

Usage: python recipes/digits/local/tail_energy.py ../shared/data/fsdd/recordings --digits 8 6
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf


def tail_share(path: Path, cutoff_hz: float, tail: float) -> float:
    """Energy above `cutoff_hz` over all energy, in the last `tail` fraction of the file."""
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = wave.mean(axis=1)
    end = mono[int((1.0 - tail) * len(mono)) :]
    power = np.abs(np.fft.rfft(end)) ** 2
    freqs = np.fft.rfftfreq(len(end), 1.0 / rate)
    return float(power[freqs > cutoff_hz].sum() / max(power.sum(), 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", type=Path, help="FSDD recordings/ folder")
    parser.add_argument("--digits", nargs="+", default=["8", "6"])
    parser.add_argument("--cutoff", type=float, default=2500.0, help="Hz")
    parser.add_argument("--tail", type=float, default=0.4, help="fraction of each file")
    args = parser.parse_args()
    shares: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path in sorted(args.recordings.glob("*.wav")):
        digit, speaker, _ = path.stem.split("_")
        if digit in args.digits:
            shares[speaker, digit].append(tail_share(path, args.cutoff, args.tail))
    print(f"share of tail energy above {args.cutoff:.0f} Hz (mean over recordings)")
    for speaker in sorted({s for s, _ in shares}):
        cells = [f"{d}: {np.mean(shares[speaker, d]):.2f}" for d in args.digits]
        print(f"{speaker:10s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
