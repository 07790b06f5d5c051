"""`attnasr export EXP --format onnx --out DIR`: the encoder and one decoder step as ONNX graphs.

- `encoder.onnx`: raw log-mel `feats` (1, T, n_mels) -> the attention memory (`values` and the
  attention's key projections, (1, T', ...)) and the decoder's initial state (`init.<name>`);
  CMVN is inside, T is dynamic.
- `decoder_step.onnx`: `prev` (N,) int64, the memory and `state.<name>` of N rows (one for
  greedy search, the K beams for beam search) -> `logits` (N, V), `weights` (N, T') and the new
  state, in `model.json`'s order: the attention state is an
  explicit input and output, so any runtime can run the loop.
- `model.json` + `features.npz`: units, features, decoding rules; `asrkit.export.onnx_runtime`
  decodes with them using ONNX Runtime and NumPy alone.

Exported: the LSTM speller with a global, local or monotonic attention (the hard monotonic scan
as one masked argmax over the frames, `MonotonicAttention.scan_all_frames`: the same frame as
the lazy scan, without its loop). Not (named when refused): stochastic hard attention, the
Transformer decoder, and encoders that normalise by the utterance or speaker mean.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from asrkit.checkpoint import LoadedModel
from asrkit.features import Fbank
from asrkit.io import UserError, atomic_write_text, ensure_writable_dir, refuse_overwrite
from asrkit.model.attention.base import AttendMemory
from asrkit.tokenizer import BLANK_ID, EOS_ID, SPACE, SPECIALS

FILES = ("encoder.onnx", "decoder_step.onnx", "model.json", "features.npz")
DECODE_KEYS = ("max_len_ratio", "min_len_ratio", "eos_threshold", "repeat_ngram", "repeat_copies")
DECODE_KEYS += ("length_penalty", "pre_beam")
EXPORTABLE = ("dot", "general", "additive", "location", "multihead", "local-m", "local-p")
EXPORTABLE += ("monotonic", "mocha")  # their hard scan exported without its loop


def export_problem(loaded: LoadedModel) -> str | None:
    """Why this model cannot be exported, naming the part; None when it can."""
    cfg, kind, name = loaded.config, loaded.model.attention_kind, loaded.path
    if cfg.decoder.kind != "lstm":
        return (
            f"{name}: the Transformer decoder's cached step is not exported yet (LSTM speller only)"
        )
    if kind not in EXPORTABLE:
        return (
            f"{name}: {kind} attention: its decoding step samples or searches in a way an ONNX"
            " graph does not express yet; exportable kinds: " + ", ".join(EXPORTABLE)
        )
    if cfg.model.utterance_cmn or cfg.model.speaker_cmn:
        return f"{name}: the encoder normalises by the utterance or speaker mean (not exported)"
    return None


class EncoderGraph(nn.Module):
    """feats (1, T, n_mels) -> values, the attention keys, the initial decoder state and, with
    a CTC head, the CTC log-probabilities (1, T', V)."""

    def __init__(self, loaded: LoadedModel, key_names: list[str], state_names: list[str]) -> None:
        super().__init__()
        self.model, self.key_names, self.state_names = loaded.model, key_names, state_names

    def forward(self, feats: Tensor) -> tuple[Tensor, ...]:
        lengths = torch.full((1,), feats.shape[1], dtype=torch.long)
        enc, enc_lengths = self.model.encode(feats, lengths)
        mem = self.model.speller.prepare(enc, enc_lengths)
        state = self.model.speller.initial_state(mem)
        ctc = self.model.ctc_log_probs(enc)  # joint CTC/attention beam search reads these
        outputs = (
            enc,
            *[mem.keys[k] for k in self.key_names],
            *[state[k] for k in self.state_names],
        )
        return outputs if ctc is None else (*outputs, ctc)


class StepGraph(nn.Module):
    """prev (N,), values (N, T', D), (keys..., state...) -> logits, weights, new state."""

    def __init__(self, loaded: LoadedModel, key_names: list[str], state_names: list[str]) -> None:
        super().__init__()
        self.model, self.key_names, self.state_names = loaded.model, key_names, state_names

    def forward(self, prev: Tensor, values: Tensor, rest: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        keys = dict(zip(self.key_names, rest[: len(self.key_names)], strict=True))
        state = dict(zip(self.state_names, rest[len(self.key_names) :], strict=True))
        rows, frames = values.shape[0], values.shape[1]
        lengths = torch.full((rows,), frames, dtype=torch.long)
        mem = AttendMemory(values, torch.ones(rows, frames, dtype=torch.bool), lengths, keys)
        out = self.model.speller.step(prev, state, mem, "eval")
        return (out.logits, out.weights, *[out.state[k] for k in self.state_names])


def export_onnx(loaded: LoadedModel, out_dir: Path, force: bool = False) -> list[Path]:
    """Write the four files into `out_dir`; returns their paths.

    Raises:
        UserError: a model that cannot be exported (naming the part and why), earlier files
            without `force`, or an exporter failure (named, one line).
    """
    problem = export_problem(loaded)
    if problem is not None:
        raise UserError(problem)
    out_dir = ensure_writable_dir(Path(out_dir))
    final = [out_dir / name for name in FILES]
    refuse_overwrite(final, force)
    paths = [path.with_name("tmp." + path.name) for path in final]  # renamed when all exist
    model = loaded.model.eval().cpu()
    attention = model.speller.attention
    if hasattr(attention, "loop_free"):  # monotonic kinds: the scan as one masked argmax
        attention.loop_free = True
    example = torch.zeros(1, 64, loaded.config.features.n_mels)
    with torch.no_grad():
        enc, enc_lengths = model.encode(example, torch.tensor([64]))
        mem = model.speller.prepare(enc, enc_lengths)
        state = model.speller.initial_state(mem)
    key_names, state_names = sorted(mem.keys), sorted(state)
    frames = torch.export.Dim("frames", min=8, max=1_000_000)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                EncoderGraph(loaded, key_names, state_names), (example,), str(paths[0]),
                dynamo=True, input_names=["feats"], dynamic_shapes={"feats": {1: frames}},
                output_names=encoder_outputs(loaded, key_names, state_names),
                verbose=False,
            )  # fmt: skip
            # Two example rows, so the row count stays symbolic (beam search runs K rows, a
            # size-1 example would be specialised). Clones: the initial h and c are one zeros
            # tensor, and the exporter would merge two inputs that alias into one.
            rest = tuple(
                [pair(mem.keys[k]) for k in key_names] + [pair(state[k]) for k in state_names]
            )
            rows = torch.export.Dim("rows", min=1, max=4096)
            per_row = {0: rows, 1: torch.export.Dim.AUTO}
            spec = tuple(
                [per_row for _ in key_names]
                + [per_row if state[k].dim() > 1 else {0: rows} for k in state_names]
            )
            torch.onnx.export(
                StepGraph(loaded, key_names, state_names),
                (torch.tensor([EOS_ID, EOS_ID]), pair(enc), rest), str(paths[1]), dynamo=True,
                input_names=["prev", "values", *key_names, *["state." + k for k in state_names]],
                output_names=["logits", "weights", *["new." + k for k in state_names]],
                dynamic_shapes=({0: rows}, per_row, spec), verbose=False,
            )  # fmt: skip
    except Exception as exc:  # the exporter's errors are many and long: one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{loaded.path}: ONNX export failed ({first[:200]})") from exc
    finally:
        if hasattr(attention, "loop_free"):
            attention.loop_free = False
    write_meta(loaded, paths, key_names, state_names)
    problem = _mismatch(loaded, paths)
    if problem is not None:
        for path in paths:
            path.unlink(missing_ok=True)
        raise UserError(f"{loaded.path}: not exported: {problem}")
    for written, path in zip(paths, final, strict=True):
        os.replace(written, path)
    return final


def encoder_outputs(loaded: LoadedModel, key_names: list[str], state_names: list[str]) -> list[str]:
    """The encoder graph's output names: memory, initial state, and "ctc" with a CTC head."""
    names = ["values", *key_names, *["init." + k for k in state_names]]
    return names + (["ctc"] if loaded.model.ctc is not None else [])


def pair(x: Tensor) -> Tensor:
    """Two copies of a one-row tensor along the first axis (a fresh tensor, no alias)."""
    return torch.cat([x, x]).clone()


def _mismatch(loaded: LoadedModel, paths: list[Path]) -> str | None:
    """Check the graphs against the model on inputs of other lengths than the example's:
    the exporter may fix a length it could not keep symbolic. None when they agree."""
    import onnxruntime as ort

    encoder = ort.InferenceSession(str(paths[0]))
    step = ort.InferenceSession(str(paths[1]))
    names = json.loads(paths[2].read_text(encoding="utf-8"))["names"]
    model = loaded.model
    for frames in (37, 101):
        feats = torch.randn(1, frames, loaded.config.features.n_mels, generator=seeded())
        try:
            outputs = encoder.run(None, {"feats": feats.numpy()})
            with torch.no_grad():
                enc, _ = model.encode(feats, torch.tensor([frames]))
            if outputs[0].shape != tuple(enc.shape) or not np.allclose(
                outputs[0], enc.numpy(), atol=1e-4
            ):
                return f"the exported encoder differs from the model on {frames} input frames"
            feed = {"prev": np.array([EOS_ID], dtype=np.int64)}
            feed.update(dict(zip(names["memory"], outputs, strict=False)))
            inits = outputs[len(names["memory"]) : len(names["memory"]) + len(names["state"])]
            feed.update({"state." + k: v for k, v in zip(names["state"], inits, strict=True)})
            step.run(None, feed)
            rows = {k: np.repeat(v, 3, axis=0) for k, v in feed.items()}  # beam search's rows
            step.run(None, rows)
        except Exception as exc:  # onnxruntime's errors: a fixed shape met another length
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "error"
            return (
                f"the exported graphs do not run on {frames} input frames ({first}); the"
                " exporter fixed a length (seen with listener.conv_subsample 1)"
            )
    return None


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def write_meta(
    loaded: LoadedModel,
    paths: list[Path],
    key_names: list[str],
    state_names: list[str],
    fmt: str = "attnasr-onnx-v1",
) -> None:
    """`model.json` and `features.npz` (paths[2], paths[3]) of an export in format `fmt`."""
    cfg, opts, chosen = loaded.config, loaded.decode_options(beam=1), loaded.decode_options()
    fbank = Fbank(cfg.features)
    spectrogram = fbank.mel.spectrogram
    n_fft, win = spectrogram.n_fft, spectrogram.win_length
    window = np.zeros(n_fft, dtype=np.float32)  # torch.stft centres the window in the frame
    left = (n_fft - win) // 2
    window[left : left + win] = spectrogram.window.numpy()
    np.savez(paths[3], window=window, mel_filters=fbank.mel.mel_scale.fb.numpy())
    meta = {
        "format": fmt,
        "model": str(loaded.path),
        "features": {"sample_rate": cfg.features.sample_rate, "n_fft": n_fft, "hop": fbank.hop},
        "units": {
            "pieces": list(loaded.tokenizer.pieces),
            "specials": len(SPECIALS),
            "space": SPACE,
            "blank_id": BLANK_ID,
            "eos_id": EOS_ID,
        },
        "decode": {
            "beam": chosen.beam,
            "ctc_weight": chosen.ctc_weight if loaded.model.ctc else 0.0,
            **{k: getattr(opts, k) for k in DECODE_KEYS},
        },
        "names": {
            "memory": ["values", *key_names],
            "state": state_names,
            "encoder_outputs": encoder_outputs(loaded, key_names, state_names),
        },
    }
    atomic_write_text(paths[2], json.dumps(meta, indent=2) + "\n")
