"""TorchScript graphs behind the session interface `OnnxRecognizer` runs (`run(None, feed)`).

`attnasr export --format torchscript` writes `encoder.pt` and `decoder_step.pt`; these adapters
feed them the NumPy arrays of the ONNX loop in `model.json`'s name order and return NumPy
arrays, so one decoding loop serves both formats. Imports torch (the ONNX path does not).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch


class ScriptSession:
    """A traced graph called like an `onnxruntime.InferenceSession`.

    Args:
        path: `encoder.pt` or `decoder_step.pt`.
        inputs: the input names in the graph's argument order; for the decoder step, `prev`,
            `values`, then the rest (the keys and states), passed as one tuple.
        threads: intra-op threads (0 = torch's default).
    """

    def __init__(self, path: Path, inputs: list[str], threads: int = 0) -> None:
        with warnings.catch_warnings():  # torch.jit is deprecated in torch 2.x (still works)
            warnings.simplefilter("ignore", FutureWarning)
            self.module = torch.jit.load(str(path), map_location="cpu")
        self.inputs = inputs
        if threads:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def run(self, _outputs: None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        tensors = [torch.from_numpy(np.ascontiguousarray(feed[name])) for name in self.inputs]
        if len(tensors) == 1:  # the encoder: feats
            result = self.module(tensors[0])
        else:  # the decoder step: prev, values, (keys..., states...)
            result = self.module(tensors[0], tensors[1], tuple(tensors[2:]))
        return [t.numpy() for t in result]
