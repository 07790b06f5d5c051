"""Decoding an exported model with ONNX Runtime and NumPy alone (no torch import).

`attnasr export EXP --format onnx --out DIR` writes `DIR/encoder.onnx`, `DIR/decoder_step.onnx`
and `DIR/model.json` (units, feature and decoding settings, the state's names) with
`DIR/features.npz` (the STFT window and mel filterbank). `OnnxRecognizer(DIR)` computes the
same log-mel features as `asrkit.features.Fbank` in NumPy, runs the encoder once and the
decoder step in a greedy loop, or over K rows in beam search (`onnx_search`), with the same
rules as `asrkit.decoding` (<eos> threshold, length limits, loop guard, length penalty), so its
transcripts equal the PyTorch model's greedy search and beam search with or without joint CTC
(tested). Only numpy, onnxruntime and soundfile are imported (and asrkit.export.onnx_search,
which imports numpy).

    >>> recognizer = OnnxRecognizer(Path("exported"))  # doctest: +SKIP
    >>> recognizer.transcribe_file(Path("talk.flac"))  # doctest: +SKIP
    'HELLO WORLD'
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf

from asrkit.export.onnx_search import (
    CTCScorer,
    JointCTC,
    SearchRules,
    allowed,
    beam_search,
    log_softmax,
)

LOG_FLOOR = 1e-6  # as asrkit.features: keeps log() finite on digital silence


class OnnxRecognizer:
    """Greedy or beam-search recognition with an exported model: ONNX graphs on ONNX Runtime,
    or the TorchScript graphs of `--format torchscript` (`torchscript_runtime`).

    Args:
        folder: the folder `attnasr export` wrote.
        threads: ONNX Runtime intra-op threads (0 = its default).
    """

    def __init__(self, folder: Path, threads: int = 0) -> None:
        folder = Path(folder)
        self.meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        arrays = np.load(folder / "features.npz")
        self.window, self.mel = arrays["window"], arrays["mel_filters"]  # (n_fft,), (F, n_mels)
        if self.meta["format"].startswith("attnasr-torchscript"):  # imports torch
            from asrkit.export.torchscript_runtime import ScriptSession

            names = self.meta["names"]
            inputs = ["prev", *names["memory"], *["state." + k for k in names["state"]]]
            self.encoder = ScriptSession(folder / "encoder.pt", ["feats"], threads)
            self.step = ScriptSession(folder / "decoder_step.pt", inputs, threads)
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            self.encoder = ort.InferenceSession(str(folder / "encoder.onnx"), options)
            self.step = ort.InferenceSession(str(folder / "decoder_step.onnx"), options)
        self.blank_id, self.eos_id = self.meta["units"]["blank_id"], self.meta["units"]["eos_id"]
        d = self.meta["decode"]
        self.vocab_size = len(self.meta["units"]["pieces"])
        self.rules = SearchRules(
            self.blank_id, self.eos_id, d["eos_threshold"], d["repeat_ngram"],
            d["repeat_copies"], d.get("length_penalty", 1.0),  # absent before beam search
        )  # fmt: skip

    def features(self, wave: np.ndarray) -> np.ndarray:
        """(N,) float samples -> (N // hop, n_mels) log-mel, as `Fbank` computes them."""
        f = self.meta["features"]
        n_fft, hop = f["n_fft"], f["hop"]
        frames = wave.shape[0] // hop
        if frames == 0:
            return np.zeros((0, self.mel.shape[1]), dtype=np.float32)
        padded = np.pad(wave.astype(np.float32), (n_fft // 2, n_fft // 2), mode="reflect")
        index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
        spectrum = np.fft.rfft(padded[index] * self.window, axis=1)  # (T, F)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        return np.log(np.maximum(power @ self.mel, LOG_FLOOR)).astype(np.float32)

    def transcribe_file(self, path: Path, beam: int = 1, ctc_weight: float | None = None) -> str:
        """A file's transcript (mixed to mono; it must have the model's rate), greedy or with
        a beam of `beam` (joint CTC at `ctc_weight`, as `search`)."""
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        if rate != self.meta["features"]["sample_rate"]:
            raise ValueError(
                f"{path}: {rate} Hz; the model reads {self.meta['features']['sample_rate']} Hz"
            )
        return self.transcribe(data.mean(axis=1), beam, ctc_weight)

    def transcribe(self, wave: np.ndarray, beam: int = 1, ctc_weight: float | None = None) -> str:
        """Transcript of mono samples at the model's rate, greedy or with a beam of `beam`
        (joint CTC at `ctc_weight`, as `search`)."""
        return self.decode_text(self.search(self.features(wave), beam, ctc_weight))

    def search(
        self, feats: np.ndarray, beam: int = 1, ctc_weight: float | None = None
    ) -> list[int]:
        """Token ids (without <eos>) over (T, n_mels) raw log-mel features: greedy search, or
        beam search over `beam` rows (`onnx_search.beam_search`) with joint CTC scoring at
        `ctc_weight` (None: the model's decode.ctc_weight; 0 without a CTC head)."""
        names = self.meta["names"]
        outputs = self.encoder.run(None, {"feats": feats[None].astype(np.float32)})
        encoded = dict(zip(names["encoder_outputs"], outputs, strict=True))
        memory = {name: encoded[name] for name in names["memory"]}
        state = {name: encoded["init." + name] for name in names["state"]}
        frames = memory["values"].shape[1]
        d = self.meta["decode"]
        max_len = max(1, math.floor(frames * d["max_len_ratio"]))
        min_len = min(math.ceil(frames * d["min_len_ratio"]), max_len)
        rows = {name: np.repeat(value, beam, axis=0) for name, value in memory.items()}

        def step(prev: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
            feed = {"prev": prev, **(rows if prev.shape[0] == beam else memory)}
            feed.update({"state." + k: v for k, v in state.items()})
            logits, _weights, *new_state = self.step.run(None, feed)
            return logits, dict(zip(names["state"], new_state, strict=True))

        if beam > 1:
            if "beam" not in d:  # its decoder step was exported for one row
                raise ValueError("this export predates beam search: export the model again")
            weight = d.get("ctc_weight", 0.0) if ctc_weight is None else ctc_weight
            joint = None
            if weight > 0 and "ctc" in encoded:
                pre_beam = d.get("pre_beam", 0)
                count = pre_beam if pre_beam > 0 else max(2, int(1.5 * beam))  # as DecodeOptions
                scorer = CTCScorer(encoded["ctc"][0], self.blank_id, self.eos_id)
                joint = JointCTC(scorer, weight, min(count, self.vocab_size))
            return beam_search(step, state, beam, min_len, max_len, self.rules, joint)
        tokens: list[int] = []
        prev = np.array([self.eos_id], dtype=np.int64)  # <eos> doubles as <sos>
        while True:
            logits, new_state = step(prev, state)
            row = allowed(log_softmax(logits[0]), tokens, min_len, max_len, self.rules)
            token = int(np.argmax(row))
            if token == self.eos_id:
                return tokens
            tokens.append(token)
            state, prev = new_state, np.array([token], dtype=np.int64)

    def decode_text(self, tokens: list[int]) -> str:
        """Ids to text, as `Tokenizer.decode` does."""
        pieces, specials = self.meta["units"]["pieces"], self.meta["units"]["specials"]
        text = "".join(pieces[i] for i in tokens if i >= specials)
        return text.replace(self.meta["units"]["space"], " ").strip()
