"""Recognition while audio arrives: `Stream(model).accept(samples)` ... `.finish()`.

Features (`StreamingFbank`) and the left-to-right listener (`IncrementalListener`) turn each
piece of audio into the encoder frames that became final. The decoder then takes greedy steps
over the frames it has, and keeps a step only when more frames could not change it: the
attention says so (`Attention.step_is_final`: a monotonic scan that stopped on a frame it has,
a local window inside the frames so far), the token is not <eos> (the end is decided when the
input ends) and the output is below the length cap of the frames so far. Otherwise it waits
for more audio and takes the step again. So the committed tokens never change, and at
`finish` the hypothesis is the one greedy search finds on the whole recording (tested for
every streaming kind and chunk size); beam search is not streamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from asrkit.checkpoint import LoadedModel
from asrkit.decoding.api import SILENCE_PEAK
from asrkit.decoding.constraints import (
    build_hypothesis,
    constrain,
    length_limits,
    normalized,
    update_repeat_runs,
)
from asrkit.decoding.options import DecodeOptions, Hypothesis, WordTiming
from asrkit.decoding.timing import attention_word_times, ctc_word_times
from asrkit.io import UserError
from asrkit.model.attention.base import AttendMemory, State
from asrkit.model.speller import ATT_PREFIX
from asrkit.streaming.encoder import IncrementalListener
from asrkit.streaming.features import StreamingFbank
from asrkit.tokenizer import EOS_ID

STREAMING_KINDS = ("monotonic", "mocha", "local-m")  # attentions that can commit early


def streaming_problem(loaded: LoadedModel) -> str | None:
    """Why this model cannot stream, in one line naming it; None when it can."""
    cfg, name = loaded.config, loaded.path
    need = (
        "streaming needs a model trained with listener.streaming: true (left-to-right LSTMs)"
        f" and {', '.join(STREAMING_KINDS)} attention"
    )
    if cfg.decoder.kind != "lstm":
        return f"{name}: a Transformer decoder; {need} and the LSTM speller"
    if cfg.listener.kind != "pblstm" or not cfg.listener.streaming:
        what = "bidirectional LSTM" if cfg.listener.kind == "pblstm" else cfg.listener.kind
        return f"{name}: its encoder ({what}) reads the whole utterance; {need}"
    if loaded.model.attention_kind not in STREAMING_KINDS:
        kind = loaded.model.attention_kind
        return f"{name}: {kind} attention reads every frame before it can emit; {need}"
    if cfg.model.utterance_cmn or cfg.model.speaker_cmn:
        return f"{name}: normalises by the utterance or speaker mean, known only at the end"
    return None


@dataclass(frozen=True)
class Partial:
    """What the stream has committed after a piece of audio (it never changes later).

    Attributes:
        text: every committed unit, decoded (the last word may still be growing).
        words: the words known to be complete (followed by a word boundary).
        seconds: audio received when it was emitted.
    """

    text: str
    words: list[str]
    seconds: float


@dataclass(frozen=True)
class StreamResult:
    """The final hypothesis, with the time each word was emitted.

    Attributes:
        hypothesis: as greedy search returns it (tokens, attention, score).
        text: the transcript.
        words: word times in the recording (CTC alignment when the model has a CTC head).
        emitted: per word, the audio seconds received when its last unit was committed.
        duration: seconds of audio received.
    """

    hypothesis: Hypothesis
    text: str
    words: list[WordTiming]
    emitted: list[float]
    duration: float


@dataclass
class _Search:
    """The greedy search's committed state."""

    state: State | None = None
    tokens: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    weights: list[Tensor] = field(default_factory=list)
    committed_at: list[float] = field(default_factory=list)
    runs: Tensor | None = None
    ended: bool = False


class Stream:
    """Streaming greedy recognition with one model.

    Args:
        model: a loaded streaming model (see `streaming_problem`).
        opts: decoding options (length limits, <eos> threshold, loop guard); the model's
            `decode` config by default. Beam and CTC weight are not used.

    Raises:
        UserError: a model that cannot stream, naming why.

    Example:
        >>> stream = Stream(asrkit.load_model("exp/stream"))  # doctest: +SKIP
        >>> for piece in pieces_of_audio:  # doctest: +SKIP
        ...     for partial in stream.accept(piece):
        ...         print(partial.text)
        >>> print(stream.finish().text)  # doctest: +SKIP
    """

    def __init__(self, model: LoadedModel, opts: DecodeOptions | None = None) -> None:
        problem = streaming_problem(model)
        if problem is not None:
            raise UserError(problem)
        self.loaded, self.las = model, model.model.eval()
        self.opts = opts or model.decode_options()
        self.rate = model.config.features.sample_rate
        self.fbank = StreamingFbank(model.config.features)
        self.listener = IncrementalListener(self.las.listener)
        self.frames = torch.zeros(1, 0, self.listener.output_dim)
        self.mem: AttendMemory | None = None
        self.received = 0
        self.heard = False  # a sample above silence has arrived: decoding starts then
        self.shown = ""  # the text of the last partial
        self.search = _Search(runs=torch.zeros(1, max(self.opts.repeat_ngram, 0), dtype=torch.long))
        self.finished = False

    @torch.no_grad()
    def accept(self, samples: Tensor) -> list[Partial]:
        """Mono samples (N,) at the model's rate -> partial hypotheses (empty when nothing new
        was committed)."""
        if self.finished:
            raise UserError("the stream has finished; start a new Stream")
        samples = torch.as_tensor(samples, dtype=torch.float32).reshape(-1)
        self.received += samples.numel()
        self.heard = self.heard or bool(samples.numel() and samples.abs().max() >= SILENCE_PEAK)
        self._add_frames(self.listener.feed(self._normalised(self.fbank.accept(samples))))
        return self._decode(final=False)

    @torch.no_grad()
    def finish(self) -> StreamResult:
        """End of input: the remaining frames and steps; the final hypothesis."""
        if self.finished:
            raise UserError("the stream has finished already")
        self.finished = True
        self._add_frames(self.listener.feed(self._normalised(self.fbank.finish())))
        self._add_frames(self.listener.finish())
        self._decode(final=True)
        return self._result()

    @property
    def seconds(self) -> float:
        return self.received / self.rate

    def _normalised(self, feats: Tensor) -> Tensor:
        lengths = torch.tensor([feats.shape[0]])
        return self.las.normalise(feats.unsqueeze(0), lengths)[0]

    def _add_frames(self, new: Tensor) -> None:
        """Append encoder frames (T_new, D) to the attention memory, projecting only them."""
        if new.shape[0] == 0:
            return
        self.frames = torch.cat([self.frames, new.unsqueeze(0)], dim=1)
        lengths = torch.tensor([self.frames.shape[1]])
        added = self.las.speller.prepare(new.unsqueeze(0), torch.tensor([new.shape[0]]))
        per_frame = all(k.shape[1] == new.shape[0] for k in added.keys.values())
        if self.mem is None or not per_frame:  # keys that are not one per frame: all again
            self.mem = self.las.speller.prepare(self.frames, lengths)
            return
        keys = {k: torch.cat([self.mem.keys[k], v], dim=1) for k, v in added.keys.items()}
        self.mem = AttendMemory(self.frames, torch.ones(1, lengths.item(), dtype=torch.bool),
                                lengths, keys)  # fmt: skip

    def _decode(self, final: bool) -> list[Partial]:
        search, before = self.search, len(self.search.tokens)
        if self.mem is None or search.ended or not self.heard:
            return []  # silence alone is not decoded (as `transcribe` skips silent files)
        if search.state is None:
            search.state = self.las.speller.initial_state(self.mem)
        while not search.ended and self._step(final):
            pass
        partial = self._partial()
        if len(search.tokens) == before or partial.text == self.shown:
            return []  # nothing new to show (a unit that decodes to nothing, e.g. a space)
        self.shown = partial.text
        return [partial]

    def _step(self, final: bool) -> bool:
        """Take one greedy step; keep it and return True when it is final."""
        search, mem = self.search, self.mem
        assert mem is not None and search.state is not None and search.runs is not None
        state = self._extended(search.state, mem.values.shape[1])
        prev = torch.tensor([search.tokens[-1] if search.tokens else EOS_ID])
        out = self.las.speller.step(prev, state, mem, "eval")
        min_len, max_len = length_limits(mem.lengths, self.opts)
        if not final and len(search.tokens) >= int(max_len[0]):
            return False  # the cap of the frames so far; more frames may raise it
        log_probs = torch.log_softmax(out.logits.double(), dim=-1)
        history = torch.tensor([search.tokens], dtype=torch.long).reshape(1, -1)
        allowed = constrain(log_probs, history, search.runs, min_len, max_len, self.opts)
        token = int(allowed.argmax(dim=1))
        if not final:
            attention = self.las.speller.attention
            settled = attention.step_is_final(_att(state), _att(out.state), mem)
            if token == EOS_ID or not bool(settled[0]):
                return False
        search.tokens.append(token)
        search.log_probs.append(float(log_probs[0, token]))
        search.weights.append(out.weights[0])
        search.committed_at.append(self.seconds)
        search.runs = update_repeat_runs(search.runs, torch.tensor([search.tokens]))
        search.state = out.state
        search.ended = token == EOS_ID
        return True

    def _extended(self, state: State, frames: int) -> State:
        """The state with its (B, T) frame entries padded with zeros to `frames`."""
        keys = {ATT_PREFIX + k for k in self.las.speller.attention.frame_state}
        return {
            k: F.pad(v, (0, frames - v.shape[1])) if k in keys and v.shape[1] < frames else v
            for k, v in state.items()
        }

    def _partial(self) -> Partial:
        tokens = [t for t in self.search.tokens if t != EOS_ID]
        text = self.loaded.tokenizer.decode(tokens)
        words = text.split()
        complete = words if self.search.ended or text.endswith(" ") else words[:-1]
        return Partial(text, complete, self.seconds)

    def _result(self) -> StreamResult:
        search, tokenizer = self.search, self.loaded.tokenizer
        frames = self.frames.shape[1]
        tokens = search.tokens[:-1] if search.ended else search.tokens
        if not search.weights:
            hyp = build_hypothesis([], [], torch.zeros(1, frames), frames, 0.0, tokenizer)
            return StreamResult(hyp, "", [], [], self.seconds)
        weights = torch.stack([F.pad(w, (0, frames - w.shape[0])) for w in search.weights])
        score = normalized(sum(search.log_probs), len(tokens), self.opts.length_penalty)
        lps = search.log_probs[: len(tokens)]
        hyp = build_hypothesis(tokens, lps, weights, frames, score, tokenizer)
        shift = self.las.subsampling * self.loaded.config.features.hop_ms / 1000
        words = self._word_times(hyp, shift)
        return StreamResult(hyp, hyp.text, words, self._emitted(tokens), self.seconds)

    def _word_times(self, hyp: Hypothesis, shift: float) -> list[WordTiming]:
        tokenizer = self.loaded.tokenizer
        words = None
        if self.las.ctc is not None and self.opts.timestamps != "attention":
            ctc = self.las.ctc_log_probs(self.frames)
            if ctc is not None:
                words = ctc_word_times(hyp, tokenizer, ctc[0], shift)
        return words if words is not None else attention_word_times(hyp, tokenizer, shift)

    def _emitted(self, tokens: list[int]) -> list[float]:
        """Per word, when its last unit was committed."""
        from asrkit.decoding.timing import word_groups

        groups = word_groups(tokens, self.loaded.tokenizer)
        return [self.search.committed_at[group[-1]] for group in groups]


def _att(state: State) -> State:
    """The attention's own entries of a speller state."""
    return {k[len(ATT_PREFIX) :]: v for k, v in state.items() if k.startswith(ATT_PREFIX)}
