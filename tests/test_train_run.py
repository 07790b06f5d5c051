"""`train()` end to end on a synthetic tone corpus: learning, exact resume, refusals, safety."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from train_corpus import write_corpus

from asrkit.checkpoint import load_checkpoint, load_model
from asrkit.config import ExperimentConfig
from asrkit.data.manifest import read_manifest
from asrkit.io import UserError, file_sha256
from asrkit.testing import tiny_config, tiny_transformer_config
from asrkit.training import checkpoints as keeper_module
from asrkit.training.provenance import git_state
from asrkit.training.run import _interrupt_flag, train

FAST = [
    "train.max_frames=1200",
    "train.log_every=2",
    "train.plot_utterances=1",
    "train.plot_every=0",
    "train.keep_best=2",
    "optim.lr=0.005",
    "optim.warmup_steps=5",
    "specaug.time_masks=1",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("corpus")
    return write_corpus(root, "train", 48, seed=0), write_corpus(root, "dev", 6, seed=1)


def _cfg(**overrides: object) -> ExperimentConfig:
    return tiny_config("location", **overrides)


def _train(corpus: tuple[Path, Path], exp: Path, extra: list[str], **kwargs: object):
    return train(_cfg(), corpus[0], corpus[1], exp, overrides=[*FAST, *extra], **kwargs)


def _weights(exp: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(exp / "checkpoints" / "last.pt")["model"]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_training_drives_the_loss_down_and_writes_a_loadable_experiment(corpus, tmp_path):
    exp = tmp_path / "exp"
    result = _train(corpus, exp, ["train.max_epochs=12", "train.plot_every=6"])
    rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    dev = [r for r in rows if r["kind"] == "dev"]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert len(dev) == 12 and train_rows
    # Measured: dev loss 2.24 -> 1.08 and greedy dev CER 0.47 after 12 epochs (36 steps).
    assert dev[-1]["loss"] < 1.4 < dev[0]["loss"]
    assert dev[-1]["cer"] < 0.8 and result.best_dev_cer is not None
    for name in ("config.yaml", "tokenizer.json", "cmvn.json", "final.pt"):
        assert (exp / name).is_file(), name
    for name in ("curves.png", "health.png", "attention-1.png"):
        assert (exp / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((exp / "checkpoints").glob("epoch-*.pt"))) == 2  # keep_best
    loaded = load_model(exp)
    assert loaded.path == exp / "final.pt" and loaded.tokenizer.vocab_size > 3
    # Decoding cuts audio into segments no longer than the longest training utterance
    # (0.64 s here), but never below 2 s.
    longest = max(read_manifest(corpus[0]), key=lambda u: u.duration).duration
    assert loaded.longest_training_seconds == pytest.approx(longest, abs=0.011)
    segment = loaded.decode_options().max_segment_seconds
    assert segment == pytest.approx(max(longest, 2.0), abs=0.011)
    assert loaded.decode_options(max_segment_seconds=30.0).max_segment_seconds == 30.0


def test_resume_continues_exactly(corpus, tmp_path):
    """2 epochs + 2 resumed epochs == 4 epochs straight, bit for bit (dropout, sampling on)."""
    noisy = ["listener.dropout=0.1", "speller.dropout=0.1", "train.sampling_prob=0.3"]
    noisy += ["train.sampling_warmup_epochs=1"]
    _train(corpus, tmp_path / "straight", [*noisy, "train.max_epochs=4"])
    _train(corpus, tmp_path / "split", [*noisy, "train.max_epochs=2"])
    _train(corpus, tmp_path / "split", [*noisy, "train.max_epochs=4"], resume=True)
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))
    rows = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert sum('"dev"' in r for r in rows) == 4
    # Each session is on record, with the data it read (a resume may run on another host).
    sessions = json.loads((tmp_path / "split" / "provenance.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0]["torch"] == torch.__version__
    assert sessions[1]["processes"] == 1 and sessions[1]["device"] == "cpu"
    train_data = sessions[1]["data"]["train"]
    assert train_data["sha256"] == file_sha256(corpus[0]) and train_data["utterances"] == 48


@pytest.mark.parametrize("kind", ["multihead", "monotonic"])
def test_transformer_resume_continues_exactly(kind, corpus, tmp_path):
    """The Conformer + Transformer decoder resumes bit for bit, with dropout in both and
    two-pass scheduled sampling on; its dev loss falls over the four epochs."""
    cfg = tiny_transformer_config(kind, attention__g_init=2.0)
    noisy = ["listener.dropout=0.1", "decoder.dropout=0.1", "train.sampling_prob=0.3"]
    noisy += ["train.sampling_warmup_epochs=1", *FAST]

    def run(exp: str, epochs: int, resume: bool = False) -> None:
        extra = [*noisy, f"train.max_epochs={epochs}"]
        train(cfg, corpus[0], corpus[1], tmp_path / exp, overrides=extra, resume=resume)

    run("straight", 4)
    run("split", 2)
    run("split", 4, resume=True)
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))
    rows = [json.loads(r) for r in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    dev = [r["loss"] for r in rows if r["kind"] == "dev"]
    assert len(dev) == 4 and dev[-1] < dev[0]


def test_an_lstm_checkpoint_is_not_resumed_with_a_transformer_config(corpus, tmp_path):
    exp = tmp_path / "exp"
    _train(corpus, exp, ["train.max_epochs=1"])
    with pytest.raises(UserError, match=r"another config.*decoder.kind: 'lstm' -> 'transformer'"):
        overrides = ["train.max_epochs=2", "decoder.kind=transformer", "attention.kind=global"]
        _train(corpus, exp, overrides, resume=True)


def test_a_time_budget_stops_mid_epoch_and_resumes_exactly(corpus, tmp_path):
    _train(corpus, tmp_path / "straight", ["train.max_epochs=2"])
    stopped = _train(corpus, tmp_path / "split", ["train.max_epochs=2", "train.max_minutes=1e-9"])
    assert stopped.stop_reason == "budget" and stopped.steps == 1  # after the first step
    assert (tmp_path / "split" / "final.pt").is_file()  # a usable model all the same
    rows = [json.loads(r) for r in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["partial"] for r in rows if r["kind"] == "dev"] == [True]  # validated at the stop
    _train(corpus, tmp_path / "split", ["train.max_epochs=2"], resume=True)
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))


def test_an_experiment_folder_with_a_run_is_refused(corpus, tmp_path):
    exp = tmp_path / "exp"
    _train(corpus, exp, ["train.max_epochs=1"])
    with pytest.raises(UserError, match=r"finished run.*--resume.*--force"):
        _train(corpus, exp, ["train.max_epochs=1"])
    result = _train(corpus, exp, ["train.max_epochs=1"], force=True)
    assert result.epochs == 1
    provenance = json.loads((exp / "provenance.json").read_text())
    assert len(provenance["sessions"]) == 1  # the replaced run's record went with it
    with pytest.raises(UserError, match=r"another config.*speller.hidden"):
        _train(corpus, exp, ["train.max_epochs=2", "speller.hidden=48"], resume=True)
    with pytest.raises(UserError, match=r"nothing to resume"):
        _train(corpus, tmp_path / "empty", [], resume=True)


def test_bad_manifests_are_named(corpus, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(UserError, match=r"empty.jsonl: manifest is empty"):
        train(_cfg(), empty, corpus[1], tmp_path / "a")
    with pytest.raises(UserError, match=r"missing.jsonl: file not found"):
        train(_cfg(), tmp_path / "missing.jsonl", corpus[1], tmp_path / "b")
    row = json.loads(corpus[0].read_text().splitlines()[0])
    no_audio = tmp_path / "noaudio.jsonl"
    no_audio.write_text(json.dumps({**row, "audio": ""}) + "\n")
    with pytest.raises(UserError, match=r"noaudio.jsonl:1: .* has no audio path"):
        train(_cfg(), no_audio, corpus[1], tmp_path / "c")


def test_running_out_of_disk_keeps_the_previous_checkpoint(corpus, tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    _train(corpus, exp, ["train.max_epochs=1"])
    before = (exp / "checkpoints" / "last.pt").read_bytes()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keeper_module, "save_checkpoint", full_disk)
    with pytest.raises(UserError, match=r"No space left on device.*previous checkpoint is kept"):
        _train(corpus, exp, ["train.max_epochs=2"], resume=True)
    assert (exp / "checkpoints" / "last.pt").read_bytes() == before
    assert not list((exp / "checkpoints").glob(".*.tmp"))


def test_first_ctrl_c_only_asks_to_stop_and_the_second_aborts():
    with _interrupt_flag() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_cli_names_a_mistyped_config_key(corpus, tmp_path):
    from typer.testing import CliRunner

    from asrkit.cli.main import app

    config = tmp_path / "typo.yaml"
    config.write_text("optim:\n  lerning_rate: 0.1\n")
    args = ["train", str(config), "--train", str(corpus[0]), "--valid", str(corpus[1])]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "exp")])
    assert result.exit_code == 1
    assert "unknown config key 'optim.lerning_rate'" in result.output
    assert not (tmp_path / "exp").exists()
    config.write_text("optim:\n  lr: 0.1\n")
    result = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "exp"), "--set", "train.epoch=3"]
    )
    assert result.exit_code == 1 and "did you mean 'max_epochs'" in result.output


def test_an_attention_window_for_local_attention_is_refused_before_training(corpus, tmp_path):
    """decode.att_window serves every validation: a local model cannot use it, and the run
    says so before it creates its folder."""
    cfg = tiny_config("local-m")
    with pytest.raises(UserError, match="applies to global attention"):
        train(cfg, corpus[0], corpus[1], tmp_path / "exp", overrides=["decode.att_window=8"])
    assert not (tmp_path / "exp").exists()


@pytest.mark.slow
def test_ctrl_c_saves_a_resumable_checkpoint_and_exits_130(corpus, tmp_path):
    import subprocess
    import sys
    import time

    import yaml

    from asrkit.config import to_dict

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(to_dict(_cfg())))
    exp = tmp_path / "exp"
    sets = [x for o in [*FAST, "train.log_every=1", "train.max_epochs=500"] for x in ("--set", o)]
    cmd = [sys.executable, "-m", "asrkit.cli.main", "train", str(config), "--train", str(corpus[0])]
    cmd += ["--valid", str(corpus[1]), "--out", str(exp), "--device", "cpu", *sets]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (exp / "metrics.jsonl").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    saved = load_checkpoint(exp / "checkpoints" / "last.pt")["train_state"]
    assert saved["progress"]["step"] >= 1


def test_max_steps_mid_epoch_stops_as_a_budget_would_and_resumes_exactly(corpus, tmp_path):
    straight = _train(corpus, tmp_path / "straight", ["train.max_epochs=2"])
    stopped = _train(corpus, tmp_path / "split", ["train.max_epochs=2", "train.max_steps=2"])
    assert straight.steps > 4 and stopped.stop_reason == "max-steps" and stopped.steps == 2
    assert (tmp_path / "split" / "final.pt").is_file()
    rows = [json.loads(r) for r in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["partial"] for r in rows if r["kind"] == "dev"] == [True]  # validated at the stop
    _train(corpus, tmp_path / "split", ["train.max_epochs=2", "train.max_steps=0"], resume=True)
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))


def test_max_steps_on_an_epochs_last_step_ends_that_epoch_whole(corpus, tmp_path):
    """The stop a budget makes when it runs out during validation: no partial epoch."""
    one_epoch = _train(corpus, tmp_path / "one", ["train.max_epochs=1"])
    steps = one_epoch.steps
    exp = tmp_path / "steps"
    stopped = _train(corpus, exp, ["train.max_epochs=2", f"train.max_steps={steps}"])
    assert stopped.stop_reason == "max-steps" and (stopped.epochs, stopped.steps) == (1, steps)
    assert [p.name for p in (exp / "checkpoints").glob("epoch-*.pt")] == ["epoch-1.pt"]
    _assert_same(_weights(tmp_path / "one"), _weights(exp))
    again = _train(corpus, exp, ["train.max_epochs=2", f"train.max_steps={steps}"], resume=True)
    assert again.stop_reason == "max-steps" and (again.epochs, again.steps) == (1, steps)
    rows = [json.loads(r) for r in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["partial"] for r in rows if r["kind"] == "dev"] == [False]  # nothing trained again


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_git_commit_is_recorded_only_for_a_tracked_package(tmp_path):
    assert git_state(tmp_path) is None  # not a checkout
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "README").write_text("x")
    for args in (["init", "-q"], ["add", "README"], ["-c", "user.name=t", "-c", "user.email=t@t",
                 "commit", "-q", "-m", "x"]):  # fmt: skip
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    assert git_state(repo / "pkg") is None  # inside a repository, but not part of it
    subprocess.run(["git", "-C", str(repo), "add", "pkg"], check=True, capture_output=True)
    state = git_state(repo / "pkg")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert state == {"commit": head, "dirty": True}  # tracked now, and not yet committed


def test_bf16_trains_on_the_cpu_under_autocast(corpus, tmp_path):
    """train.precision=bf16 runs the CPU's forward pass under bf16 autocast (it used to fall
    back to fp32 silently): the weights differ from an fp32 run of the same seed, and the
    dev loss still falls as the fp32 run's does."""
    runs = {}
    for precision in ("fp32", "bf16"):
        exp = tmp_path / precision
        _train(corpus, exp, ["train.max_epochs=4", f"train.precision={precision}"])
        rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
        runs[precision] = ([r["loss"] for r in rows if r["kind"] == "dev"], _weights(exp))
    (loss32, weights32), (loss16, weights16) = runs["fp32"], runs["bf16"]
    assert any(not torch.equal(weights32[k], weights16[k]) for k in weights32)
    assert all(w.dtype == torch.float32 for w in weights16.values())  # master weights stay fp32
    assert loss16[-1] < loss16[0] - 0.2
    assert abs(loss16[-1] - loss32[-1]) < 0.1


def test_an_unknown_precision_is_a_config_error():
    from asrkit.config import ConfigError, apply_overrides

    with pytest.raises(ConfigError, match=r"train\.precision must be fp32, bf16 or fp16"):
        apply_overrides(ExperimentConfig(), ["train.precision=bf32"])
