"""Config loading: unknown keys name themselves and suggest the closest key; types are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrkit.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    from_dict,
    load_yaml,
    save_yaml,
    to_dict,
)


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = apply_overrides(ExperimentConfig(), ["specaug.speed_perturb=[0.9, 1.1]", "optim.lr=3e-4"])
    save_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(tmp_path / "c.yaml") == cfg


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("optim:\n  lerning_rate: 1\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown config key 'optim\.lerning_rate'"):
        load_yaml(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="did you mean 'attention'"):
        from_dict(ExperimentConfig, {"atention": {}})


def test_types_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"train\.max_epochs: expected int"):
        from_dict(ExperimentConfig, {"train": {"max_epochs": "ten"}})
    with pytest.raises(ConfigError, match="expected true or false"):
        apply_overrides(ExperimentConfig(), ["listener.lstm_before_pyramid=3"])
    # An int where a float is expected is fine (YAML writes 1 for 1.0).
    assert from_dict(ExperimentConfig, {"optim": {"lr": 1}}).optim.lr == 1.0


def test_overrides_are_validated() -> None:
    with pytest.raises(ConfigError, match="did you mean 'max_epochs'"):
        apply_overrides(ExperimentConfig(), ["train.max_epoch=3"])
    with pytest.raises(ConfigError, match="is a section"):
        apply_overrides(ExperimentConfig(), ["train=3"])
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides(ExperimentConfig(), ["train.max_epochs"])
    with pytest.raises(ConfigError, match=r"data\.perturbed_cache_mb must be >= 0"):
        apply_overrides(ExperimentConfig(), ["data.perturbed_cache_mb=-1"])
    cfg = apply_overrides(ExperimentConfig(), ["attention.kind=monotonic", "train.max_epochs=2"])
    assert (cfg.attention.kind, cfg.train.max_epochs) == ("monotonic", 2)
    assert to_dict(cfg)["attention"]["kind"] == "monotonic"


def test_bad_yaml_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_yaml(tmp_path / "missing.yaml")


def test_data_paths_resolve_beside_the_training_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`data.tokenizer: bpe256/tokenizer.json` finds the file in the data folder; a path that
    exists from the working directory wins; a missing one is reported under its given name."""
    from asrkit.io import UserError
    from asrkit.tokenizer import CharTokenizer
    from asrkit.training.experiment import resolve_tokenizer

    data, work = tmp_path / "data", tmp_path / "work"
    (data / "bpe256").mkdir(parents=True)
    work.mkdir()
    monkeypatch.chdir(work)
    CharTokenizer.train(["AB"]).save(data / "bpe256" / "tokenizer.json")
    manifest = data / "train.jsonl"
    cfg = apply_overrides(ExperimentConfig(), ["data.tokenizer=bpe256/tokenizer.json"])
    assert resolve_tokenizer(cfg, manifest, []).pieces[-2:] == ["A", "B"]
    (work / "bpe256").mkdir()
    CharTokenizer.train(["CD"]).save(work / "bpe256" / "tokenizer.json")
    assert resolve_tokenizer(cfg, manifest, []).pieces[-2:] == ["C", "D"]
    missing = apply_overrides(ExperimentConfig(), ["data.tokenizer=nope/tokenizer.json"])
    with pytest.raises(UserError, match=r"^nope/tokenizer\.json: tokenizer file not found"):
        resolve_tokenizer(missing, manifest, [])
