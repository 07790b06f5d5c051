"""Synthesise the embedded demo corpus (`asrkit/demo_data/`) with espeak-ng.

The corpus is a closed-vocabulary task small enough for a tiny LAS to learn in a few CPU
minutes: connected digit strings ("FOUR ONE SEVEN") and short commands from a grammar
("PUT THE RED BOX ON THE TABLE"), 49 words in all. Every utterance is spoken by one espeak-ng
"speaker" (an English voice plus a voice variant) at a random speed and pitch, trimmed, resampled
to 16 kHz, mixed with white or pink noise at 20-30 dB SNR and written as 16-bit FLAC.

The test split uses voice variants that never occur in training, so the held-out WER measures
generalisation to new speakers rather than memorisation. The run is seeded: the same command
reproduces the same texts, speakers and noise (espeak-ng itself is deterministic).

Regenerate (or enlarge, with bigger counts) from the repository root:

    python data_prep/make_demo_corpus.py --out asrkit/demo_data --force

Only this script needs espeak-ng; the demo reads the FLAC files it wrote.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000

DIGITS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "OH")
VERBS = ("PUT", "MOVE", "TAKE", "FIND", "OPEN", "PUSH", "BRING", "SHOW")
COLOURS = ("RED", "GREEN", "BLUE", "WHITE", "BLACK", "YELLOW", "BROWN", "PINK")
OBJECTS = ("BOX", "BALL", "CUP", "BOOK", "CHAIR", "LAMP", "DOOR", "COAT", "KEY", "SHOE")
PREPOSITIONS = ("ON", "UNDER", "NEAR", "BEHIND", "INTO")
PLACES = ("TABLE", "FLOOR", "BED", "SHELF", "WINDOW", "GARDEN")

# English espeak-ng voices (accents); `espeak-ng --voices=en` lists them. The MBROLA ones are
# left out because they need extra packages.
VOICES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
# Voice variants (`espeak-ng --voices=variant`) change the formants, pitch range and breathiness:
# they play the role of speakers. The two sets are disjoint, which is what makes the split by voice.
TRAIN_VARIANTS = ("m1", "m2", "m4", "m5", "m7", "f1", "f3", "f5", "klatt", "Andy", "belinda")
TEST_VARIANTS = ("m3", "m6", "f2", "f4", "klatt3")


@dataclass(frozen=True)
class Spoken:
    """One utterance to synthesise."""

    id: str
    text: str
    speaker: str  # "<voice>+<variant>", the argument of `espeak-ng -v`
    speed: int  # words per minute
    pitch: int  # 0-99
    snr_db: float
    noise: str  # "white" or "pink"
    gain_db: float  # peak level of the speech, dBFS


def sample_text(rng: np.random.Generator) -> str:
    """A digit string (2-4 digits) or "<VERB> THE <COLOUR> <OBJECT> [<PREP> THE <PLACE>]"."""
    if rng.random() < 0.45:
        return " ".join(rng.choice(DIGITS, size=int(rng.integers(2, 5))))
    words = [str(rng.choice(VERBS)), "THE", str(rng.choice(COLOURS)), str(rng.choice(OBJECTS))]
    if rng.random() < 0.3:
        words += [str(rng.choice(PREPOSITIONS)), "THE", str(rng.choice(PLACES))]
    return " ".join(words)


def plan_split(
    name: str, count: int, variants: tuple[str, ...], rng: np.random.Generator
) -> list[Spoken]:
    """Draw `count` utterances for one split, cycling through every voice x variant speaker."""
    speakers = [f"{voice}+{variant}" for voice in VOICES for variant in variants]
    rng.shuffle(speakers)
    plan = []
    for index in range(count):
        speaker = speakers[index % len(speakers)]
        plan.append(
            Spoken(
                id=f"{name}-{index:04d}",
                text=sample_text(rng),
                speaker=speaker,
                speed=int(rng.integers(130, 191)),
                pitch=int(rng.integers(30, 71)),
                snr_db=float(rng.uniform(20.0, 30.0)),
                noise=str(rng.choice(["white", "pink"])),
                gain_db=float(rng.uniform(-24.0, -16.0)),
            )
        )
    return plan


def synthesise(spoken: Spoken, tmp_dir: Path) -> np.ndarray:
    """Run espeak-ng and return the speech, trimmed and resampled: (N,) float32 at 16 kHz."""
    wav = tmp_dir / f"{spoken.id}.wav"
    command = ["espeak-ng", "-v", spoken.speaker, "-s", str(spoken.speed), "-p", str(spoken.pitch)]
    subprocess.run([*command, "-w", str(wav), spoken.text.lower()], check=True)
    audio, rate = sf.read(wav, dtype="float32", always_2d=False)
    audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    return trim_silence(audio)


def trim_silence(audio: np.ndarray, margin_s: float = 0.1) -> np.ndarray:
    """Cut espeak-ng's long leading/trailing silence but keep a short margin, as a recording has."""
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    if loud.size == 0:
        return audio
    margin = int(margin_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - margin) : loud[-1] + margin]


def add_noise(
    speech: np.ndarray, snr_db: float, colour: str, rng: np.random.Generator
) -> np.ndarray:
    """Mix white or pink (1/f power) noise at `snr_db` relative to the speech power."""
    noise = rng.standard_normal(speech.size)
    if colour == "pink":
        # Shape the spectrum by 1/sqrt(f) in amplitude, i.e. 1/f in power.
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
        noise = np.fft.irfft(spectrum, speech.size)
    speech_power = float(np.mean(speech**2))
    noise *= np.sqrt(speech_power / (10 ** (snr_db / 10)) / max(float(np.mean(noise**2)), 1e-12))
    return (speech + noise).astype(np.float32)


def render(spoken: Spoken, tmp_dir: Path, rng: np.random.Generator) -> np.ndarray:
    """Synthesise, set the level, add noise: (N,) float32 at 16 kHz, peak below 1."""
    speech = synthesise(spoken, tmp_dir)
    speech *= 10 ** (spoken.gain_db / 20) / max(float(np.abs(speech).max()), 1e-9)
    return np.clip(add_noise(speech, spoken.snr_db, spoken.noise, rng), -1.0, 1.0)


def write_split(out_dir: Path, name: str, plan: list[Spoken], rng: np.random.Generator) -> float:
    """Write the FLAC files and `<name>.tsv`; returns the total duration in seconds."""
    total = 0.0
    rows = []
    with tempfile.TemporaryDirectory(prefix="demo-corpus-") as tmp:
        for spoken in plan:
            audio = render(spoken, Path(tmp), rng)
            relative = f"audio/{spoken.id}.flac"
            sf.write(out_dir / relative, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            total += audio.size / SAMPLE_RATE
            rows.append((spoken.id, relative, spoken.speaker, spoken.text))
    with (out_dir / f"{name}.tsv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(("id", "path", "speaker", "text"))
        writer.writerows(rows)
    return total


def check_variants(variants: tuple[str, ...]) -> None:
    """Fail early on a variant this espeak-ng lacks: it would silently fall back to the plain voice
    and merge two "speakers"."""
    listing = subprocess.run(
        ["espeak-ng", "--voices=variant"], check=True, capture_output=True, text=True
    ).stdout
    known = {word[3:] for word in listing.split() if word.startswith("!v/")}
    missing = sorted(set(variants) - known)
    if missing:
        raise SystemExit(f"error: espeak-ng lacks the voice variants {', '.join(missing)}")


def make_corpus(
    out_dir: Path, n_train: int, n_test: int, seed: int, force: bool
) -> dict[str, float]:
    """Build the corpus in `out_dir` (audio/, train.tsv, test.tsv); returns seconds per split."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("error: espeak-ng is not installed (Debian/Ubuntu: apt install espeak-ng)")
    check_variants(TRAIN_VARIANTS + TEST_VARIANTS)
    audio_dir = out_dir / "audio"
    if audio_dir.exists():
        if not force:
            raise SystemExit(f"error: {audio_dir} already exists (use --force to regenerate)")
        shutil.rmtree(audio_dir)
    audio_dir.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    plans = {
        "train": plan_split("train", n_train, TRAIN_VARIANTS, rng),
        "test": plan_split("test", n_test, TEST_VARIANTS, rng),
    }
    return {name: write_split(out_dir, name, plan, rng) for name, plan in plans.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("asrkit/demo_data"))
    parser.add_argument("--train", type=int, default=320, help="training utterances")
    parser.add_argument("--test", type=int, default=80, help="held-out utterances")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--force", action="store_true", help="replace an existing audio/ folder")
    args = parser.parse_args(argv)
    seconds = make_corpus(args.out, args.train, args.test, args.seed, args.force)
    size = sum(p.stat().st_size for p in (args.out / "audio").iterdir())
    for name, total in seconds.items():
        print(f"{name}: {total / 60:.1f} min of audio")
    print(f"audio size: {size / 2**20:.2f} MiB in {args.out / 'audio'}", file=sys.stdout)


if __name__ == "__main__":
    main()
