"""Input integrity: no silent wrong result, honest exit codes, "already prepared" only from the
same inputs (issue 41). Each test here failed on the code before the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from decoding_support import tiny_experiment, tiny_loaded, write_tone
from prepare_util import fake_librispeech, write_audio
from typer.testing import CliRunner

from asrkit.cli.main import app
from asrkit.config import FeaturesConfig
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.features import load_audio
from asrkit.io import EXIT_PARTIAL, MissingPathError, UserError, one_line, read_jsonl
from asrkit.tokenizer import CharTokenizer
from data_prep.common import NONFINITE_AUDIO
from data_prep.librispeech import prepare_librispeech
from data_prep.own_data import prepare_folder, prepare_table

runner = CliRunner()


def write_nonfinite(path: Path, seconds: float = 1.0) -> Path:
    """A good-sounding float WAV with 100 NaN samples and one inf (the issue's file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    wave = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    wave[1000:1100] = np.nan
    wave[5000] = np.inf
    sf.write(str(path), wave, 16000, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_experiment(tmp_path_factory.mktemp("exp"))


# --- non-finite samples --------------------------------------------------------------------


def test_load_audio_refuses_nonfinite_samples(tmp_path: Path) -> None:
    path = write_nonfinite(tmp_path / "nan.wav")
    with pytest.raises(UserError, match=r"nan.wav: 100 NaN and 1 infinite samples; the file is"):
        load_audio(path)


def test_prepare_leaves_out_nonfinite_audio(tmp_path: Path) -> None:
    write_audio(tmp_path / "rec" / "good.wav", 1.0)
    (tmp_path / "rec" / "good.txt").write_text("good audio")
    write_nonfinite(tmp_path / "rec" / "bad.wav")
    (tmp_path / "rec" / "bad.txt").write_text("bad audio")
    report = prepare_folder(tmp_path / "rec", tmp_path / "data", show_progress=False)
    assert [u.id for u in read_manifest(report.path)] == ["good"]
    (problem,) = report.problems
    assert problem.kind == NONFINITE_AUDIO and problem.utt_id == "bad"
    assert problem.detail == "100 NaN and 1 infinite samples"


def test_transcribe_skips_nonfinite_audio_and_exits_partial(exp_dir: Path, tmp_path: Path) -> None:
    bad = write_nonfinite(tmp_path / "in" / "bad.wav")
    good = write_tone(tmp_path / "in" / "good.wav", 1.2)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["transcribe", str(good), str(bad), "--model", str(exp_dir), "--out", str(out)]
    )
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "bad.wav: 100 NaN and 1 infinite samples" in result.stderr
    assert "1 of 2 inputs could not be decoded" in result.stderr
    assert (out / "good.txt").is_file() and not (out / "bad.txt").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decoded"] == 1 and summary["exit_code"] == EXIT_PARTIAL
    assert [f["id"] for f in summary["failed"]] == ["bad"]
    assert "NaN" in summary["failed"][0]["reason"]
    rows = {r["id"]: r for r in read_jsonl(out / "transcripts.jsonl")}
    assert rows["bad"]["failed"] is True and "failed" not in rows["good"]


def test_evaluate_names_nonfinite_utterances_and_exits_partial(
    exp_dir: Path, tmp_path: Path
) -> None:
    good = write_tone(tmp_path / "good.wav", 1.0)
    bad = write_nonfinite(tmp_path / "bad.wav")
    rows = [
        {"id": "s-good", "audio": str(good), "duration": 1.0, "speaker": "s", "text": "A B"},
        {"id": "s-bad", "audio": str(bad), "duration": 1.0, "speaker": "s", "text": "C"},
    ]
    manifest = tmp_path / "test.jsonl"
    manifest.write_text("".join(json.dumps({**r, "sample_rate": 16000}) + "\n" for r in rows))
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(exp_dir), "--manifest", str(manifest), "--out", str(out)]
    result = runner.invoke(app, [*args, "--device", "cpu", "--bootstrap", "20"])
    assert result.exit_code == EXIT_PARTIAL, result.output
    report = json.loads((out / "report.json").read_text())
    assert [u["id"] for u in report["undecoded"]] == ["s-bad"]
    assert report["num_utterances"] == 2  # still scored: as an empty hypothesis
    assert "not decoded, scored as empty" in (out / "report.md").read_text()


def test_training_data_refuses_nonfinite_audio_in_one_line(tmp_path: Path) -> None:
    """A hand-made manifest can still hold such a file: the training stops with the file named,
    also when a DataLoader worker process read it."""
    from asrkit.data.dataset import SpeechDataset

    bad = write_nonfinite(tmp_path / "bad.wav")
    utt = Utterance("u", str(bad), 1.0, 16000, speaker="s", text="A")
    dataset = SpeechDataset([utt], CharTokenizer.train(["A"]), FeaturesConfig())
    loader = torch.utils.data.DataLoader(dataset, num_workers=1, collate_fn=lambda b: b)
    with pytest.raises(UserError) as caught:
        next(iter(loader))
    assert one_line(caught.value) == (
        f"{bad}: 100 NaN and 1 infinite samples; the file is refused (repair or remove it)"
    )


# --- "already prepared" means "from these inputs" ------------------------------------------


def _table(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    table = tmp_path / "list.csv"
    table.write_text("path,text\n" + "".join(f"{p},{t}\n" for p, t in rows))
    return table


def test_prepare_table_refuses_a_manifest_made_from_another_table(tmp_path: Path) -> None:
    write_audio(tmp_path / "a.wav", 1.0)
    write_audio(tmp_path / "b.wav", 1.0)
    table = _table(tmp_path, [("a.wav", "first"), ("b.wav", "second"), ("gone.wav", "x")])
    data = tmp_path / "data"
    first = prepare_table(table, data, show_progress=False)
    assert first.utterances == 2 and not first.skipped
    again = prepare_table(table, data, show_progress=False)
    assert again.skipped and again.utterances == 2
    table.write_text("path,text\na.wav,first\n")  # the user fixes the CSV
    result = runner.invoke(app, ["prepare", "table", str(table), "--out", str(data)])
    assert result.exit_code == 1
    assert "prepared from other inputs (transcript files changed (1 files)" in result.stderr
    assert "use --force" in result.stderr
    assert read_manifest(first.path)[1].id == "b"  # nothing was replaced
    redone = runner.invoke(app, ["prepare", "table", str(table), "--out", str(data), "--force"])
    assert redone.exit_code == 0, redone.output
    assert [u.id for u in read_manifest(first.path)] == ["a"]


def test_prepare_table_sees_a_named_audio_file_appear_and_an_option_change(
    tmp_path: Path,
) -> None:
    write_audio(tmp_path / "a.wav", 1.0)
    table = _table(tmp_path, [("a.wav", "first"), ("b.wav", "second")])
    data = tmp_path / "data"
    prepare_table(table, data, show_progress=False)
    with pytest.raises(UserError, match="option verify was False, now True"):
        prepare_table(table, data, verify=True, show_progress=False)
    write_audio(tmp_path / "b.wav", 1.0)  # the missing file is recorded now
    with pytest.raises(UserError, match=r"audio files changed \(2 files\)"):
        prepare_table(table, data, show_progress=False)


def test_prepare_folder_refuses_after_a_transcript_edit(tmp_path: Path) -> None:
    write_audio(tmp_path / "rec" / "a.wav", 1.0)
    (tmp_path / "rec" / "a.txt").write_text("hello")
    data = tmp_path / "data"
    prepare_folder(tmp_path / "rec", data, show_progress=False)
    os.utime(tmp_path / "rec" / "a.txt")  # touched, same content: still current
    assert prepare_folder(tmp_path / "rec", data, show_progress=False).skipped
    (tmp_path / "rec" / "a.txt").write_text("hello world")
    with pytest.raises(UserError, match="transcript files changed"):
        prepare_folder(tmp_path / "rec", data, show_progress=False)


def test_prepare_librispeech_refuses_after_the_corpus_changed(tmp_path: Path) -> None:
    corpus = fake_librispeech(tmp_path / "corpus")
    data = tmp_path / "data"
    prepare_librispeech(corpus, data, show_progress=False)
    assert prepare_librispeech(corpus, data, show_progress=False)["dev-tiny"].skipped
    chapter = corpus / "LibriSpeech" / "dev-tiny" / "22" / "200"
    write_audio(chapter / "22-200-0001.wav", 0.5)  # a new recording, not yet transcribed
    with pytest.raises(UserError, match=r"audio files changed \(7 -> 8 files\)"):
        prepare_librispeech(corpus, data, show_progress=False)
    report = prepare_librispeech(corpus, data, force=True, show_progress=False)["dev-tiny"]
    assert any(p.utt_id == "22-200-0001" for p in report.problems)


def test_a_part_without_a_record_is_kept_and_says_so(tmp_path: Path) -> None:
    write_audio(tmp_path / "a.wav", 1.0)
    table = _table(tmp_path, [("a.wav", "first")])
    data = tmp_path / "data"
    prepare_table(table, data, show_progress=False)
    (data / "list.inputs.json").unlink()  # as an older attnasr left it
    result = runner.invoke(app, ["prepare", "table", str(table), "--out", str(data)])
    assert result.exit_code == 0 and "list: prepared by an older attnasr" in result.stderr


def test_cmvn_of_another_manifest_version_is_refused(tmp_path: Path) -> None:
    write_audio(tmp_path / "a.wav", 1.0)
    write_audio(tmp_path / "b.wav", 0.7)
    table = _table(tmp_path, [("a.wav", "first")])
    data = tmp_path / "data"
    manifest = prepare_table(table, data, show_progress=False).path
    assert runner.invoke(app, ["prepare", "features", str(manifest)]).exit_code == 0
    table.write_text("path,text\na.wav,first\nb.wav,second\n")
    prepare_table(table, data, force=True, show_progress=False)
    result = runner.invoke(app, ["prepare", "features", str(manifest), "--no-cmvn"])
    assert result.exit_code == 1 and "use --force to recompute" in result.stderr
    runner.invoke(app, ["prepare", "features", str(manifest), "--force", "--no-cmvn"])
    result = runner.invoke(app, ["prepare", "features", str(manifest)])  # the CMVN is stale
    assert result.exit_code == 1 and "list.cmvn.json: computed from another version" in (
        result.stderr
    )
    forced = runner.invoke(app, ["prepare", "features", str(manifest), "--force"])
    assert forced.exit_code == 0, forced.output


# --- nothing usable is an error ------------------------------------------------------------


def test_prepare_that_finds_nothing_usable_exits_1_without_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "a.wav").write_text("not audio")
    (tmp_path / "rec" / "a.txt").write_text("hello")
    data = tmp_path / "data"
    result = runner.invoke(app, ["prepare", "folder", str(tmp_path / "rec"), "--out", str(data)])
    assert result.exit_code == 1
    assert "rec: no usable utterance (1 unreadable audio); see" in result.stderr
    assert not (data / "rec.jsonl").exists()
    assert json.loads((data / "rec.problems.json").read_text())["problems"][0]["utt_id"] == "a"


def test_transcribe_exits_1_and_writes_nothing_when_no_input_decodes(
    exp_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.wav").write_text("not audio")
    write_nonfinite(tmp_path / "b.wav")
    out = tmp_path / "out"
    args = [str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--model", str(exp_dir)]
    result = runner.invoke(app, ["transcribe", *args, "--out", str(out)])
    assert result.exit_code == 1
    assert "none of the 2 inputs could be decoded, nothing written" in result.stderr
    assert not out.exists() or not any(out.iterdir())
    alone = runner.invoke(app, ["transcribe", str(tmp_path / "a.wav"), "--model", str(exp_dir)])
    assert alone.exit_code == 1 and alone.stdout == ""


# --- smaller -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["librispeech", "folder", "fsdd"])
def test_a_corpus_path_that_is_a_file(command: str, tmp_path: Path) -> None:
    file = tmp_path / "corpus.tar.gz"
    file.write_bytes(b"\x1f\x8b")
    result = runner.invoke(app, ["prepare", command, str(file), "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and "corpus.tar.gz: is a file, not a" in result.stderr


def test_speed_table_counts_a_silent_files_seconds(exp_dir: Path, tmp_path: Path) -> None:
    from asrkit.decoding.api import transcribe_files

    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(32000, dtype=np.float32), 16000)
    speech = write_tone(tmp_path / "speech.wav", 1.0)
    loaded = tiny_loaded()
    transcripts, timing = transcribe_files(
        loaded, [silent, speech], loaded.decode_options(), progress=False
    )
    assert transcripts[0].warning and not transcripts[0].failed
    assert timing.audio_seconds == pytest.approx(3.0)


def test_missing_paths_are_file_not_found_errors(tmp_path: Path) -> None:
    from asrkit import load_model

    for call in (
        lambda: read_manifest(tmp_path / "none.jsonl"),
        lambda: load_audio(tmp_path / "none.wav"),
        lambda: load_model(tmp_path / "none.pt"),
    ):
        with pytest.raises(FileNotFoundError) as caught:
            call()
        assert isinstance(caught.value, MissingPathError)
        assert str(caught.value).startswith(str(tmp_path / "none"))


def test_training_summary_says_how_the_kept_epoch_was_chosen() -> None:
    from asrkit.training.run import TrainResult

    def result(wer: float, loss: float) -> TrainResult:
        return TrainResult(Path("e"), Path("e/final.pt"), wer, 0.5, 3, 90, 20.0, "done",
                           best_dev_loss=loss)  # fmt: skip

    assert result(0.4567, 1.0).best_line() == "best dev WER 45.67%"
    line = result(2.15, 1.234).best_line()  # every epoch >= 100%: ranked by dev loss
    assert line.startswith("best dev WER: none below 100%")
    assert "lowest dev loss, 1.234, was kept; its WER is 215.00%" in line
