"""Checkpoints: self-contained round trip, directory resolution, averaging, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrkit.checkpoint import (
    average_checkpoints,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from asrkit.config import to_dict
from asrkit.io import UserError
from asrkit.model.las import LAS
from asrkit.testing import dummy_batch, tiny_config
from asrkit.tokenizer import CharTokenizer

TEXTS = ["ABC DEF", "GHI"]


def make(seed: int = 0) -> tuple[LAS, CharTokenizer]:
    tok = CharTokenizer.train(TEXTS)
    torch.manual_seed(seed)
    model = LAS(tiny_config("dot", listener__hidden=16), tok.vocab_size)
    model.set_cmvn(torch.full((80,), -4.0), torch.full((80,), 2.0))
    return model, tok


def test_round_trip_rebuilds_the_same_model_from_the_file_alone(tmp_path: Path) -> None:
    model, tok = make()
    cfg = tiny_config("dot", listener__hidden=16)
    save_checkpoint(tmp_path / "m.pt", model, cfg, tok, train_state={"epoch": 3})
    loaded = load_model(tmp_path / "m.pt")
    assert not loaded.model.training
    assert to_dict(loaded.config) == to_dict(cfg)
    assert loaded.tokenizer.pieces == tok.pieces
    assert loaded.path == tmp_path / "m.pt"
    batch = dummy_batch(2, vocab_size=tok.vocab_size)
    expected = model.eval().teacher_forced(batch).logits
    torch.testing.assert_close(loaded.model.teacher_forced(batch).logits, expected)
    raw = load_checkpoint(tmp_path / "m.pt")
    assert raw["train_state"] == {"epoch": 3} and raw["cmvn"]["mean"][0] == -4.0
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"], "no temporary files left"


def test_experiment_dir_prefers_final_then_last(tmp_path: Path) -> None:
    model, tok = make()
    cfg = tiny_config("dot", listener__hidden=16)
    with pytest.raises(UserError, match="no checkpoint found"):
        load_model(tmp_path)
    save_checkpoint(tmp_path / "checkpoints" / "last.pt", model, cfg, tok)
    assert load_model(tmp_path).path == tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(tmp_path / "final.pt", model, cfg, tok)
    assert load_model(tmp_path).path == tmp_path / "final.pt"


def test_bad_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match=r"junk\.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an attnasr checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_mismatched_weights_are_a_user_error(tmp_path: Path) -> None:
    model, tok = make()
    save_checkpoint(tmp_path / "m.pt", model, tiny_config("dot", listener__hidden=8), tok)
    with pytest.raises(UserError, match="do not match"):
        load_model(tmp_path / "m.pt")


def test_average_is_the_elementwise_mean(tmp_path: Path) -> None:
    cfg = tiny_config("dot", listener__hidden=16)
    models = [make(seed)[0] for seed in (1, 2)]
    tok = make()[1]
    paths = [tmp_path / f"{i}.pt" for i in range(2)]
    for model, path in zip(models, paths, strict=True):
        save_checkpoint(path, model, cfg, tok)
    averaged = average_checkpoints(paths)
    a, b = models[0].state_dict(), models[1].state_dict()
    assert averaged.keys() == a.keys()
    for key in a:
        torch.testing.assert_close(averaged[key], (a[key] + b[key]) / 2)
    same = average_checkpoints([paths[0], paths[0], paths[0]])
    for key in a:
        torch.testing.assert_close(same[key], a[key])
    with pytest.raises(UserError):
        average_checkpoints([])
