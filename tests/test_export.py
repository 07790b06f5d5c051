"""`attnasr export`: ONNX graphs that decode with ONNX Runtime alone to the PyTorch model's
greedy transcripts (synthetic and shared dev audio), in a process without torch; refusals."""

from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from asrkit.checkpoint import LoadedModel, load_model, save_checkpoint
from asrkit.cli.main import app
from asrkit.decoding import greedy_search
from asrkit.features import Fbank, load_audio
from asrkit.model.las import LAS
from asrkit.testing import tiny_config
from asrkit.tokenizer import CharTokenizer

pytest.importorskip("onnxruntime", reason='pip install "attnasr[onnx]"')
runner = CliRunner()
TOKENIZER = CharTokenizer.train([string.ascii_uppercase + " '"])


def experiment(folder: Path, kind: str, **options: object) -> Path:
    cfg = tiny_config(kind, listener__conv_subsample=2, **options)
    torch.manual_seed(0)
    model = LAS(cfg, TOKENIZER.vocab_size).eval()
    save_checkpoint(folder / "final.pt", model, cfg, TOKENIZER)
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    exp = experiment(tmp_path_factory.mktemp("exp"), "location")
    out = tmp_path_factory.mktemp("onnx") / "model"
    result = runner.invoke(app, ["export", str(exp), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return exp, out


def torch_greedy(loaded: LoadedModel, wave: torch.Tensor) -> str:
    feats = Fbank(loaded.config.features)(wave).unsqueeze(0)
    opts = loaded.decode_options(beam=1)
    lengths = torch.tensor([feats.shape[1]])
    return greedy_search(loaded.model, feats, lengths, opts, loaded.tokenizer)[0].text


@pytest.fixture(scope="module")
def exported_monotonic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    # Gain 3 and offset 0: the untrained scan stops on scattered frames, so the exported
    # loop-free scan must find the same ones as the lazy scan for the texts to agree.
    options = {"attention__r_init": 0.0, "attention__g_init": 3.0}
    exp = experiment(tmp_path_factory.mktemp("mono"), "monotonic", **options)
    out = tmp_path_factory.mktemp("onnx_mono") / "model"
    result = runner.invoke(app, ["export", str(exp), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return exp, out


@pytest.mark.parametrize("which", ["exported", "exported_monotonic"])
def test_onnx_greedy_equals_pytorch(which: str, request: pytest.FixtureRequest) -> None:
    from asrkit.export.onnx_runtime import OnnxRecognizer

    exp, out = request.getfixturevalue(which)
    loaded, recognizer = load_model(exp, "cpu"), OnnxRecognizer(out)
    for seconds in (0.5, 1.3, 3.7):  # lengths the export never saw
        wave = torch.randn(int(16000 * seconds), generator=torch.Generator().manual_seed(1))
        feats = recognizer.features(wave.numpy())
        torch.testing.assert_close(
            torch.from_numpy(feats), Fbank(loaded.config.features)(wave), atol=1e-3, rtol=0
        )
        assert recognizer.transcribe(wave.numpy()) == torch_greedy(loaded, wave)


def test_onnx_equals_pytorch_on_shared_dev_audio(
    exported: tuple[Path, Path], librispeech_dir: Path
) -> None:
    from asrkit.export.onnx_runtime import OnnxRecognizer

    exp, out = exported
    loaded, recognizer = load_model(exp, "cpu"), OnnxRecognizer(out)
    files = sorted((librispeech_dir / "dev-clean").rglob("*.mp3"))[:2]
    assert files, f"no dev-clean audio under {librispeech_dir}"
    for path in files:
        assert recognizer.transcribe_file(path) == torch_greedy(loaded, load_audio(path))


def test_exported_files_decode_in_a_process_without_torch(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    exp, out = exported
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(2))
    sf.write(str(tmp_path / "a.wav"), wave.numpy(), 16000)
    code = (
        "import sys\n"
        "from asrkit.export.onnx_runtime import OnnxRecognizer\n"
        f"text = OnnxRecognizer({str(out)!r}).transcribe_file({str(tmp_path / 'a.wav')!r})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(text)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = torch_greedy(load_model(exp, "cpu"), load_audio(tmp_path / "a.wav"))
    assert done.stdout.strip() == expected


def test_export_refusals(exported: tuple[Path, Path], tmp_path: Path) -> None:
    exp, out = exported
    again = runner.invoke(app, ["export", str(exp), "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output
    sampled = experiment(tmp_path / "hard", "hard")
    refused = runner.invoke(app, ["export", str(sampled), "--out", str(tmp_path / "h")])
    assert refused.exit_code == 1 and "hard attention" in refused.output
    assert "exportable kinds" in refused.output and "Traceback" not in refused.output
    script = runner.invoke(app, ["export", str(exp), "--format", "torchscript", "--out",
                                 str(tmp_path / "ts")])  # fmt: skip
    assert script.exit_code == 1 and "not built yet" in script.output
