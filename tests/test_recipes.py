"""Recipes: every config loads, small ones build a model, helper scripts and stage scripts work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.config import load_yaml, to_dict
from asrkit.data.manifest import Utterance, read_manifest, write_manifest
from asrkit.model.attention import MEMBERS
from asrkit.model.las import LAS, attention_kind_of

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "recipes").glob("**/conf/*.yaml"))


def test_every_family_has_a_config_in_every_recipe() -> None:
    names = {str(p.relative_to(REPO / "recipes")) for p in CONFIGS}
    for family in ("global", "local", "monotonic"):
        assert f"mini/conf/{family}.yaml" in names
        assert f"digits/conf/{family}.yaml" in names
        assert f"mini/conf/conformer_{family}.yaml" in names  # run.sh --model conformer
        for hours in ("100h", "960h"):
            assert f"librispeech/conf/{hours}_{family}.yaml" in names
            assert f"librispeech/conf/{hours}_conformer_{family}.yaml" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_config_loads_and_names_its_family(path: Path) -> None:
    cfg = load_yaml(path)
    family = path.stem.split("_")[-1]  # the file name says which family it trains
    assert attention_kind_of(cfg) in MEMBERS[family]
    if path.stem.startswith("streaming_"):  # run.sh --model streaming[_conformer]
        assert cfg.listener.streaming and cfg.decoder.kind == "lstm"
        assert cfg.listener.kind == ("conformer" if "conformer" in path.stem else "pblstm")
    elif "conformer" in path.stem:  # the Conformer configs pair it with a Transformer decoder
        assert cfg.listener.kind == "conformer" and cfg.decoder.kind == "transformer"
    assert to_dict(cfg)  # round-trips to plain data


@pytest.mark.parametrize("recipe", ["mini", "digits"])
def test_cpu_recipe_configs_build_a_model(recipe: str) -> None:
    for path in sorted((REPO / "recipes" / recipe / "conf").glob("*.yaml")):
        model = LAS(load_yaml(path), vocab_size=32)
        assert sum(p.numel() for p in model.parameters()) < 5_000_000, path


@pytest.mark.parametrize("recipe", ["mini", "digits"])
def test_cpu_recipe_run_splits_the_configs_batch_over_its_processes(recipe: str) -> None:
    # run.sh passes train.max_frames = max_frames / nproc to each torchrun process; its
    # max_frames must be the configs' own, or the recipe trains with another batch than theirs.
    script = (REPO / "recipes" / recipe / "run.sh").read_text()
    settings = {
        name: value.split()[0]  # the value, without a trailing comment
        for name, value in (
            line.split("=", 1)
            for line in script.splitlines()
            if line.startswith(("nproc=", "max_frames="))
        )
    }
    for path in sorted((REPO / "recipes" / recipe / "conf").glob("*.yaml")):
        assert load_yaml(path).train.max_frames == int(settings["max_frames"]), path
    assert int(settings["max_frames"]) % int(settings["nproc"]) == 0


def _utt(uid: str, speaker: str) -> Utterance:
    return Utterance(uid, f"/x/{uid}.flac", 1.0, 16000, speaker, "A B")


def test_mini_split_holds_out_the_dev_speakers(tmp_path: Path) -> None:
    write_manifest(tmp_path / "train-clean-100.jsonl", [_utt("t1", "19"), _utt("t2", "26")])
    dev = [_utt("d1", "2412"), _utt("d2", "2078"), _utt("d3", "1272")]
    write_manifest(tmp_path / "dev-clean.jsonl", dev)
    script = REPO / "recipes" / "mini" / "local" / "make_split.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    train = {u.id for u in read_manifest(tmp_path / "mini_train.jsonl")}
    held = {u.id for u in read_manifest(tmp_path / "mini_dev.jsonl")}
    assert train == {"t1", "t2", "d3"} and held == {"d1", "d2"}


def test_digits_split_and_leave_one_speaker_out_split(tmp_path: Path) -> None:
    utts = [_utt(f"{spk}-{i}", spk) for spk in ("ann", "bob", "cy") for i in range(4)]
    write_manifest(tmp_path / "train.jsonl", utts)
    script = str(REPO / "recipes" / "digits" / "local" / "make_split.py")
    run = [sys.executable, script, str(tmp_path), "--every", "2"]
    subprocess.run(run, check=True, capture_output=True)
    dev = [u.id for u in read_manifest(tmp_path / "dev.jsonl")]
    assert dev == ["ann-1", "ann-3", "bob-1", "bob-3", "cy-1", "cy-3"]
    loso = tmp_path / "loso"
    subprocess.run([*run, "--hold-out", "bob", "--out", str(loso)], check=True, capture_output=True)
    fit = [u.id for u in read_manifest(loso / "train_fit.jsonl")]
    assert fit == ["ann-0", "ann-2", "cy-0", "cy-2"]
    assert [u.id for u in read_manifest(loso / "dev.jsonl")] == ["ann-1", "ann-3", "cy-1", "cy-3"]
    assert [u.speaker for u in read_manifest(loso / "heldout.jsonl")] == ["bob"] * 4
    bad = subprocess.run(
        [*run, "--hold-out", "dan", "--out", str(loso)], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "'dan' is not a speaker" in bad.stderr
    no_out = subprocess.run([*run, "--hold-out", "bob"], capture_output=True, text=True)
    assert no_out.returncode == 1 and "--hold-out needs --out" in no_out.stderr
    assert [u.id for u in read_manifest(tmp_path / "dev.jsonl")] == dev  # the split is untouched


def test_results_table_is_generated_from_reports(tmp_path: Path) -> None:
    report_dir = tmp_path / "exp" / "digits_global" / "eval" / "test"
    report_dir.mkdir(parents=True)
    report = {"wer": 0.031, "cer": 0.012, "ser": 0.1, "num_utterances": 200, "num_words": 800}
    (report_dir / "report.json").write_text(
        json.dumps({**report, "rtf": 0.05, "decode": {"beam": 4, "ctc_weight": 0.3}})
    )
    trained = {
        "epochs": 23,
        "steps": 4071,
        "train_minutes": 9.96,
        "threads": 1,
        "audio_seconds_per_second": 160.4,
    }
    (report_dir.parents[1] / "train_result.json").write_text(json.dumps(trained))
    config = "attention: {kind: local}\ntrain: {guide_weight: 0.5}\n"
    (report_dir.parents[1] / "config.yaml").write_text(config)
    pieces = ["<blank>", "<eos>", "<unk>", "▁ONE", "▁TWO"]
    tokenizer = {"kind": "sentencepiece", "model_type": "bpe", "pieces": pieces}
    (report_dir.parents[1] / "tokenizer.json").write_text(json.dumps(tokenizer))
    out = tmp_path / "RESULTS.md"
    script = REPO / "recipes" / "common" / "results_table.py"
    cmd = [sys.executable, str(script), "--out", str(out), str(tmp_path / "exp")]
    subprocess.run(cmd, check=True, capture_output=True)
    assert (
        "| digits_global | pblstm + lstm | 9.9 | local | bpe (5) | 0.5 | test | 4 | 0.3 | - | 3.10 "
        "| 1.20 | 10.0 | 200 | 800 | 23 | 4071 | 10.0 | 1 | 160 | 0.050 |" in out.read_text()
    )
    # An ensemble: the report names its members' checkpoints, each a trained experiment.
    pair = tmp_path / "exp" / "pair"
    members = [pair / "member-0", pair / "member-1"]
    for member, steps in zip(members, (3397, 3366), strict=True):
        member.mkdir(parents=True)
        (member / "train_result.json").write_text(json.dumps({**trained, "steps": steps}))
        (member / "config.yaml").write_text(config)
        (member / "tokenizer.json").write_text(json.dumps(tokenizer))
    ensemble = [{"model": str(m / "final.pt"), "model_sha256": "0"} for m in members]
    (pair / "eval" / "test").mkdir(parents=True)
    (pair / "eval" / "test" / "report.json").write_text(
        json.dumps({**report, "rtf": 0.05, "decode": {"beam": 4}, "ensemble": ensemble})
    )
    fused = tmp_path / "exp" / "digits_global" / "eval" / "test_lm"
    fused.mkdir()
    lm_decode = {"beam": 4, "ctc_weight": 0.3, "lm": "exp/lm_char/final.pt", "lm_weight": 0.4}
    (fused / "report.json").write_text(json.dumps({**report, "rtf": 0.05, "decode": lm_decode}))
    subprocess.run(cmd, check=True, capture_output=True)
    assert "| test_lm | 4 | 0.3 | 0.4 x lm_char | 3.10 |" in out.read_text()
    assert (
        "| pair (2 members) | pblstm + lstm | 9.9 | local | bpe (5) | 0.5 | test | 4 | ? | - "
        "| 3.10 | 1.20 | 10.0 | 200 | 800 | 23 / 23 | 3397 / 3366 | 10.0 | 2 | 321 | 0.050 |"
        in out.read_text()
    )


def test_stage_scripts_reject_unknown_options() -> None:
    for script in sorted((REPO / "recipes").glob("*/run.sh")):
        done = subprocess.run(
            ["bash", str(script), "--no-such-option", "1"], cwd=REPO, capture_output=True, text=True
        )
        assert done.returncode == 1 and "unknown option" in done.stderr, script


def _run_stage_with_stubs(
    tmp_path: Path, recipe: str, stage: str, options: list[str]
) -> list[list[str]]:
    """Run one stage of a recipe with `torchrun` and `attnasr` stubs on PATH that record
    their arguments instead of training; returns one argument list per call."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir(parents=True)
    calls.mkdir()
    for name in ("torchrun", "attnasr"):  # one file per call: members run side by side
        stub = bin_dir / name
        stub.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" {name} "$@" > "{calls}/$$"\n')
        stub.chmod(0o755)
    done = subprocess.run(
        ["bash", f"recipes/{recipe}/run.sh", "--stage", stage, "--stop-stage", stage, *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    return [f.read_text().splitlines() for f in sorted(calls.iterdir())]


@pytest.mark.parametrize(
    ("recipe", "stage", "launcher", "expected_tail"),
    [
        ("mini", "3", "torchrun", ["--set", "train.max_frames=4000"]),  # split batch last
        ("digits", "2", "attnasr", ["--set", "train.max_frames=3000"]),  # 3 members x 1 process
        ("librispeech", "2", "torchrun", []),
    ],
)
def test_stage_scripts_pass_train_args_to_the_trainer(
    tmp_path: Path, recipe: str, stage: str, launcher: str, expected_tail: list[str]
) -> None:
    extra = ["--set", "speller.input_feeding=false", "--max-epochs", "2"]
    options = {"mini": ["--exp", str(tmp_path / "exp")], "digits": ["--attentions", "global"]}
    options_of_recipe = [*options.get(recipe, []), "--train-args", " ".join(extra)]
    for args in _run_stage_with_stubs(tmp_path, recipe, stage, options_of_recipe):
        assert args[0] == launcher and "train" in args
        assert args[-len(extra) - len(expected_tail) :] == extra + expected_tail


def test_mini_model_option_picks_the_conformer_config_and_scores_greedy_too(
    tmp_path: Path,
) -> None:
    exp = str(tmp_path / "exp")
    options = ["--exp", exp, "--model", "conformer", "--attention", "local"]
    (trained,) = _run_stage_with_stubs(tmp_path / "a", "mini", "3", options)
    assert "recipes/mini/conf/conformer_local.yaml" in trained
    scored = _run_stage_with_stubs(tmp_path / "b", "mini", "4", options)
    outs = sorted(args[args.index("--out") + 1] for args in scored)
    assert outs == [f"{exp}/eval/dev", f"{exp}/eval/dev_greedy"]
    greedy = next(args for args in scored if args[args.index("--out") + 1].endswith("greedy"))
    assert greedy[greedy.index("--beam") + 1] == "1"
    assert greedy[greedy.index("--ctc-weight") + 1] == "0"


def test_librispeech_model_option_picks_the_conformer_config(tmp_path: Path) -> None:
    options = ["--model", "conformer", "--attention", "monotonic", "--exp-root", "exp/x"]
    (trained,) = _run_stage_with_stubs(tmp_path, "librispeech", "2", options)
    assert "recipes/librispeech/conf/100h_conformer_monotonic.yaml" in trained
    assert trained[trained.index("--out") + 1] == "exp/x/100h_conformer_monotonic"


def test_digits_trains_members_side_by_side_and_evaluates_them_together(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    common = ["--attentions", "local", "--exp-root", str(exp), "--seed", "1"]
    trained = _run_stage_with_stubs(tmp_path / "a", "digits", "2", common)
    members = sorted(
        (args[args.index("--out") + 1], next(a for a in args if a.startswith("train.seed=")))
        for args in trained
    )
    assert members == [  # the default: three members, member m at seed 3 x 1 + m
        (f"{exp}/local/member-0", "train.seed=3"),
        (f"{exp}/local/member-1", "train.seed=4"),
        (f"{exp}/local/member-2", "train.seed=5"),
    ]
    scored = _run_stage_with_stubs(tmp_path / "b", "digits", "3", common)
    assert len(scored) == 2  # the config's search and greedy, each over all members
    for args in scored:
        assert args[:2] == ["attnasr", "evaluate"]
        models = [args[i + 1] for i, a in enumerate(args) if a == "--model"]
        assert models == [f"{exp}/local/member-{m}" for m in range(3)]
    single = _run_stage_with_stubs(
        tmp_path / "c", "digits", "2", [*common, "--members", "1", "--nproc", "2"]
    )
    assert len(single) == 1 and single[0][0] == "torchrun"
    assert single[0][single[0].index("--out") + 1] == f"{exp}/local"
    assert "train.seed=1" in single[0] and single[0][-1] == "train.max_frames=1500"
