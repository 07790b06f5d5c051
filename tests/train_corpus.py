"""A synthetic corpus for training tests: each letter is a tone, so a tiny LAS can learn it.

Letters A-D are 120 ms sine tones at distinct frequencies, words are separated by 40 ms of
silence; utterances are 16 kHz WAV files with a manifest, like `attnasr prepare` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from asrkit.data.manifest import Utterance, write_manifest

RATE = 16000
FREQS = {"A": 350.0, "B": 700.0, "C": 1400.0, "D": 2800.0}


def _tone(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)


def write_corpus(root: Path, name: str, count: int, seed: int = 0) -> Path:
    """Write `count` utterances of 2-4 one-letter words under root/name; returns the manifest."""
    rng = np.random.default_rng(seed)
    audio_dir = root / name
    audio_dir.mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(count):
        words = list(rng.choice(list(FREQS), size=int(rng.integers(2, 5))))
        pieces = []
        for word in words:
            pieces += [_tone(FREQS[word], 0.12, rng), 0.01 * rng.standard_normal(int(0.04 * RATE))]
        wave = np.concatenate(pieces).astype(np.float32)
        path = audio_dir / f"{name}-{i:03d}.wav"
        sf.write(path, wave, RATE)
        utts.append(
            Utterance(
                id=f"{name}-{i:03d}",
                audio=str(path),
                duration=wave.size / RATE,
                sample_rate=RATE,
                speaker=f"spk{i % 3}",
                text=" ".join(words),
            )
        )
    manifest = root / f"{name}.jsonl"
    write_manifest(manifest, utts)
    return manifest
