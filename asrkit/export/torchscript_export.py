"""`attnasr export EXP --format torchscript --out DIR`: the encoder and one decoder step traced.

The same two graphs as the ONNX export (`onnx_export.EncoderGraph`, `StepGraph`: the attention
state an explicit input and output, N rows per step) recorded with `torch.jit.trace` and saved
as `encoder.pt` and `decoder_step.pt`, for libtorch (C++) or any Python with torch; `model.json`
and `features.npz` as for ONNX, so `asrkit.export.onnx_runtime.OnnxRecognizer` decodes the
folder too (greedy or beam). Tracing records one path through the model: the monotonic scan is
traced in its loop-free form, and the traced graphs are checked against the model on other
input lengths and row counts before the files are kept.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from asrkit.checkpoint import LoadedModel
from asrkit.export.onnx_export import (
    EncoderGraph,
    StepGraph,
    export_problem,
    pair,
    seeded,
    write_meta,
)
from asrkit.io import UserError, ensure_writable_dir, refuse_overwrite
from asrkit.tokenizer import EOS_ID

FILES = ("encoder.pt", "decoder_step.pt", "model.json", "features.npz")
FORMAT = "attnasr-torchscript-v1"


def export_torchscript(loaded: LoadedModel, out_dir: Path, force: bool = False) -> list[Path]:
    """Write the four files into `out_dir`; returns their paths.

    Raises:
        UserError: a model that cannot be exported (naming the part), earlier files without
            `force`, a tracer failure, or traced graphs that differ from the model.
    """
    problem = export_problem(loaded)
    if problem is not None:
        raise UserError(problem.replace("ONNX graph", "traced graph"))
    out_dir = ensure_writable_dir(Path(out_dir))
    final = [out_dir / name for name in FILES]
    refuse_overwrite(final, force)
    paths = [path.with_name("tmp." + path.name) for path in final]
    model = loaded.model.eval().cpu()
    attention = model.speller.attention
    if hasattr(attention, "loop_free"):
        attention.loop_free = True
    example = torch.zeros(1, 64, loaded.config.features.n_mels)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's warnings name Python ints it keeps
            enc, enc_lengths = model.encode(example, torch.tensor([64]))
            mem = model.speller.prepare(enc, enc_lengths)
            state = model.speller.initial_state(mem)
            key_names, state_names = sorted(mem.keys), sorted(state)
            encoder = torch.jit.trace(EncoderGraph(loaded, key_names, state_names), (example,))
            rest = tuple(
                [pair(mem.keys[k]) for k in key_names] + [pair(state[k]) for k in state_names]
            )
            prev = torch.tensor([EOS_ID, EOS_ID])
            step = torch.jit.trace(
                StepGraph(loaded, key_names, state_names), (prev, pair(enc), rest)
            )
            problem = _mismatch(loaded, encoder, step)
    except Exception as exc:  # the tracer's errors are long: one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{loaded.path}: TorchScript export failed ({first[:200]})") from exc
    finally:
        if hasattr(attention, "loop_free"):
            attention.loop_free = False
    if problem is not None:
        raise UserError(f"{loaded.path}: not exported: {problem}")
    with warnings.catch_warnings():  # deprecated in torch 2.x, and still what libtorch loads
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(encoder, str(paths[0]))
        torch.jit.save(step, str(paths[1]))
    write_meta(loaded, paths, key_names, state_names, FORMAT)
    for written, path in zip(paths, final, strict=True):
        os.replace(written, path)
    return final


def _mismatch(
    loaded: LoadedModel, encoder: torch.jit.ScriptModule, step: torch.jit.ScriptModule
) -> str | None:
    """The traced graphs against the model on other lengths and row counts; None if equal."""
    model = loaded.model
    for frames, rows in ((37, 1), (101, 3)):
        feats = torch.randn(1, frames, loaded.config.features.n_mels, generator=seeded())
        traced = encoder(feats)
        enc, enc_lengths = model.encode(feats, torch.tensor([frames]))
        if traced[0].shape != enc.shape or not torch.allclose(traced[0], enc, atol=1e-4):
            return f"the traced encoder differs from the model on {frames} input frames"
        mem = model.speller.prepare(enc, enc_lengths).shared(rows)
        state = model.speller.initial_state(mem)  # rows per utterance, as the memory is shared
        prev = torch.full((rows,), EOS_ID)
        expected = model.speller.step(prev, state, mem, "eval")
        state_count = len(state)
        repeated = tuple(
            t.repeat_interleave(rows, 0) for t in traced[: len(mem.keys) + 1 + state_count]
        )
        logits = step(prev, repeated[0], repeated[1:])[0]
        if not torch.allclose(logits, expected.logits, atol=1e-4):
            return f"the traced decoder step differs from the model ({frames} frames, {rows} rows)"
    return None
