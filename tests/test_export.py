"""`attnasr export`: ONNX graphs that decode with ONNX Runtime alone to the PyTorch model's
greedy and beam-search transcripts (synthetic and shared dev audio), in a process without
torch; traced TorchScript graphs that decode the same; refusals."""

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
from asrkit.decoding import beam_search, greedy_search
from asrkit.features import Fbank, load_audio
from asrkit.model.las import LAS
from asrkit.testing import tiny_config
from asrkit.tokenizer import CharTokenizer

pytest.importorskip("onnxruntime", reason='pip install "attnasr[onnx]"')
runner = CliRunner()
TOKENIZER = CharTokenizer.train([string.ascii_uppercase + " '"])


def experiment(folder: Path, kind: str, **options: object) -> Path:
    # decode.ctc_weight 0.4: model.json carries it, so a beam search reads it by default
    cfg = tiny_config(kind, listener__conv_subsample=2, decode__ctc_weight=0.4, **options)
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


def torch_beam(
    loaded: LoadedModel, wave: torch.Tensor, beam: int, ctc_weight: float = 0.0
) -> list[int]:
    feats = Fbank(loaded.config.features)(wave).unsqueeze(0)
    opts = loaded.decode_options(beam=beam, ctc_weight=ctc_weight)
    return beam_search(loaded.model, feats, torch.tensor([feats.shape[1]]), opts)[0].tokens


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


@pytest.mark.parametrize("which", ["exported", "exported_monotonic"])
def test_onnx_beam_search_equals_pytorch_beam_search(
    which: str, request: pytest.FixtureRequest
) -> None:
    from asrkit.export.onnx_runtime import OnnxRecognizer

    exp, out = request.getfixturevalue(which)
    loaded, recognizer = load_model(exp, "cpu"), OnnxRecognizer(out)
    differ = 0
    for seed, seconds in enumerate((0.6, 1.3, 2.9)):
        wave = torch.randn(int(16000 * seconds), generator=torch.Generator().manual_seed(seed))
        feats = recognizer.features(wave.numpy())
        assert recognizer.search(feats, beam=1) == recognizer.search(feats)  # K = 1 is greedy
        for beam in (2, 5):
            tokens = recognizer.search(feats, beam=beam, ctc_weight=0.0)
            assert tokens == torch_beam(loaded, wave, beam), (seconds, beam)
            differ += tokens != recognizer.search(feats)
            joint = recognizer.search(feats, beam=beam, ctc_weight=0.5)
            assert joint == torch_beam(loaded, wave, beam, 0.5), (seconds, beam, "ctc")
            differ += joint != tokens
    assert differ >= 2  # the beams, and CTC, found other hypotheses somewhere


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
        feats = recognizer.features(load_audio(path).numpy())
        assert recognizer.search(feats, beam=4, ctc_weight=0.3) == torch_beam(
            loaded, load_audio(path), 4, 0.3
        )


def test_exported_files_decode_in_a_process_without_torch(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    exp, out = exported
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(2))
    sf.write(str(tmp_path / "a.wav"), wave.numpy(), 16000)
    code = (
        "import sys\n"
        "from asrkit.export.onnx_runtime import OnnxRecognizer\n"
        f"recognizer = OnnxRecognizer({str(out)!r})\n"
        f"print(recognizer.transcribe_file({str(tmp_path / 'a.wav')!r}))\n"
        f"print(recognizer.transcribe_file({str(tmp_path / 'a.wav')!r}, beam=3))\n"  # + CTC
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded, audio = load_model(exp, "cpu"), load_audio(tmp_path / "a.wav")
    weight = loaded.decode_options().ctc_weight  # the model's decode.ctc_weight
    assert weight == 0.4
    beamed = loaded.tokenizer.decode(torch_beam(loaded, audio, 3, weight))
    assert done.stdout.splitlines() == [torch_greedy(loaded, audio), beamed]


def test_export_refusals(exported: tuple[Path, Path], tmp_path: Path) -> None:
    exp, out = exported
    again = runner.invoke(app, ["export", str(exp), "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output
    sampled = experiment(tmp_path / "hard", "hard")
    refused = runner.invoke(app, ["export", str(sampled), "--out", str(tmp_path / "h")])
    assert refused.exit_code == 1 and "hard attention" in refused.output
    assert "exportable kinds" in refused.output and "Traceback" not in refused.output
    script = runner.invoke(app, ["export", str(sampled), "--format", "torchscript", "--out",
                                 str(tmp_path / "ts")])  # fmt: skip
    assert script.exit_code == 1 and "hard attention" in script.output


@pytest.mark.parametrize("kind", ["location", "monotonic"])
def test_torchscript_export_decodes_as_pytorch_does(kind: str, tmp_path: Path) -> None:
    from asrkit.export.onnx_runtime import OnnxRecognizer

    options = {"attention__r_init": 0.0, "attention__g_init": 3.0} if kind == "monotonic" else {}
    exp = experiment(tmp_path / "exp", kind, **options)
    out = tmp_path / "ts"
    result = runner.invoke(app, ["export", str(exp), "--format", "torchscript", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["encoder.pt", "decoder_step.pt", "model.json", "features.npz"]
    )
    loaded, recognizer = load_model(exp, "cpu"), OnnxRecognizer(out)
    for seed, seconds in enumerate((0.7, 2.3)):
        wave = torch.randn(int(16000 * seconds), generator=torch.Generator().manual_seed(seed))
        assert recognizer.transcribe(wave.numpy()) == torch_greedy(loaded, wave)
        feats = recognizer.features(wave.numpy())
        assert recognizer.search(feats, 3, 0.4) == torch_beam(loaded, wave, 3, 0.4)
    again = runner.invoke(app, ["export", str(exp), "--format", "torchscript", "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output


def test_a_streaming_conformer_listener_exports_and_decodes_as_pytorch(tmp_path: Path) -> None:
    from test_streaming_chunked import conformer_model

    from asrkit.export.onnx_export import export_onnx
    from asrkit.export.onnx_runtime import OnnxRecognizer

    loaded = conformer_model("monotonic")  # chunk mask, causal convolution, rotary positions
    export_onnx(loaded, tmp_path / "onnx")
    recognizer = OnnxRecognizer(tmp_path / "onnx")
    for seed, seconds in enumerate((0.9, 2.6)):
        wave = torch.randn(int(16000 * seconds), generator=torch.Generator().manual_seed(seed))
        assert recognizer.transcribe(wave.numpy()) == torch_greedy(loaded, wave)
        feats = recognizer.features(wave.numpy())
        assert recognizer.search(feats, 4, 0.3) == torch_beam(loaded, wave, 4, 0.3)
