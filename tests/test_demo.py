"""The embedded demo corpus, its generator, and `attnasr demo` (refusals and a short real run)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from asrkit.cli.main import app
from asrkit.demo import DEMO_CONFIG, DEMO_DATA, prepare_out_dir, read_split, split_dev
from data_prep import make_demo_corpus as corpus

runner = CliRunner()
VOCABULARY = set(
    corpus.DIGITS
    + corpus.VERBS
    + corpus.COLOURS
    + corpus.OBJECTS
    + corpus.PREPOSITIONS
    + corpus.PLACES
    + ("THE",)
)


def rows(split: str) -> list[dict[str, str]]:
    with (DEMO_DATA / f"{split}.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def variant(speaker: str) -> str:
    return speaker.split("+", 1)[1]


def test_corpus_files_are_16k_mono_flac_with_closed_vocabulary_texts() -> None:
    listed = rows("train") + rows("test")
    assert len(listed) >= 300
    assert len({r["id"] for r in listed}) == len(listed)
    for row in listed:
        info = sf.info(str(DEMO_DATA / row["path"]))
        assert (info.format, info.subtype) == ("FLAC", "PCM_16")
        assert (info.samplerate, info.channels) == (16000, 1)
        assert 0.3 < info.duration < 4.0
        assert set(row["text"].split()) <= VOCABULARY
    on_disk = {p.name for p in (DEMO_DATA / "audio").iterdir()}
    assert on_disk == {Path(r["path"]).name for r in listed}  # no stray, no missing file


def test_corpus_train_and_test_voices_are_disjoint() -> None:
    train, test = {r["speaker"] for r in rows("train")}, {r["speaker"] for r in rows("test")}
    assert not train & test
    assert not {variant(s) for s in train} & {variant(s) for s in test}
    assert {variant(s) for s in test} == set(corpus.TEST_VARIANTS)


def test_corpus_is_at_most_10_mb() -> None:
    total = sum(p.stat().st_size for p in DEMO_DATA.rglob("*") if p.is_file())
    assert total <= 10_000_000


def test_dev_split_holds_out_whole_training_speakers() -> None:
    train, dev = split_dev(read_split("train"))
    assert dev and train
    assert not {u.speaker for u in train} & {u.speaker for u in dev}
    assert all(Path(u.audio).is_absolute() and u.duration > 0 for u in train + dev)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_generator_writes_a_small_reproducible_corpus(tmp_path: Path) -> None:
    seconds = corpus.make_corpus(tmp_path / "a", n_train=3, n_test=2, seed=7, force=False)
    corpus.make_corpus(tmp_path / "b", n_train=3, n_test=2, seed=7, force=False)
    assert seconds["train"] > 0 and seconds["test"] > 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "test.tsv").read_text() == (b / "test.tsv").read_text()
    assert (a / "audio" / "test-0001.flac").read_bytes() == (
        b / "audio" / "test-0001.flac"
    ).read_bytes()
    with pytest.raises(SystemExit, match="already exists"):
        corpus.make_corpus(a, n_train=1, n_test=1, seed=7, force=False)


def test_demo_refuses_an_existing_folder_without_force(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--force" in lines[0]


def test_demo_rejects_an_unknown_attention_kind_before_any_work(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "run"), "--attention", "dott"])
    assert result.exit_code == 1
    assert "unknown attention kind 'dott'" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_demo_refuses_an_unwritable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = runner.invoke(app, ["demo", "--out", str(locked / "run")])
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 1 and "cannot create folder" in result.output


def test_force_replaces_only_the_demo_outputs(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    prepare_out_dir(tmp_path, force=True)
    assert not (tmp_path / "report").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_demo_config_loads() -> None:
    from asrkit.config import load_yaml

    cfg = load_yaml(DEMO_CONFIG)
    assert cfg.train.max_minutes > 0 and cfg.attention.kind == "location"


@pytest.mark.slow
def test_short_demo_run_writes_report_transcripts_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["demo", "--out", str(out), "--limit", "40", "--minutes", "0.15", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["num_utterances"] == 10
    assert report["wer"] >= 0.0 and (out / "report" / "report.md").is_file()
    lines = (out / "transcripts" / "transcripts.jsonl").read_text().splitlines()
    assert len(lines) == 10
    plots = sorted((out / "plots").glob("*.png"))
    assert plots and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    assert (out / "exp" / "final.pt").is_file()


@pytest.mark.slow
def test_ctrl_c_during_training_stops_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "asrkit.cli.main", "demo", "--out", str(out)]
    command += ["--limit", "40", "--minutes", "3", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    first_epoch = out / "exp" / "checkpoints" / "epoch-1.pt"
    deadline = time.monotonic() + 180
    while not first_epoch.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert (out / "exp" / "checkpoints" / "last.pt").is_file()  # the trainer saved its progress
    assert not (out / "report").exists()  # and the demo went no further
