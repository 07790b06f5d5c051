"""Benchmarks keep earlier results: an existing output is refused before any work (--force)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.io import UserError, refuse_overwrite

REPO = Path(__file__).resolve().parents[1]


def test_refuse_overwrite_names_the_first_existing_path(tmp_path: Path) -> None:
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    refuse_overwrite([None, tmp_path / "new.json"], force=False)
    refuse_overwrite([kept], force=True)
    with pytest.raises(UserError, match=r"kept\.json: already exists \(use --force"):
        refuse_overwrite([tmp_path / "new.json", kept], force=False)


@pytest.mark.parametrize("existing", ["attention_cost.json", "attention_cost.png"])
def test_bench_attention_refuses_to_replace_results(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("earlier result")
    command = [sys.executable, str(REPO / "benchmarks" / "bench_attention.py"), "--quick"]
    done = subprocess.run(
        [*command, "--kinds", "dot", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert f"{existing}: already exists (use --force" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert (tmp_path / existing).read_text() == "earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_bench_decoder_step_refuses_to_replace_results(tmp_path: Path) -> None:
    (tmp_path / "decoder_step_cost.png").write_text("earlier result")
    command = [sys.executable, str(REPO / "benchmarks" / "bench_decoder_step.py"), "--quick"]
    done = subprocess.run([*command, "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "decoder_step_cost.png: already exists" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decoder_step_cost.png"]


def test_bench_train_recipe_refuses_before_training(tmp_path: Path) -> None:
    earlier = tmp_path / "rows.json"
    earlier.write_text("earlier result")
    config = REPO / "recipes" / "digits" / "conf" / "global.yaml"
    manifest = REPO / "asrkit" / "demo_data" / "test.tsv"  # any file: checked to exist only
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_train_recipe.py"),
            "--configs",
            str(config),
            "--train",
            str(manifest),
            "--valid",
            str(manifest),
            "--json",
            str(earlier),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "rows.json: already exists (use --force" in done.stderr
    assert earlier.read_text() == "earlier result"
