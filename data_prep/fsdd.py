"""Connected-digit strings from the Free Spoken Digit Dataset: a fast real-speech task.

FSDD holds isolated digits, `{digit}_{speaker}_{take}.wav` at 8 kHz. We join several recordings
of ONE speaker with 100-300 ms of quiet into strings such as "FOUR ONE NINE", resampled to
16 kHz and written as WAV under `DATA_DIR/audio/<speaker>/`. `train.jsonl` holds five speakers,
`test.jsonl` the sixth (theo), so the test measures speaker-independent recognition.

Every take is scaled to the same RMS level and the quiet between takes is faint noise, not
digital zeros: the speakers were recorded 15 dB apart (theo and yweweler at RMS ~0.01, the
others ~0.05-0.09), and zero-valued gaps put a floor in the log-mel features that no real
recording has, so a model could learn the recording level instead of the digit.

Each speaker's recordings are shuffled with a seeded generator and consumed in turn (reshuffled
when exhausted), so every recording is used once before any is used twice, and the same seed
always gives the same strings.

Example:
    >>> reports = prepare_fsdd(Path("../shared/data/fsdd/recordings"), Path("data/digits"))
    >>> reports["test"].speakers
    1
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from asrkit.data.parallel import progress_bar
from asrkit.features import load_audio
from asrkit.io import UserError, atomic_open, ensure_writable_dir, require_dir
from data_prep.common import (
    BAD_LINE,
    UNREADABLE_AUDIO,
    Candidate,
    PartReport,
    Problem,
    build_part,
    reuse_part,
)
from data_prep.provenance import input_record

DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
TEST_SPEAKER = "theo"
SAMPLE_RATE = 16000
GAP_SECONDS = (0.1, 0.3)  # silence between two digits
EDGE_SECONDS = 0.1  # silence before the first and after the last digit
TAKE_RMS = 0.05  # every take is scaled to this RMS (about -26 dBFS), peaks kept below 0.99
GAP_NOISE_RMS = 3e-4  # the quiet between takes: Gaussian noise about 44 dB below the speech
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")

Take = tuple[int, Path]  # (digit, recording)


def list_recordings(fsdd_dir: Path) -> tuple[dict[str, list[Take]], list[Problem]]:
    """Recordings by speaker, sorted by (digit, take); badly named WAVs are problems."""
    fsdd_dir = require_dir(Path(fsdd_dir), "FSDD recordings folder")
    speakers: dict[str, list[tuple[int, int, Path]]] = {}
    problems = []
    for path in sorted(fsdd_dir.glob("*.wav")):
        match = _NAME.match(path.name)
        if match is None:
            problems.append(Problem(BAD_LINE, None, str(path), "not named digit_speaker_take.wav"))
            continue
        digit, speaker, take = int(match.group(1)), match.group(2), int(match.group(3))
        speakers.setdefault(speaker, []).append((digit, take, path))
    if not speakers:
        raise UserError(f"{fsdd_dir}: no FSDD recordings (digit_speaker_take.wav) found")
    return {s: [(d, p) for d, _, p in sorted(v)] for s, v in speakers.items()}, problems


def plan_strings(
    takes: list[Take], count: int, min_digits: int, max_digits: int, rng: random.Random
) -> list[list[Take]]:
    """`count` strings of `min_digits`..`max_digits` takes, cycling through shuffled takes."""
    pool: list[Take] = []
    strings = []
    for _ in range(count):
        length = rng.randint(min_digits, max_digits)
        string = []
        for _ in range(length):
            if not pool:
                pool = list(takes)
                rng.shuffle(pool)
            string.append(pool.pop())
        strings.append(string)
    return strings


def _level(wave: np.ndarray) -> np.ndarray:
    """A take scaled to TAKE_RMS, or less where that would push a peak past 0.99."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    peak = float(np.abs(wave).max())
    gain = min(TAKE_RMS / max(rms, 1e-6), 0.99 / max(peak, 1e-6))
    return (wave * gain).astype(np.float32)


def _render(string: list[Take], waves: dict[Path, np.ndarray], rng: random.Random) -> np.ndarray:
    """Level-normalised takes joined by faint noise: (N,) float32 at 16 kHz."""
    noise = np.random.default_rng(rng.randrange(2**32))

    def quiet(seconds: float) -> np.ndarray:
        return (noise.standard_normal(int(seconds * SAMPLE_RATE)) * GAP_NOISE_RMS).astype(
            np.float32
        )

    pieces = [quiet(EDGE_SECONDS)]
    for i, (_, path) in enumerate(string):
        if i:
            pieces.append(quiet(rng.uniform(*GAP_SECONDS)))
        pieces.append(_level(waves[path]))
    pieces.append(quiet(EDGE_SECONDS))
    return np.clip(np.concatenate(pieces), -1.0, 1.0)


def speaker_rng(seed: int, speaker: str) -> random.Random:
    """The generator that plans and renders `speaker`'s strings for `prepare_fsdd(seed=...)`."""
    # A string seed (not hash()) is stable across runs and Python versions.
    return random.Random(f"{seed}:{speaker}")


def load_takes(
    takes: list[Take], problems: list[Problem]
) -> tuple[list[Take], dict[Path, np.ndarray]]:
    """The readable, non-empty takes (the ones strings are planned from) and their waves.

    An unreadable take is added to `problems`; an empty one is skipped.
    """
    waves, usable = {}, []
    for digit, path in takes:
        try:
            wave = load_audio(path, SAMPLE_RATE)
        except UserError as exc:
            problems.append(Problem(UNREADABLE_AUDIO, None, str(path), str(exc)))
            continue
        if wave.numel() == 0:
            continue
        waves[path] = wave.numpy()
        usable.append((digit, path))
    return usable, waves


def _write_wav(path: Path, wave: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        sf.write(handle, wave, SAMPLE_RATE, format="WAV", subtype="PCM_16")


def prepare_fsdd(
    fsdd_dir: Path,
    out_dir: Path,
    strings_per_speaker: int = 400,
    min_digits: int = 2,
    max_digits: int = 6,
    seed: int = 0,
    force: bool = False,
    show_progress: bool = True,
) -> dict[str, PartReport]:
    """Write `train.jsonl` (five speakers) and `test.jsonl` (theo) of digit strings.

    Args:
        fsdd_dir: the `recordings/` folder.
        out_dir: DATA_DIR; the audio goes to `DATA_DIR/audio/<speaker>/`.
        strings_per_speaker: strings per training speaker; theo gets half as many.
        min_digits: shortest string.
        max_digits: longest string.
        seed: the same seed gives the same strings and audio.
        force: rebuild an existing set.
        show_progress: draw progress bars.
    """
    if not 1 <= min_digits <= max_digits:
        raise UserError(f"need 1 <= --min-digits <= --max-digits, got {min_digits}, {max_digits}")
    if strings_per_speaker < 2:
        raise UserError(f"--strings-per-speaker must be at least 2, got {strings_per_speaker}")
    out_dir = ensure_writable_dir(Path(out_dir))
    by_speaker, problems = list_recordings(fsdd_dir)
    options = {
        "strings_per_speaker": strings_per_speaker,
        "min_digits": min_digits,
        "max_digits": max_digits,
        "seed": seed,
    }
    record = input_record("fsdd", options, [], Path(fsdd_dir).glob("*.wav"))
    done = {n: reuse_part(n, out_dir, record, force) for n in ("train", "test")}
    if all(done.values()):
        return {n: r for n, r in done.items() if r is not None}
    if TEST_SPEAKER not in by_speaker:
        raise UserError(f"{fsdd_dir}: no recordings of the test speaker '{TEST_SPEAKER}'")
    audio_dir = out_dir / "audio"
    candidates: dict[str, list[Candidate]] = {"train": [], "test": []}
    with progress_bar(show_progress) as progress:
        task = progress.add_task("fsdd: digit strings", total=len(by_speaker))
        for speaker, takes in sorted(by_speaker.items()):
            test = speaker == TEST_SPEAKER
            shutil.rmtree(audio_dir / speaker, ignore_errors=True)
            usable, waves = load_takes(takes, problems)
            rng = speaker_rng(seed, speaker)
            count = strings_per_speaker // 2 if test else strings_per_speaker
            for i, string in enumerate(plan_strings(usable, count, min_digits, max_digits, rng)):
                utt_id = f"{speaker}-{i:04d}"
                path = audio_dir / speaker / f"{utt_id}.wav"
                _write_wav(path, _render(string, waves, rng))
                text = " ".join(DIGIT_WORDS[d] for d, _ in string)
                cand = Candidate(id=utt_id, audio=path, text=text, speaker=speaker)
                candidates["test" if test else "train"].append(cand)
            progress.advance(task)
    theo = [p for p in problems if f"_{TEST_SPEAKER}_" in Path(p.path).name]
    others = [p for p in problems if p not in theo]
    split = {"train": others, "test": theo}
    return {
        name: build_part(
            name, candidates[name], out_dir, split[name], show_progress=show_progress, record=record
        )
        for name in ("train", "test")
    }
