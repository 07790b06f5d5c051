"""Decoding an exported model with ONNX Runtime and NumPy alone (no torch import).

`attnasr export EXP --format onnx --out DIR` writes `DIR/encoder.onnx`, `DIR/decoder_step.onnx`
and `DIR/model.json` (units, feature and decoding settings, the state's names) with
`DIR/features.npz` (the STFT window and mel filterbank). `OnnxRecognizer(DIR)` computes the
same log-mel features as `asrkit.features.Fbank` in NumPy, runs the encoder once and the
decoder step in a greedy loop with the same rules as `asrkit.decoding.greedy_search`
(<eos> threshold, length limits, loop guard), so its transcripts equal the PyTorch model's
greedy search (tested). Only numpy, onnxruntime and soundfile are imported.

    >>> recognizer = OnnxRecognizer(Path("exported"))  # doctest: +SKIP
    >>> recognizer.transcribe_file(Path("talk.flac"))  # doctest: +SKIP
    'HELLO WORLD'
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

LOG_FLOOR = 1e-6  # as asrkit.features: keeps log() finite on digital silence


class OnnxRecognizer:
    """Greedy recognition with an exported model.

    Args:
        folder: the folder `attnasr export` wrote.
        threads: ONNX Runtime intra-op threads (0 = its default).
    """

    def __init__(self, folder: Path, threads: int = 0) -> None:
        folder = Path(folder)
        self.meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        arrays = np.load(folder / "features.npz")
        self.window, self.mel = arrays["window"], arrays["mel_filters"]  # (n_fft,), (F, n_mels)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.encoder = ort.InferenceSession(str(folder / "encoder.onnx"), options)
        self.step = ort.InferenceSession(str(folder / "decoder_step.onnx"), options)
        self.blank_id, self.eos_id = self.meta["units"]["blank_id"], self.meta["units"]["eos_id"]

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

    def transcribe_file(self, path: Path) -> str:
        """A file's greedy transcript (mixed to mono; it must have the model's rate)."""
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        if rate != self.meta["features"]["sample_rate"]:
            raise ValueError(
                f"{path}: {rate} Hz; the model reads {self.meta['features']['sample_rate']} Hz"
            )
        return self.transcribe(data.mean(axis=1))

    def transcribe(self, wave: np.ndarray) -> str:
        """Greedy transcript of mono samples at the model's rate."""
        return self.decode_text(self.greedy(self.features(wave)))

    def greedy(self, feats: np.ndarray) -> list[int]:
        """Token ids (without <eos>) of greedy search over (T, n_mels) raw log-mel features."""
        names = self.meta["names"]
        outputs = self.encoder.run(None, {"feats": feats[None].astype(np.float32)})
        encoded = dict(zip(names["encoder_outputs"], outputs, strict=True))
        memory = {name: encoded[name] for name in names["memory"]}
        state = {name: encoded["init." + name] for name in names["state"]}
        frames = memory["values"].shape[1]
        d = self.meta["decode"]
        max_len = max(1, math.floor(frames * d["max_len_ratio"]))
        min_len = min(math.ceil(frames * d["min_len_ratio"]), max_len)
        tokens: list[int] = []
        prev = self.eos_id  # <eos> doubles as <sos>
        while True:
            feed = {"prev": np.array([prev], dtype=np.int64), **memory}
            feed.update({"state." + k: v for k, v in state.items()})
            logits, _weights, *new_state = self.step.run(None, feed)
            token = self._choose(logits[0].astype(np.float64), tokens, min_len, max_len)
            if token == self.eos_id:
                return tokens
            tokens.append(token)
            state = dict(zip(names["state"], new_state, strict=True))
            prev = token

    def _choose(self, logits: np.ndarray, tokens: list[int], min_len: int, max_len: int) -> int:
        """`asrkit.decoding.constraints.constrain` for one row, then the argmax."""
        log_probs = logits - logits.max()
        log_probs = log_probs - np.log(np.exp(log_probs).sum())
        step = len(tokens)
        if step >= max_len:
            return self.eos_id
        allowed = log_probs.copy()
        allowed[self.blank_id] = -np.inf
        for token in self._blocked(tokens):
            allowed[token] = -np.inf
        best = allowed.max()
        threshold = self.meta["decode"]["eos_threshold"]
        if not (allowed[self.eos_id] >= best - threshold and step >= min_len):
            allowed[self.eos_id] = -np.inf
        return int(np.argmax(allowed))

    def _blocked(self, tokens: list[int]) -> list[int]:
        """Tokens that would complete the `repeat_copies`-th back-to-back copy of a cycle of
        up to `repeat_ngram` tokens (the loop guard of `constraints.repeat_blocked`)."""
        d = self.meta["decode"]
        copies, blocked, t = d["repeat_copies"], [], len(tokens)
        for n in range(1, d["repeat_ngram"] + 1):
            if copies * n - 1 > t:
                break
            need = (copies - 1) * n - 1
            run = 0
            while run < need and tokens[t - 1 - run] == tokens[t - 1 - run - n]:
                run += 1
            if run >= need:
                blocked.append(tokens[t - n])
        return blocked

    def decode_text(self, tokens: list[int]) -> str:
        """Ids to text, as `Tokenizer.decode` does."""
        pieces, specials = self.meta["units"]["pieces"], self.meta["units"]["specials"]
        text = "".join(pieces[i] for i in tokens if i >= specials)
        return text.replace(self.meta["units"]["space"], " ").strip()
