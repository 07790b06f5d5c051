"""`prepare librispeech`: the real shared tree, a fake tree with every problem, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from prepare_util import GOOD, PROBLEMS, fake_librispeech
from typer.testing import CliRunner

from asrkit.cli.main import app
from asrkit.data.manifest import read_manifest
from asrkit.io import UserError
from asrkit.scoring.normalize import normalize_librispeech
from data_prep.librispeech import prepare_librispeech, read_genders

runner = CliRunner()


@pytest.fixture(scope="module")
def real_reports(librispeech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("libri")
    return prepare_librispeech(librispeech_dir.parent, out, jobs=2, show_progress=False)


def test_every_real_utterance_is_found(real_reports: dict, librispeech_dir: Path) -> None:
    assert list(real_reports) == ["dev-clean", "train-clean-100"]
    counts = {name: r.utterances for name, r in real_reports.items()}
    assert counts == {"train-clean-100": 496, "dev-clean": 1040}
    assert {name: r.speakers for name, r in real_reports.items()} == {
        "train-clean-100": 4,
        "dev-clean": 16,
    }
    assert all(not r.problems for r in real_reports.values())
    train = read_manifest(real_reports["train-clean-100"].path)
    genders = {u.speaker: u.gender for u in train}
    assert genders == {"4088": "F", "4406": "M", "5652": "F", "8226": "M"}
    dev = read_manifest(real_reports["dev-clean"].path)
    official = read_genders(librispeech_dir)
    assert all(u.gender == official[u.speaker] for u in dev)
    assert all(u.audio.endswith(".mp3") for u in dev)
    assert all(Path(u.audio).is_absolute() and Path(u.audio).is_file() for u in train + dev)
    assert all(u.text == normalize_librispeech(u.text) and u.text for u in train + dev)
    for utt in train + dev:
        assert utt.id.startswith(f"{utt.speaker}-{utt.chapter}-")
        assert Path(utt.audio).parent.parts[-2:] == (utt.speaker, utt.chapter)


@pytest.mark.slow
def test_durations_equal_decoded_length(real_reports: dict) -> None:
    # Durations come from the headers; MP3 headers (mpg123 via libsndfile) report the exact
    # gapless length, so we require equality to the sample (durations are rounded to 1 us).
    for report in real_reports.values():
        for utt in read_manifest(report.path):
            data, rate = sf.read(utt.audio, dtype="float32")
            assert rate == utt.sample_rate == 16000
            assert abs(len(data) - utt.duration * rate) < 0.5, utt.id


def test_corpus_dir_may_be_librispeech_itself(librispeech_dir: Path, tmp_path: Path) -> None:
    reports = prepare_librispeech(
        librispeech_dir, tmp_path, parts=["train-clean-100"], jobs=2, show_progress=False
    )
    assert reports["train-clean-100"].utterances == 496


def test_fake_tree_problems_are_named_and_left_out(tmp_path: Path) -> None:
    corpus = fake_librispeech(tmp_path / "corpus")
    report = prepare_librispeech(corpus, tmp_path / "data", show_progress=False)["dev-tiny"]
    utts = {u.id: u for u in read_manifest(report.path)}
    assert {k: u.text for k, u in utts.items()} == GOOD  # CRLF stripped, text normalised
    assert {p.utt_id: p.kind for p in report.problems} == PROBLEMS
    assert utts["22-200-0000"].sample_rate == 8000
    assert utts["22-200-0000"].duration == pytest.approx(0.8)
    assert (utts["11-100-0000"].gender, utts["22-200-0000"].gender) == ("F", "M")
    assert (utts["11-100-0001"].speaker, utts["11-100-0001"].chapter) == ("11", "100")
    saved = json.loads((tmp_path / "data" / "dev-tiny.problems.json").read_text())
    assert sorted(p["kind"] for p in saved["problems"]) == sorted(PROBLEMS.values())


def test_idempotent_unless_forced(tmp_path: Path) -> None:
    corpus = fake_librispeech(tmp_path / "corpus")
    first = prepare_librispeech(corpus, tmp_path / "data", show_progress=False)["dev-tiny"]
    stamp = first.path.stat().st_mtime_ns
    first.path.write_text(first.path.read_text())  # a marker that a rewrite would undo
    marked = first.path.stat().st_mtime_ns
    again = prepare_librispeech(corpus, tmp_path / "data", show_progress=False)["dev-tiny"]
    assert again.skipped and again.path.stat().st_mtime_ns == marked
    assert (again.utterances, len(again.problems)) == (first.utterances, len(first.problems))
    forced = prepare_librispeech(corpus, tmp_path / "data", force=True, show_progress=False)
    assert not forced["dev-tiny"].skipped and forced["dev-tiny"].path.stat().st_mtime_ns >= stamp
    assert not list((tmp_path / "data").glob(".*.tmp"))  # atomic writes leave no temp files


def test_cli_summary_and_strict(tmp_path: Path) -> None:
    corpus = fake_librispeech(tmp_path / "corpus")
    args = ["prepare", "librispeech", str(corpus), "--out", str(tmp_path / "data")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for kind in PROBLEMS.values():
        assert kind in result.output
    assert "11-100-0004" in result.output
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1
    assert "5 problem(s)" in strict.output and "Traceback" not in strict.output


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "corpus folder not found"),
        ("empty", "no LibriSpeech part found"),
        ("bad-part", "no part named train-other-500 (present: dev-tiny)"),
        ("not-writable", "cannot create folder"),
        ("download-without-parts", "--download needs --parts"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path: Path, layout: str, message: str) -> None:
    corpus = tmp_path / "corpus"
    out = tmp_path / "data"
    extra: list[str] = []
    if layout == "empty":
        (corpus / "LibriSpeech" / "dev-tiny").mkdir(parents=True)
    elif layout != "missing":
        fake_librispeech(corpus)
    if layout == "bad-part":
        extra = ["--parts", "train-other-500"]
    if layout == "not-writable":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "data"  # a folder cannot be created under a file
    if layout == "download-without-parts":
        extra = ["--download"]
    result = runner.invoke(app, ["prepare", "librispeech", str(corpus), "--out", str(out), *extra])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_library_raises_user_error_not_traceback(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="corpus folder not found"):
        prepare_librispeech(tmp_path / "nothing", tmp_path / "out")


def test_normalize_librispeech_table() -> None:
    cases = {
        "Hello,  world!": "HELLO WORLD",
        "rock-and-roll — yes": "ROCK AND ROLL YES",
        "it’s `quoted‘": "IT'S 'QUOTED'",
        "Café déjà vu\r\n": "CAFE DEJA VU",
        "  42 ...  ": "",
    }
    assert {k: normalize_librispeech(k) for k in cases} == cases
    assert all(normalize_librispeech(v) == v for v in cases.values())  # idempotent


def test_verify_finds_truncated_audio(tmp_path: Path) -> None:
    corpus = fake_librispeech(tmp_path / "corpus")
    chapter = corpus / "LibriSpeech" / "dev-tiny" / "11" / "100"
    flac = chapter / "11-100-0001.flac"
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])  # header intact, data cut
    fast = prepare_librispeech(corpus, tmp_path / "headers", show_progress=False)["dev-tiny"]
    assert fast.utterances == len(GOOD)  # a header-only read cannot see the damage
    checked = prepare_librispeech(corpus, tmp_path / "decoded", verify=True, show_progress=False)
    kinds = {p.utt_id: p.kind for p in checked["dev-tiny"].problems}
    assert kinds["11-100-0001"] == "unreadable audio"
    durations = {u.id: u.duration for u in read_manifest(checked["dev-tiny"].path)}
    assert durations == {"11-100-0000": 1.0, "22-200-0000": 0.8}
