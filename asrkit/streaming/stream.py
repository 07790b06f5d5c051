"""Recognition while audio arrives: `Stream(model).accept(samples)` ... `.finish()`.

Features (`StreamingFbank`) and the streaming encoder (`incremental_encoder`: the
left-to-right LSTM listener, or the chunked self-attention encoder) turn each piece of audio
into the encoder frames that became final. The decoder then takes greedy steps
over the frames it has (`asrkit.streaming.search`) and keeps a step only when more frames
could not change it: the attention says so (`Attention.step_is_final`: a monotonic scan that
stopped on a frame it has, a local window inside the frames so far) and the output is below
the length cap of the frames so far. Otherwise it waits for more audio and takes the step
again. An <eos> ends a segment once enough audio follows it (`endpoint_seconds`), and the next
segment starts after it, so a live stream goes on past each sentence. The committed tokens
never change, and at `finish` the segments are the ones `segmented_greedy` finds on the whole
recording: for a single utterance, greedy search's hypothesis (tested for every streaming kind
and chunk size); beam search is not streamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from asrkit.checkpoint import LoadedModel
from asrkit.decoding.api import SILENCE_PEAK
from asrkit.decoding.constraints import build_hypothesis, normalized
from asrkit.decoding.options import DecodeOptions, Hypothesis, WordTiming
from asrkit.decoding.timing import attention_word_times, ctc_word_times, word_groups
from asrkit.io import UserError
from asrkit.model.attention.base import AttendMemory
from asrkit.streaming.chunked import incremental_encoder
from asrkit.streaming.features import StreamingFbank
from asrkit.streaming.search import Segment, SegmentSearch
from asrkit.tokenizer import EOS_ID

ENDPOINT_SECONDS = 1.0  # audio after a settled <eos> that ends a segment before the input does

STREAMING_KINDS = ("monotonic", "mocha", "local-m")  # attentions that can commit early
KINDS_TEXT = "monotonic, mocha or local-m"


def streaming_problem(loaded: LoadedModel) -> str | None:
    """Why this model cannot stream, in one line naming it; None when it can."""
    cfg, name = loaded.config, loaded.path
    need = (
        "streaming needs a model trained with listener.streaming: true (left-to-right LSTMs or"
        f" chunked self-attention) and {KINDS_TEXT} attention"
    )
    if cfg.decoder.kind != "lstm":
        return f"{name}: a Transformer decoder; {need} and the LSTM speller"
    if not cfg.listener.streaming:
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
    """The final transcript, with the time each word was emitted.

    Attributes:
        segments: (first encoder frame, hypothesis) per segment, as `segmented_greedy` finds
            them (one for an utterance; a long live stream has several).
        text: the transcript (the segments' texts joined).
        words: word times in the recording (CTC alignment when the model has a CTC head).
        emitted: per word, the audio seconds received when its last unit was committed.
        duration: seconds of audio received.
    """

    segments: list[tuple[int, Hypothesis]]
    text: str
    words: list[WordTiming]
    emitted: list[float]
    duration: float

    @property
    def hypothesis(self) -> Hypothesis:
        """The first segment's hypothesis (the whole one for a single utterance)."""
        return self.segments[0][1]


class Stream:
    """Streaming greedy recognition with one model.

    Args:
        model: a loaded streaming model (see `streaming_problem`), or its experiment folder
            or checkpoint path.
        opts: decoding options (length limits, <eos> threshold, loop guard); the model's
            `decode` config by default. Beam and CTC weight are not used.
        endpoint_seconds: audio that must follow a settled <eos> for its segment to end
            before the input does (the next one starts after it); 0 = one segment.

    Raises:
        UserError: a model that cannot stream, naming why.

    Example:
        >>> stream = asrkit.Stream("exp/stream")  # doctest: +SKIP
        >>> for piece in pieces_of_audio:  # doctest: +SKIP
        ...     for partial in stream.accept(piece):
        ...         print(partial.text)
        >>> print(stream.finish().text)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: LoadedModel | str | Path,
        opts: DecodeOptions | None = None,
        endpoint_seconds: float = ENDPOINT_SECONDS,
    ) -> None:
        if not isinstance(model, LoadedModel):
            from asrkit.checkpoint import load_model

            model = load_model(Path(model), "cpu")
        problem = streaming_problem(model)
        if problem is not None:
            raise UserError(problem)
        self.loaded, self.las = model, model.model.eval()
        self.opts = opts or model.decode_options()
        self.rate = model.config.features.sample_rate
        self.frame_shift = self.las.subsampling * model.config.features.hop_ms / 1000
        self.fbank = StreamingFbank(model.config.features)
        self.listener = incremental_encoder(self.las.listener)
        endpoint = round(endpoint_seconds / self.frame_shift) if endpoint_seconds > 0 else 0
        self.search = SegmentSearch(self.las, self.opts, endpoint)
        self.segments = [self.search.new_segment(0)]
        self.frames = torch.zeros(1, 0, self.listener.output_dim)  # a view of `values`
        self.values = _Growing()
        self.keys: dict[str, _Growing] = {}  # the attention's projections of the frames
        self.mem: AttendMemory | None = None
        self.received = 0
        self.heard = False  # a sample above silence has arrived: decoding starts then
        self.shown = ""  # the text of the last partial
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
        """End of input: the remaining frames and steps; the final transcript."""
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
        self.frames = self.values.append(new.unsqueeze(0))
        lengths = torch.tensor([self.frames.shape[1]])
        added = self.las.speller.prepare(new.unsqueeze(0), torch.tensor([new.shape[0]]))
        if not all(k.shape[1] == new.shape[0] for k in added.keys.values()):
            self.mem = self.las.speller.prepare(self.frames, lengths)  # keys not per frame
            return
        keys = {k: self.keys.setdefault(k, _Growing()).append(v) for k, v in added.keys.items()}
        mask = torch.ones(1, self.frames.shape[1], dtype=torch.bool)
        self.mem = AttendMemory(self.frames, mask, lengths, keys)

    def _decode(self, final: bool) -> list[Partial]:
        """Commit every step that is final now; start the next segment after an endpoint."""
        if self.mem is None or not self.heard:
            return []  # silence alone is not decoded (as `transcribe` skips silent files)
        before = sum(len(s.tokens) for s in self.segments)
        while True:
            segment = self.segments[-1]
            while not segment.ended and self.search.step(segment, self.mem, final, self.seconds):
                pass
            start = self.search.next_start(segment, self.frames.shape[1]) if segment.ended else None
            if start is None:
                break
            self.segments.append(self.search.new_segment(start))
        partial = self._partial()
        if sum(len(s.tokens) for s in self.segments) == before or partial.text == self.shown:
            return []  # nothing new to show (a unit that decodes to nothing, e.g. a space)
        self.shown = partial.text
        return [partial]

    def _partial(self) -> Partial:
        texts = [self.loaded.tokenizer.decode(_units(s)) for s in self.segments]
        text = " ".join(t for t in texts if t)
        words = text.split()
        last = self.segments[-1]
        complete = last.ended or not _units(last) or texts[-1].endswith(" ")
        return Partial(text, words if complete else words[:-1], self.seconds)

    def _result(self) -> StreamResult:
        frames = self.frames.shape[1]
        segments, words, emitted = [], [], []
        for segment in self.segments:
            if not segment.weights:
                continue
            hyp = self._hypothesis(segment, frames)
            segments.append((segment.start, hyp))
            words += self._word_times(hyp, segment.start, frames)
            groups = word_groups(hyp.tokens, self.loaded.tokenizer)
            emitted += [segment.committed_at[group[-1]] for group in groups]
        if not segments:
            empty = build_hypothesis([], [], torch.zeros(1, frames), frames, 0.0, None)
            return StreamResult([(0, empty)], "", [], [], self.seconds)
        text = " ".join(hyp.text for _, hyp in segments if hyp.text)
        return StreamResult(segments, text, words, emitted, self.seconds)

    def _hypothesis(self, segment: Segment, frames: int) -> Hypothesis:
        """The segment as greedy search returns it: weights over its own frames."""
        length = frames - segment.start
        tokens = _units(segment)
        weights = torch.stack([F.pad(w, (0, length - w.shape[0])) for w in segment.weights])
        score = normalized(sum(segment.log_probs), len(tokens), self.opts.length_penalty)
        lps = segment.log_probs[: len(tokens)]
        return build_hypothesis(tokens, lps, weights, length, score, self.loaded.tokenizer)

    def _word_times(self, hyp: Hypothesis, start: int, frames: int) -> list[WordTiming]:
        tokenizer, offset = self.loaded.tokenizer, start * self.frame_shift
        words = None
        if self.las.ctc is not None and self.opts.timestamps != "attention":
            ctc = self.las.ctc_log_probs(self.frames[:, start:frames])
            if ctc is not None:
                words = ctc_word_times(hyp, tokenizer, ctc[0], self.frame_shift, offset)
        if words is None:
            words = attention_word_times(hyp, tokenizer, self.frame_shift, offset)
        return words


def _units(segment: Segment) -> list[int]:
    """The segment's committed units without its <eos>."""
    return [t for t in segment.tokens if t != EOS_ID]


class _Growing:
    """A (1, T, ...) tensor growing along time: appends copy only the new frames (the buffer
    doubles when full), so a long stream costs linear time."""

    def __init__(self) -> None:
        self.buffer: Tensor | None = None
        self.length = 0

    def append(self, x: Tensor) -> Tensor:
        """Append x (1, n, ...); returns the whole (1, T, ...) so far (a view)."""
        count = x.shape[1]
        if self.buffer is None or self.length + count > self.buffer.shape[1]:
            capacity = max(64, self.length + count, 2 * self.length)
            grown = x.new_zeros(1, capacity, *x.shape[2:])
            if self.buffer is not None:
                grown[:, : self.length] = self.buffer[:, : self.length]
            self.buffer = grown
        self.buffer[:, self.length : self.length + count] = x
        self.length += count
        return self.buffer[:, : self.length]
