"""Streaming: incremental features and listener equal the offline ones, a stream ends with
greedy search's hypothesis for every streaming kind and chunk size, silence gives nothing,
and `transcribe --stream` / `--stdin` work and refuse what cannot stream."""

from __future__ import annotations

import itertools
import json
import string
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from asrkit.checkpoint import LoadedModel, save_checkpoint
from asrkit.cli.main import app
from asrkit.config import FeaturesConfig
from asrkit.decoding import greedy_search
from asrkit.features import Fbank
from asrkit.io import UserError
from asrkit.model.las import LAS
from asrkit.streaming import Stream, StreamResult, streaming_problem
from asrkit.streaming.encoder import IncrementalListener
from asrkit.streaming.features import StreamingFbank
from asrkit.streaming.search import segmented_greedy
from asrkit.testing import tiny_config
from asrkit.tokenizer import CharTokenizer

runner = CliRunner()
TOKENIZER = CharTokenizer.train([string.ascii_uppercase + " '"])
# Untrained monotonic energies with gain 3 and offset 0 stop the scan on scattered frames, so
# steps wait for frames and resume; local-m windows move with their alignments.
KINDS = {
    "monotonic": {"attention__r_init": 0.0, "attention__g_init": 3.0},
    "mocha": {"attention__r_init": 0.0, "attention__g_init": 3.0},
    "local-m": {},
    "local-m-location": {"attention__score": "location"},
}


def streaming_model(kind: str, streaming: bool = True, **extra: object) -> LoadedModel:
    options = {**KINDS.get(kind, {}), **extra}
    cfg = tiny_config(kind.replace("-location", ""), listener__streaming=streaming, **options)
    torch.manual_seed(0)
    model = LAS(cfg, TOKENIZER.vocab_size).eval()
    return LoadedModel(model, cfg, TOKENIZER, Path(f"{kind}.pt"))


def chirp(seconds: float, rate: int = 16000) -> torch.Tensor:
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.05 * np.random.default_rng(0).standard_normal(t.size)
    return torch.tensor(0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + noise, dtype=torch.float32)


def run_stream(
    loaded: LoadedModel, wave: torch.Tensor, chunk: int, endpoint_seconds: float = 0.0
) -> tuple[list, StreamResult]:
    stream = Stream(loaded, loaded.decode_options(beam=1), endpoint_seconds)
    partials = []
    for start in range(0, wave.numel(), chunk):
        partials += stream.accept(wave[start : start + chunk])
    return partials, stream.finish()


@pytest.mark.parametrize("samples", [257, 4000, 16001, 33333])
@pytest.mark.parametrize("chunk", [7, 1000, 2560, 100_000])
def test_streaming_features_equal_offline(samples: int, chunk: int) -> None:
    wave = torch.randn(samples, generator=torch.Generator().manual_seed(samples))
    fbank = StreamingFbank(FeaturesConfig())
    parts = [fbank.accept(wave[i : i + chunk]) for i in range(0, samples, chunk)]
    streamed = torch.cat([*parts, fbank.finish()])
    offline = Fbank(FeaturesConfig())(wave)
    assert streamed.shape == offline.shape
    torch.testing.assert_close(streamed, offline, atol=1e-4, rtol=0)


@pytest.mark.parametrize("conv_subsample", [1, 2, 4])
@pytest.mark.parametrize("frames", [1, 2, 17, 101])
def test_incremental_listener_equals_offline(conv_subsample: int, frames: int) -> None:
    model = streaming_model("monotonic", listener__conv_subsample=conv_subsample).model
    x = torch.randn(1, frames, 80, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        offline, length = model.listener(x, torch.tensor([frames]))
    for chunk in (1, 3, 7, 200):
        listener = IncrementalListener(model.listener)
        parts = [listener.feed(x[0, i : i + chunk]) for i in range(0, frames, chunk)]
        streamed = torch.cat([*parts, listener.finish()])
        assert streamed.shape[0] == int(length)
        torch.testing.assert_close(streamed, offline[0, : int(length)], atol=1e-5, rtol=0)


def assert_stream_ends_with_greedy(
    loaded: LoadedModel, wave: torch.Tensor, chunk: int
) -> tuple[list, StreamResult]:
    """Stream `wave` in chunks of `chunk` samples: the final hypothesis and its attention are
    greedy search's over the whole file, and no partial text is ever taken back."""
    feats = Fbank(loaded.config.features)(wave).unsqueeze(0)
    opts = loaded.decode_options(beam=1)
    offline = greedy_search(loaded.model, feats, torch.tensor([feats.shape[1]]), opts, TOKENIZER)[0]
    partials, result = run_stream(loaded, wave, chunk)
    assert result.hypothesis.tokens == offline.tokens
    torch.testing.assert_close(result.hypothesis.attention, offline.attention, atol=1e-5, rtol=0)
    assert all(result.text.startswith(p.text) for p in partials)  # committed text never changes
    return partials, result


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("chunk", [1000, 2560, 50_000])  # not dividing the audio; > the audio
def test_stream_ends_with_greedy_searchs_hypothesis(kind: str, chunk: int) -> None:
    partials, result = assert_stream_ends_with_greedy(streaming_model(kind), chirp(2.0), chunk)
    texts = [p.text for p in partials]
    assert all(len(a) < len(b) for a, b in itertools.pairwise(texts))
    assert [p.seconds for p in partials] == sorted(p.seconds for p in partials)
    assert len(result.emitted) == len(result.words)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("chunk", [1000, 2560])
def test_stream_segments_equal_segmented_greedy(kind: str, chunk: int) -> None:
    loaded = streaming_model(kind)
    wave = torch.cat([chirp(2.0), torch.zeros(8000), chirp(2.0), torch.zeros(16000), chirp(1.5)])
    feats = Fbank(loaded.config.features)(wave).unsqueeze(0)
    with torch.no_grad():
        encoded = loaded.model.encode(feats, torch.tensor([feats.shape[1]]))
    opts = loaded.decode_options(beam=1)
    offline = segmented_greedy(loaded.model, encoded, opts, 5, TOKENIZER)  # 0.2 s of frames
    _, result = run_stream(loaded, wave, chunk, endpoint_seconds=0.2)
    streamed = [(start, hyp.tokens) for start, hyp in result.segments]
    assert streamed == [(start, hyp.tokens) for start, hyp in offline]
    if kind.startswith("local-m"):  # these untrained models end early: the stream goes on
        assert len(offline) > 1 and result.words[-1].end > 4.0


def test_a_stream_commits_before_the_end() -> None:
    partials, result = run_stream(streaming_model("monotonic"), chirp(2.0), 2560)
    assert len(partials) >= 3 and partials[0].seconds < 1.0
    assert result.duration == pytest.approx(2.0)


def test_silence_gives_no_partials_and_an_empty_result() -> None:
    partials, result = run_stream(streaming_model("monotonic"), torch.zeros(32000), 2560)
    assert partials == [] and result.text == "" and result.words == []


def test_models_that_cannot_stream_are_refused_with_the_reason() -> None:
    bidirectional = streaming_model("monotonic", streaming=False)
    assert "bidirectional LSTM" in (streaming_problem(bidirectional) or "")
    assert "reads every frame" in (streaming_problem(streaming_model("location")) or "")
    cmn = streaming_model("monotonic", model__utterance_cmn=True)
    assert "utterance or speaker mean" in (streaming_problem(cmn) or "")
    with pytest.raises(UserError, match=r"listener\.streaming: true"):
        Stream(bidirectional)


@pytest.fixture(scope="module")
def stream_exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exp = tmp_path_factory.mktemp("stream_exp")
    loaded = streaming_model("monotonic")
    save_checkpoint(exp / "final.pt", loaded.model, loaded.config, TOKENIZER)
    return exp


@pytest.fixture(scope="module")
def chirp_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "chirp.wav"
    sf.write(str(path), chirp(2.0).numpy(), 16000, subtype="PCM_16")
    return path


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_transcribe_stream_writes_partials_then_the_offline_text(
    stream_exp: Path, chirp_file: Path
) -> None:
    args = ["transcribe", str(chirp_file), "--model", str(stream_exp), "--device", "cpu"]
    streamed = runner.invoke(
        app, [*args, "--stream", "--chunk-ms", "160", "--endpoint-seconds", "0"]
    )
    offline = runner.invoke(app, [*args, "--beam", "1", "--ctc-weight", "0"])
    assert streamed.exit_code == 0 and offline.exit_code == 0, streamed.output
    rows = events(streamed.stdout)
    assert [r["type"] for r in rows][-1] == "final" and rows[0]["type"] == "partial"
    assert rows[-1]["text"] == offline.stdout.strip()
    assert all(w["emitted"] >= 0 for w in rows[-1]["words"])


def test_stdin_pcm_streams_like_the_file(stream_exp: Path, chirp_file: Path) -> None:
    pcm = (np.clip(sf.read(str(chirp_file))[0], -1, 1) * 32767).astype("<i2").tobytes()
    args = ["transcribe", "--model", str(stream_exp), "--device", "cpu", "--stdin"]
    piped = runner.invoke(app, [*args, "--sample-rate", "16000"], input=pcm)
    from_file = runner.invoke(app, ["transcribe", str(chirp_file), "--model", str(stream_exp),
                                    "--device", "cpu", "--stream"])  # fmt: skip
    assert piped.exit_code == 0, piped.output
    assert events(piped.stdout)[-1]["text"] == events(from_file.stdout)[-1]["text"]
    cut = runner.invoke(app, [*args, "--sample-rate", "16000"], input=pcm[:-1])
    assert cut.exit_code == 1 and "middle of a sample" in cut.output
    wrong_rate = runner.invoke(app, [*args, "--sample-rate", "8000"], input=pcm)
    assert wrong_rate.exit_code == 1 and "reads 16000 Hz" in wrong_rate.output


def test_stream_refusals(stream_exp: Path, chirp_file: Path, tmp_path: Path) -> None:
    bidirectional = streaming_model("monotonic", streaming=False)
    save_checkpoint(tmp_path / "bi" / "final.pt", bidirectional.model, bidirectional.config,
                    TOKENIZER)  # fmt: skip
    base = ["transcribe", str(chirp_file), "--device", "cpu", "--stream"]
    refused = runner.invoke(app, [*base, "--model", str(tmp_path / "bi")])
    assert refused.exit_code == 1 and "reads the whole utterance" in refused.output
    assert "Traceback" not in refused.output
    beam = runner.invoke(app, [*base, "--model", str(stream_exp), "--beam", "4"])
    assert beam.exit_code == 1 and "greedily" in beam.output
    rate = runner.invoke(app, [*base, "--model", str(stream_exp), "--sample-rate", "8000"])
    assert rate.exit_code == 1 and "recorded at 16000 Hz" in rate.output


def test_public_stream_takes_a_path_and_the_demo_refuses_a_global_stream(
    stream_exp: Path, tmp_path: Path
) -> None:
    import asrkit

    stream = asrkit.Stream(stream_exp)
    assert stream.accept(torch.zeros(1600)) == [] and stream.finish().text == ""
    with pytest.raises(UserError, match="finished"):
        stream.accept(torch.zeros(10))
    demo = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--streaming",
                               "--attention", "global"])  # fmt: skip
    assert demo.exit_code == 1 and "reads every frame" in demo.output
    assert not (tmp_path / "d").exists()


def test_stream_out_folder_keeps_earlier_results(
    stream_exp: Path, chirp_file: Path, tmp_path: Path
) -> None:
    args = ["transcribe", str(chirp_file), "--model", str(stream_exp), "--device", "cpu",
            "--stream", "--out", str(tmp_path / "out")]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    lines = (tmp_path / "out" / "chirp.stream.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "final"
    assert (tmp_path / "out" / "chirp.txt").read_text().strip() == json.loads(lines[-1])["text"]
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--force" in again.output
