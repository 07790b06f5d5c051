"""`attnasr evaluate` end to end: files mode, refusals, --compare, and model mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from decoding_support import tiny_eval_set
from typer.testing import CliRunner

from asrkit.cli.main import app

runner = CliRunner()
REFS = {"s1-0": "the cat sat on the mat", "s1-1": "hello world", "s2-0": "a b c d e f"}


def write_text(path: Path, texts: dict[str, str]) -> Path:
    path.write_text("".join(f"{i} {t}\n" for i, t in texts.items()))
    return path


def run(*args: str | Path) -> object:
    return runner.invoke(app, ["evaluate", *map(str, args)])


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    ref = write_text(tmp_path / "ref.txt", REFS)
    hyp_a = write_text(tmp_path / "a.txt", {**REFS, "s1-0": "the bat sat on mat"})
    hyp_b = write_text(tmp_path / "b.txt", {**REFS, "s2-0": "x y z d e f g", "s1-1": "hello"})
    return ref, hyp_a, hyp_b


def test_files_mode_writes_report(files, tmp_path: Path) -> None:
    ref, hyp_a, _ = files
    result = run("--ref", ref, "--hyp", hyp_a, "--out", tmp_path / "A", "--bootstrap", "100")
    assert result.exit_code == 0, result.output
    out = tmp_path / "A"
    for name in (
        "report.json",
        "report.md",
        "ref.trn",
        "hyp.trn",
        "utterances.jsonl",
        "alignments.pra",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["num_words"] == 14 and report["num_utterances"] == 3
    assert (report["substitutions"], report["deletions"], report["insertions"]) == (1, 1, 0)
    assert report["wer"] == pytest.approx(2 / 14) and report["ser"] == pytest.approx(1 / 3)
    assert report["rtf"] is None and report["normalizer"] == "librispeech"
    rows = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    assert {r["id"]: r["errors"] for r in rows} == {"s1-0": 2, "s1-1": 0, "s2-0": 0}
    assert "THE BAT SAT ON MAT (s1-0)" in (out / "hyp.trn").read_text()


def test_refusals(files, tmp_path: Path) -> None:
    ref, hyp_a, _ = files
    out = tmp_path / "A"
    assert run("--ref", ref, "--hyp", hyp_a, "--out", out).exit_code == 0
    again = run("--ref", ref, "--hyp", hyp_a, "--out", out)
    assert again.exit_code == 1 and "--force" in again.output
    assert run("--ref", ref, "--hyp", hyp_a, "--out", out, "--force").exit_code == 0
    other = write_text(tmp_path / "other.txt", {"s1-0": "x", "zz-9": "y", "s2-0": "z"})
    bad = run("--ref", ref, "--hyp", other, "--out", tmp_path / "B")
    assert bad.exit_code == 1 and "s1-1" in bad.output and "zz-9" in bad.output
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert run("--ref", empty, "--hyp", hyp_a, "--out", tmp_path / "C").exit_code == 1
    assert run("--ref", ref, "--out", tmp_path / "D").exit_code == 1
    missing = run("--model", tmp_path, "--manifest", ref, "--out", tmp_path / "E")
    assert missing.exit_code == 1 and "no checkpoint found" in missing.output


def test_compare(files, tmp_path: Path) -> None:
    ref, hyp_a, hyp_b = files
    assert run("--ref", ref, "--hyp", hyp_b, "--out", tmp_path / "B").exit_code == 0
    result = run("--ref", ref, "--hyp", hyp_a, "--out", tmp_path / "A", "--compare", tmp_path / "B")
    assert result.exit_code == 0, result.output
    compare = json.loads((tmp_path / "A" / "compare.json").read_text())
    assert compare["this"]["errors"] == 2 and compare["other"]["errors"] == 5
    assert compare["delta_wer"] == pytest.approx(-3 / 14)
    assert set(compare) >= {"paired_bootstrap", "mapsswe", "mcnemar"}
    english = run("--ref", ref, "--hyp", hyp_a, "--out", tmp_path / "X", "--normalizer", "english",
                  "--compare", tmp_path / "B")  # fmt: skip
    assert english.exit_code == 1 and "not comparable" in english.output


@pytest.mark.slow
def test_model_mode(tmp_path: Path) -> None:
    from asrkit.io import file_sha256

    _, manifest = tiny_eval_set(tmp_path)
    out = tmp_path / "eval"
    result = run("--model", tmp_path / "exp", "--manifest", manifest, "--out", out,
                 "--device", "cpu", "--worst", "2", "--bootstrap", "50")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["num_utterances"] == 3 and report["num_words"] == 5
    assert report["rtf"] is not None and report["rtf"] > 0 and report["mode"] == "model"
    assert report["health"] is not None
    assert report["model_sha256"] == file_sha256(tmp_path / "exp" / "final.pt")
    assert report["manifest_sha256"] == file_sha256(manifest)
    rows = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    assert all(r["speaker"] in ("spk0", "spk1") and r["duration"] for r in rows)
    pngs = sorted((out / "plots").glob("*.png"))
    assert len(pngs) <= 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_model_mode_with_an_ensemble(tmp_path: Path) -> None:
    from asrkit.checkpoint import save_checkpoint
    from asrkit.io import file_sha256
    from asrkit.testing import tiny_config, tiny_model
    from asrkit.tokenizer import SPECIALS, CharTokenizer

    first, manifest = tiny_eval_set(tmp_path, seed=0, name="a")
    second, _ = tiny_eval_set(tmp_path, seed=1, name="b")
    result = run("--model", first, "--model", second, "--manifest", manifest,
                 "--out", tmp_path / "eval", "--device", "cpu", "--bootstrap", "50")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["model"] == str(first / "final.pt") and report["num_utterances"] == 3
    assert [m["model_sha256"] for m in report["ensemble"]] == [
        file_sha256(first / "final.pt"),
        file_sha256(second / "final.pt"),
    ]
    other = CharTokenizer([*SPECIALS, "▁", *"ABC"])
    save_checkpoint(
        tmp_path / "c" / "final.pt",
        tiny_model(vocab_size=other.vocab_size),
        tiny_config(),
        other,
    )
    bad = run("--model", first, "--model", tmp_path / "c", "--manifest", manifest,
              "--out", tmp_path / "bad", "--device", "cpu")  # fmt: skip
    assert bad.exit_code == 1 and "tokenizer differs" in bad.output
    assert "Traceback" not in bad.output


def test_model_mode_length_penalty(tmp_path: Path) -> None:
    """--length-penalty reaches the search (the report records it); a negative one is refused."""
    exp, manifest = tiny_eval_set(tmp_path)
    out = tmp_path / "eval"
    result = run("--model", exp, "--manifest", manifest, "--out", out, "--device", "cpu",
                 "--beam", "2", "--length-penalty", "0.5", "--bootstrap", "50")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["decode"]["length_penalty"] == 0.5
    bad = run("--model", exp, "--manifest", manifest, "--out", tmp_path / "bad",
              "--device", "cpu", "--length-penalty", "-1")  # fmt: skip
    assert bad.exit_code == 1 and "length penalty must be >= 0, got -1" in bad.output
    assert "Traceback" not in bad.output
