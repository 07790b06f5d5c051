"""Decoding options and the typed results every decoder returns.

`DecodeOptions` is the frozen, decoder-facing view of `DecodeConfig` plus the few choices that
only matter at decode time (timestamps source, CTC pre-beam). Results are dataclasses, never
tuples: `Hypothesis` (one search result), `WordTiming`, `Segment` (one piece of a long file)
and `Transcript` (one input file or utterance).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor

from asrkit.config import DecodeConfig
from asrkit.io import UserError

Timestamps = Literal["auto", "attention", "ctc"]


@dataclass(frozen=True)
class DecodeOptions:
    """How to search.

    Attributes:
        beam: beam width K; 1 runs greedy search.
        ctc_weight: weight of joint CTC prefix scoring in beam search (ignored without a CTC
            head); the attention score gets 1 - ctc_weight.
        length_penalty: a finished hypothesis is ranked by score / (tokens + 1)**length_penalty.
        eos_threshold: <eos> may end a hypothesis only if its log-prob is within this of the
            best token's log-prob at that step (stops premature endings).
        max_len_ratio: at most this many output tokens per encoder frame.
        min_len_ratio: at least this many output tokens per encoder frame before <eos>.
        repeat_ngram: loop guard: the longest cycle (in tokens) whose back-to-back repetition
            is limited; 0 disables it.
        repeat_copies: the back-to-back copy of a cycle that the loop guard blocks.
        batch_size: utterances decoded together.
        max_segment_seconds: longer audio is cut at quiet points into segments.
        timestamps: word times from "attention", "ctc" forced alignment, or "auto" (CTC when
            the model has a CTC head).
        pre_beam: candidates per hypothesis rescored by CTC (0 = 1.5 x beam, as in ESPnet).
        ctc_window: CTC prefix scoring only within this many encoder frames of the attention
            peaks of the step and of the previous label (O(window) per step instead of O(T));
            0 scores every frame (exact).
        att_window: global attention kinds only: each step reads at most this many encoder
            frames past the previous step's attention peak (`AttentionWindow`); 0 = all.
        att_window_back: with att_window, frames before the previous peak still read.
        lm: the language model fused in the search (LM_DIR or .pt; "" = none); the caller
            loads it (`asrkit.lm.load_lm`) and passes it to the search.
        lm_weight: shallow fusion: each extension scores + lm_weight * its LM log-prob.
        length_bonus: added for every output unit but <eos> (counters fusion's preference
            for short hypotheses).
        nbest: beam search keeps the N best hypotheses with their separate scores
            (`Hypothesis.alternatives`); at most the beam.
    """

    beam: int = 1
    ctc_weight: float = 0.0
    length_penalty: float = 1.0
    eos_threshold: float = 1.5
    max_len_ratio: float = 2.0
    min_len_ratio: float = 0.0
    repeat_ngram: int = 40
    repeat_copies: int = 4
    batch_size: int = 16
    max_segment_seconds: float = 20.0
    timestamps: Timestamps = "auto"
    pre_beam: int = 0
    ctc_window: int = 0
    att_window: int = 0
    att_window_back: int = 4
    lm: str = ""
    lm_weight: float = 0.0
    length_bonus: float = 0.0
    nbest: int = 1

    def __post_init__(self) -> None:
        if self.beam < 1:
            raise UserError(f"beam must be at least 1, got {self.beam}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise UserError(f"ctc weight must be in [0, 1], got {self.ctc_weight}")
        if self.length_penalty < 0.0:
            raise UserError(f"length penalty must be >= 0, got {self.length_penalty}")
        if self.batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_len_ratio <= 0.0:
            raise UserError(f"max_len_ratio must be positive, got {self.max_len_ratio}")
        if self.max_segment_seconds <= 1.0:
            raise UserError(f"max segment must exceed 1 s, got {self.max_segment_seconds}")
        if self.ctc_window < 0:
            raise UserError(f"ctc window must be >= 0 frames, got {self.ctc_window}")
        if self.att_window < 0 or self.att_window_back < 0:
            raise UserError(
                f"attention window must be >= 0 frames, got {self.att_window} ahead and "
                f"{self.att_window_back} back"
            )
        if not 1 <= self.nbest <= self.beam:
            raise UserError(f"nbest must be between 1 and the beam ({self.beam}), got {self.nbest}")
        if self.lm_weight < 0.0:
            raise UserError(f"lm weight must be >= 0, got {self.lm_weight}")
        if self.timestamps not in ("auto", "attention", "ctc"):
            raise UserError(f"unknown timestamps {self.timestamps!r} (auto, attention, ctc)")

    @classmethod
    def from_config(cls, cfg: DecodeConfig, **overrides: object) -> DecodeOptions:
        """Options from the experiment's `decode` section, with keyword overrides (CLI)."""
        values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def candidates(self) -> int:
        """Candidates per hypothesis that CTC prefix scoring rescores."""
        return self.pre_beam if self.pre_beam > 0 else max(2, int(1.5 * self.beam))


@dataclass(frozen=True)
class Alternative:
    """One hypothesis of an N-best list with its separate scores, each summed over its units
    and the final <eos>. The search ranked it by

        score = (1 - c) * attention + c * ctc + w * lm + bonus * units     (with joint CTC)
        score = attention + w * lm + bonus * units                         (without)

    divided by (units + 1) ** length_penalty, which `asrkit.decoding.nbest.rescore` recomputes
    with other weights (or another LM's `lm`).
    """

    tokens: list[int]
    text: str
    rank: float  # the search's length-normalised score
    attention: float
    ctc: float  # 0 without joint CTC scoring
    lm: float  # 0 without fusion


@dataclass(frozen=True)
class Hypothesis:
    """One search result.

    Attributes:
        tokens: output ids without <sos>/<eos>.
        text: detokenised text ("" when the decoder was given no tokenizer).
        score: length-normalised search score (higher is better).
        attention: (len(tokens) + 1, T_valid') weights of every step incl. the <eos> step,
            cropped to the utterance's valid encoder frames.
        token_frames: encoder frame of each token (argmax of its attention row).
        token_log_probs: attention-decoder log-probability of each token (for confidence).
        alternatives: with `DecodeOptions.nbest` > 1, the N best finished hypotheses (this one
            first) with their separate scores; empty otherwise.
    """

    tokens: list[int]
    text: str
    score: float
    attention: Tensor
    token_frames: list[int]
    token_log_probs: list[float] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)


@dataclass(frozen=True)
class WordTiming:
    """A word with its time span in seconds and a confidence in [0, 1]."""

    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Segment:
    """One decoded piece of an input: times in seconds from the start of the file."""

    start: float
    end: float
    text: str
    words: list[WordTiming]
    hypothesis: Hypothesis | None


@dataclass(frozen=True)
class Transcript:
    """The result for one input file or utterance.

    Attributes:
        id: utterance id (the file stem for `transcribe`).
        audio: path of the audio.
        text: stitched text of all segments.
        words: every word with absolute times.
        duration: audio length in seconds.
        hypothesis: the search result when the input was decoded in one piece; None for
            empty, silent or unreadable audio and for long audio cut into several segments.
        segments: the decoded pieces (one for short audio, none for empty audio).
        warning: why the transcript is empty, if it is.
        failed: the audio could not be decoded at all (missing, unreadable, non-finite
            samples): there is no transcript, as opposed to silence transcribed as "".
    """

    id: str
    audio: str
    text: str
    words: list[WordTiming]
    duration: float
    hypothesis: Hypothesis | None
    segments: list[Segment] = field(default_factory=list)
    warning: str | None = None
    failed: bool = False


@dataclass(frozen=True)
class DecodeTiming:
    """Real-time factor of a decoding run (wall time includes audio loading and features)."""

    audio_seconds: float
    wall_seconds: float

    @property
    def rtf(self) -> float:
        """Processing time over audio time; lower is better, < 1 is faster than real time."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds > 0 else 0.0
