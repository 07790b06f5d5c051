"""The package-root API: load_model, transcribe and evaluate on a saved (tiny) model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from decoding_support import tiny_loaded, write_tone

import asrkit
from asrkit.checkpoint import save_checkpoint
from asrkit.data.manifest import Utterance, write_manifest
from asrkit.io import UserError


@pytest.fixture(params=[("location", "lstm"), ("multihead", "transformer")], ids=str)
def exp_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    attention, decoder = request.param
    loaded = tiny_loaded(attention, decoder=decoder)
    save_checkpoint(tmp_path / "exp" / "final.pt", loaded.model, loaded.config, loaded.tokenizer)
    return tmp_path / "exp"


def test_transcribe_returns_one_transcript_per_file(exp_dir: Path, tmp_path: Path) -> None:
    model = asrkit.load_model(exp_dir)
    files = [write_tone(tmp_path / "a.wav", 1.0), write_tone(tmp_path / "b.flac", 2.0, 8000, 2)]
    transcripts = asrkit.transcribe(model, files, beam=2)
    assert [t.id for t in transcripts] == ["a", "b"]
    assert abs(transcripts[1].duration - 2.0) < 0.01
    # The same model decodes the same file to the same text whether loaded or given as a path.
    again = asrkit.transcribe(exp_dir, files[:1], beam=2)
    assert again[0].text == transcripts[0].text
    # An ensemble of the model with itself is the model (mean of equal scores).
    twice = asrkit.transcribe([model, exp_dir], files[:1], beam=2)
    assert twice[0].text == transcripts[0].text


def test_evaluate_writes_report(exp_dir: Path, tmp_path: Path) -> None:
    audio = write_tone(tmp_path / "a.wav", 1.5)
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [Utterance("a", str(audio), 1.5, 16000, "spk", "HELLO WORLD")])
    report = asrkit.evaluate(exp_dir, manifest, tmp_path / "eval")
    written = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert written["num_words"] == 2 and written["wer"] == report.summary()["wer"]
    with pytest.raises(UserError, match="earlier results"):
        asrkit.evaluate(exp_dir, manifest, tmp_path / "eval")


def test_load_model_without_checkpoint_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no checkpoint"):
        asrkit.load_model(tmp_path)
