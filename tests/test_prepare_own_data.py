"""`prepare folder`, `prepare table` and `prepare fsdd`."""

from __future__ import annotations

import importlib.util
import json
import os
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from prepare_util import write_audio
from typer.testing import CliRunner

from asrkit.cli.main import app
from asrkit.data.manifest import read_manifest
from asrkit.io import UserError
from data_prep.fsdd import DIGIT_WORDS, list_recordings, plan_strings, prepare_fsdd
from data_prep.own_data import prepare_folder, prepare_table

runner = CliRunner()


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    """alice/a.wav + a.txt, bob/b.flac + b.txt (8 kHz), bob/c.wav without text, bob/d.txt
    without audio, bob/e.wav that is not audio, top.wav at the top level."""
    root = tmp_path / "rec"
    write_audio(root / "alice" / "a.wav", 1.0)
    (root / "alice" / "a.txt").write_text("Hello, there!\n")
    write_audio(root / "bob" / "b.flac", 0.5, rate=8000)
    (root / "bob" / "b.txt").write_text("good-bye\r\n")
    write_audio(root / "bob" / "c.wav", 0.5)
    (root / "bob" / "d.txt").write_text("orphan")
    (root / "bob" / "e.wav").write_text("plain text with a .wav name")
    (root / "bob" / "e.txt").write_text("not audio")
    write_audio(root / "top.wav", 0.25)
    (root / "top.txt").write_text("top")
    return root


def test_folder_manifest_and_problems(recordings: Path, tmp_path: Path) -> None:
    report = prepare_folder(recordings, tmp_path / "data", show_progress=False)
    assert report.path == tmp_path / "data" / "rec.jsonl"
    utts = {u.id: u for u in read_manifest(report.path)}
    assert {k: (u.text, u.speaker) for k, u in utts.items()} == {
        "alice-a": ("HELLO THERE", "alice"),
        "bob-b": ("GOOD BYE", "bob"),
        "top": ("TOP", "rec"),
    }
    assert utts["bob-b"].sample_rate == 8000 and utts["bob-b"].duration == pytest.approx(0.5)
    assert {(p.kind, p.utt_id) for p in report.problems} == {
        ("no transcript", "bob-c"),
        ("missing audio", "bob-d"),
        ("unreadable audio", "bob-e"),
    }
    assert prepare_folder(recordings, tmp_path / "data", show_progress=False).skipped


def test_folder_cli_strict_and_bad_input(recordings: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "data")
    result = runner.invoke(app, ["prepare", "folder", str(recordings), "--out", out, "--strict"])
    assert result.exit_code == 1 and "3 problem(s)" in result.output
    assert "unreadable audio" in result.output
    missing = runner.invoke(app, ["prepare", "folder", str(tmp_path / "nope"), "--out", out])
    assert missing.exit_code == 1 and "folder not found" in missing.output
    (tmp_path / "textonly").mkdir()
    (tmp_path / "textonly" / "x.txt").write_text("x")
    empty = runner.invoke(app, ["prepare", "folder", str(tmp_path / "textonly"), "--out", out])
    assert empty.exit_code == 1 and "no audio files" in empty.output


@pytest.mark.parametrize(
    ("filename", "sep"), [("list.tsv", "\t"), ("list.csv", ","), ("list.txt", ";")]
)
def test_table_formats(recordings: Path, tmp_path: Path, filename: str, sep: str) -> None:
    table = recordings / filename
    rows = [
        ["path", "text", "speaker", "id"],
        ["alice/a.wav", "Hello there", "", ""],
        [str(recordings / "bob" / "b.flac"), "good bye", "robert", "utt-b"],
        ["bob/missing.wav", "nothing", "", ""],
        ["bob/c.wav", "   ", "", ""],
    ]
    table.write_text("".join(sep.join(r) + "\n" for r in rows))
    report = prepare_table(table, tmp_path / "data", name="mine", show_progress=False)
    utts = {u.id: u for u in read_manifest(report.path)}
    assert {k: (u.text, u.speaker) for k, u in utts.items()} == {
        "alice-a": ("HELLO THERE", "alice"),
        "utt-b": ("GOOD BYE", "robert"),
    }
    assert all(os.path.isabs(u.audio) for u in utts.values())
    assert sorted(p.kind for p in report.problems) == ["empty transcript", "missing audio"]


def test_table_without_header_is_one_line_error(recordings: Path, tmp_path: Path) -> None:
    table = recordings / "list.tsv"
    table.write_text("alice/a.wav\thello\n")
    with pytest.raises(UserError, match="must name the columns path and text"):
        prepare_table(table, tmp_path / "data")
    result = runner.invoke(app, ["prepare", "table", str(table), "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and result.output.startswith("error:")


@pytest.fixture
def mini_fsdd(fsdd_dir: Path, tmp_path: Path) -> Path:
    """Two digits x two takes of every speaker, linked from the shared recordings."""
    root = tmp_path / "fsdd"
    root.mkdir()
    for path in fsdd_dir.glob("[27]_*_[01].wav"):
        (root / path.name).symlink_to(path)
    return root


def test_fsdd_digit_strings(mini_fsdd: Path, tmp_path: Path) -> None:
    reports = prepare_fsdd(mini_fsdd, tmp_path / "a", strings_per_speaker=4, show_progress=False)
    train, test = (read_manifest(reports[n].path) for n in ("train", "test"))
    assert {u.speaker for u in test} == {"theo"} and len(test) == 2
    assert len({u.speaker for u in train}) == 5 and len(train) == 20
    for utt in train + test:
        words = utt.text.split()
        assert 2 <= len(words) <= 6 and set(words) <= {DIGIT_WORDS[2], DIGIT_WORDS[7]}
        info = sf.info(utt.audio)
        assert info.samplerate == 16000 and Path(utt.audio).is_relative_to(tmp_path / "a" / "audio")
        # each take is >= 0.2 s, each gap >= 0.1 s: a lower bound that catches lost digits
        assert utt.duration > 0.2 * len(words) + 0.1 * (len(words) - 1)
    # Every speaker at one level (theo was recorded ~15 dB below the others), no digital zeros.
    levels = {}
    for utt in train + test:
        wave, _ = sf.read(utt.audio, dtype="float32")
        assert (wave == 0).mean() < 0.1  # zero-valued gaps made up a third of a string
        loud = wave[np.abs(wave) > 10 * 3e-4]  # the takes, not the quiet between them
        levels.setdefault(utt.speaker, []).append(float(np.sqrt(np.mean(loud**2))))
    means = [float(np.mean(v)) for v in levels.values()]
    assert max(means) / min(means) < 1.6, levels
    again = prepare_fsdd(mini_fsdd, tmp_path / "b", strings_per_speaker=4, show_progress=False)
    second = read_manifest(again["train"].path)
    assert [u.text for u in second] == [u.text for u in train]  # same seed, same strings
    assert Path(second[0].audio).read_bytes() == Path(train[0].audio).read_bytes()
    assert prepare_fsdd(mini_fsdd, tmp_path / "a", strings_per_speaker=4)["train"].skipped


def test_fsdd_uses_every_recording(mini_fsdd: Path, tmp_path: Path) -> None:
    by_speaker, problems = list_recordings(mini_fsdd)
    assert not problems and sorted(by_speaker) == sorted(
        ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    )
    takes = by_speaker["george"]
    strings = plan_strings(takes, 2, 2, 2, random.Random(0))  # exactly 4 slots for 4 takes
    assert sorted(t for s in strings for t in s) == sorted(takes)


def test_fsdd_cli_bad_input(tmp_path: Path) -> None:
    out = str(tmp_path / "d")
    result = runner.invoke(app, ["prepare", "fsdd", str(tmp_path / "none"), "--out", out])
    assert result.exit_code == 1 and "recordings folder not found" in result.output
    (tmp_path / "rec").mkdir()
    write_audio(tmp_path / "rec" / "1_george_0.wav", 0.3, rate=8000)
    result = runner.invoke(app, ["prepare", "fsdd", str(tmp_path / "rec"), "--out", out])
    assert result.exit_code == 1 and "test speaker 'theo'" in result.output
    result = runner.invoke(
        app, ["prepare", "fsdd", str(tmp_path / "rec"), "--out", out, "--min-digits", "7"]
    )
    assert result.exit_code == 1 and "--min-digits" in result.output


def test_hard_takes_replays_the_plan_and_charges_each_error_to_its_take(
    mini_fsdd: Path, tmp_path: Path
) -> None:
    script = Path(__file__).parents[1] / "recipes" / "digits" / "local" / "hard_takes.py"
    spec = importlib.util.spec_from_file_location("hard_takes", script)
    assert spec is not None and spec.loader is not None
    hard_takes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hard_takes)
    reports = prepare_fsdd(mini_fsdd, tmp_path / "d", strings_per_speaker=8, show_progress=False)
    test = read_manifest(reports["test"].path)
    plan = hard_takes.replay_plan(list_recordings(mini_fsdd)[0], "theo", len(test), (2, 6), 0)
    texts = [" ".join(DIGIT_WORDS[int(t.name[0])] for t in takes) for takes in plan]
    assert texts == [u.text for u in test]
    # one word of the first string misheard: the error goes to the take in that slot
    run = tmp_path / "run"
    run.mkdir()
    first = test[0].text.split()
    wrong = ["SEVEN" if first[0] == "TWO" else "TWO", *first[1:]]
    rows = [{"id": u.id, "ref": u.text, "hyp": u.text} for u in test]
    rows[0]["hyp"] = " ".join(wrong)
    (run / "utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    errors: Counter[Path] = Counter()
    heard: dict[Path, Counter[str]] = defaultdict(Counter)
    hard_takes.charge_errors(run, plan, errors, heard)
    assert errors == Counter({plan[0][0]: 1}) and heard[plan[0][0]] == Counter({wrong[0]: 1})
    with pytest.raises(SystemExit, match="does not match the replayed plan"):
        hard_takes.charge_errors(run, plan[1:] + plan[:1], Counter(), defaultdict(Counter))
