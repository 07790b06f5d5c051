"""`attnasr transcribe`: stdout for one file, a folder for many, refusals, warnings, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from decoding_support import tiny_experiment, write_tone
from typer.testing import CliRunner

from asrkit.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_experiment(tmp_path_factory.mktemp("exp"))


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audio")
    write_tone(folder / "a.wav", 1.2)
    (folder / "sub").mkdir()
    write_tone(folder / "sub" / "b.flac", 2.0, rate=8000, channels=2)
    sf.write(str(folder / "silent.wav"), np.zeros(16000, dtype=np.float32), 16000)
    return folder


def _run(*args: str) -> object:
    return runner.invoke(app, ["transcribe", *args])


def test_one_file_prints_to_stdout(exp_dir: Path, audio_dir: Path) -> None:
    result = _run(str(audio_dir / "a.wav"), "--model", str(exp_dir), "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"] == "a" and data["duration"] == pytest.approx(1.2)
    assert "RTF" in result.stderr


def test_repeated_model_decodes_as_an_ensemble(exp_dir: Path, audio_dir: Path) -> None:
    alone = _run(str(audio_dir / "a.wav"), "--model", str(exp_dir), "--beam", "2")
    twice = _run(str(audio_dir / "a.wav"), "--model", str(exp_dir), "--model", str(exp_dir),
                 "--beam", "2")  # fmt: skip
    assert alone.exit_code == 0 and twice.exit_code == 0, twice.stderr
    assert twice.stdout == alone.stdout


def test_folder_writes_every_format_and_plots(
    exp_dir: Path, audio_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(audio_dir), "--model", str(exp_dir), "--out", str(out), "--format", "all"]
    result = _run(*args, "--plot", "--beam", "2", "--batch-size", "2")
    assert result.exit_code == 0, result.stderr
    for stem in ("a", "b", "silent"):
        for ext in ("txt", "json", "srt", "vtt", "ctm"):
            assert (out / f"{stem}.{ext}").is_file()
    assert (out / "a.png").read_bytes()[:4] == b"\x89PNG" and (out / "b.png").is_file()
    assert not (out / "silent.png").exists()  # nothing decoded, nothing to plot
    assert "silent" in result.stderr  # the warning
    rows = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "silent", "b"]
    assert json.loads((out / "timing.json").read_text())["files"] == 3
    again = _run(*args)
    assert again.exit_code == 1 and "earlier results" in again.stderr
    assert _run(*args, "--force").exit_code == 0


def test_list_file(exp_dir: Path, audio_dir: Path, tmp_path: Path) -> None:
    listing = tmp_path / "files.lst"
    listing.write_text(f"# two files\n{audio_dir / 'a.wav'}\n\n{audio_dir / 'sub' / 'b.flac'}\n")
    result = _run(f"@{listing}", "--model", str(exp_dir), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").glob("*.txt")) == ["a.txt", "b.txt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.wav"], "audio file not found"),
        (["{audio}/a.wav", "{audio}/sub/b.flac"], "--out"),
        (["{audio}/a.wav", "--format", "all"], "--out"),
    ],
)
def test_user_errors(exp_dir: Path, audio_dir: Path, args: list[str], message: str) -> None:
    args = [a.format(audio=audio_dir) for a in args]
    result = _run(*args, "--model", str(exp_dir))
    assert result.exit_code == 1 and message in result.stderr
    assert "Traceback" not in result.output


def test_model_dir_without_checkpoint(audio_dir: Path, tmp_path: Path) -> None:
    result = _run(str(audio_dir / "a.wav"), "--model", str(tmp_path))
    assert result.exit_code == 1 and "no checkpoint found" in result.stderr
