"""The greedy search of a stream, one segment at a time, and its offline counterpart.

A segment is decoded over the encoder frames from its first frame on. A step is kept only when
more frames could not change it (`Attention.step_is_final`, the token, the length cap of the
frames so far); `<eos>` ends a segment before the input ends only when it is settled and at
least `endpoint_frames` frames follow the frame it attended: the next segment then starts
after that frame, so a long live stream goes on after each sentence. `segmented_greedy` runs
the same procedure on a whole recording; a stream's segments equal its (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from asrkit.decoding.constraints import constrain, length_limits, update_repeat_runs
from asrkit.decoding.greedy import greedy_search
from asrkit.decoding.options import DecodeOptions, Hypothesis
from asrkit.model.attention.base import AttendMemory, State
from asrkit.model.las import LAS
from asrkit.model.speller import ATT_PREFIX
from asrkit.tokenizer import EOS_ID, Tokenizer


@dataclass
class Segment:
    """One segment's committed search state; frames are counted from `start`."""

    start: int  # first encoder frame of the segment (absolute)
    state: State | None = None
    tokens: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    weights: list[Tensor] = field(default_factory=list)  # per step, over the segment's frames
    committed_at: list[float] = field(default_factory=list)  # audio seconds at each commit
    runs: Tensor | None = None
    ended: bool = False
    end_frame: int | None = None  # absolute frame the <eos> step attended (None: nowhere)


def from_frame(mem: AttendMemory, start: int) -> AttendMemory:
    """The memory of one item from frame `start` on (views, no copies)."""
    return AttendMemory(
        mem.values[:, start:],
        mem.mask[:, start:],
        mem.lengths - start,
        {k: v[:, start:] for k, v in mem.keys.items()},
    )


class SegmentSearch:
    """Greedy steps of one segment at a time over a growing memory.

    Args:
        model: the model (eval mode).
        opts: length limits, <eos> threshold, loop guard.
        endpoint_frames: frames that must follow a settled <eos> for the segment to end
            before the input does; 0 = never (one segment, ended when the input ends).
    """

    def __init__(self, model: LAS, opts: DecodeOptions, endpoint_frames: int) -> None:
        self.model, self.opts = model, opts
        # min_len grows with the frames: an <eos> allowed now might not be with more of them
        self.endpoint_frames = endpoint_frames if opts.min_len_ratio == 0 else 0
        self.frame_state = {ATT_PREFIX + k for k in model.speller.attention.frame_state}

    def new_segment(self, start: int) -> Segment:
        return Segment(start, runs=torch.zeros(1, max(self.opts.repeat_ngram, 0), dtype=torch.long))

    def step(self, segment: Segment, memory: AttendMemory, final: bool, seconds: float) -> bool:
        """Take one step of `segment`; keep it and return True when it is final."""
        mem = from_frame(memory, segment.start)
        if segment.state is None:
            segment.state = self.model.speller.initial_state(mem)
        state = self._extended(segment.state, mem.values.shape[1])
        prev = torch.tensor([segment.tokens[-1] if segment.tokens else EOS_ID])
        out = self.model.speller.step(prev, state, mem, "eval")
        min_len, max_len = length_limits(mem.lengths, self.opts)
        if not final and len(segment.tokens) >= int(max_len[0]):
            return False  # the cap of the frames so far; more frames may raise it
        log_probs = torch.log_softmax(out.logits.double(), dim=-1)
        history = torch.tensor([segment.tokens], dtype=torch.long).reshape(1, -1)
        assert segment.runs is not None
        allowed = constrain(log_probs, history, segment.runs, min_len, max_len, self.opts)
        token = int(allowed.argmax(dim=1))
        end_frame = self._attended(out.weights[0], segment.start) if token == EOS_ID else None
        if not final:
            attention = self.model.speller.attention
            settled = bool(attention.step_is_final(_att(state), _att(out.state), mem)[0])
            frames = int(memory.lengths[0])
            if not settled or (token == EOS_ID and not self._room_after(end_frame, frames)):
                return False
        segment.tokens.append(token)
        segment.log_probs.append(float(log_probs[0, token]))
        segment.weights.append(out.weights[0])
        segment.committed_at.append(seconds)
        segment.runs = update_repeat_runs(segment.runs, torch.tensor([segment.tokens]))
        segment.state = out.state
        if token == EOS_ID:
            segment.ended, segment.end_frame = True, end_frame
        return True

    def next_start(self, segment: Segment, frames: int) -> int | None:
        """Where the segment after an ended one starts, or None when none follows."""
        end = segment.end_frame
        return end + 1 if end is not None and self._room_after(end, frames) else None

    def _room_after(self, end_frame: int | None, frames: int) -> bool:
        """Whether at least `endpoint_frames` of the `frames` follow `end_frame`."""
        return (
            self.endpoint_frames > 0
            and end_frame is not None
            and frames - (end_frame + 1) >= self.endpoint_frames
        )

    @staticmethod
    def _attended(weights: Tensor, start: int) -> int | None:
        return start + int(weights.argmax()) if float(weights.sum()) > 0 else None

    def _extended(self, state: State, frames: int) -> State:
        """The state with its (B, T) frame entries padded with zeros to `frames`."""
        return {
            k: F.pad(v, (0, frames - v.shape[1]))
            if k in self.frame_state and v.shape[1] < frames
            else v
            for k, v in state.items()
        }


def segmented_greedy(
    model: LAS,
    encoded: tuple[Tensor, Tensor],
    opts: DecodeOptions,
    endpoint_frames: int,
    tokenizer: Tokenizer | None = None,
) -> list[tuple[int, Hypothesis]]:
    """What a stream decodes, on a whole recording: greedy search from frame 0; after each
    <eos> with at least `endpoint_frames` frames after the frame it attended, greedy search
    again from the frame after it.

    Args:
        model: the model.
        encoded: (1, T, D) encoder output of one utterance and its (1,) length.
        opts: as for the stream.
        endpoint_frames: as for `SegmentSearch` (0: plain greedy search).

    Returns:
        (first frame, hypothesis) per segment.
    """
    enc, lengths = encoded
    total, start = int(lengths[0]), 0
    endpoint = endpoint_frames if opts.min_len_ratio == 0 else 0
    segments = []
    dummy = enc.new_zeros(1, 1, 1)  # greedy_search reads only the batch size and device
    while start < total:
        piece = (enc[:, start:total], torch.tensor([total - start]))
        hyp = greedy_search(model, dummy, piece[1], opts, tokenizer, encoded=piece)[0]
        segments.append((start, hyp))
        eos_row = hyp.attention[-1]
        if endpoint <= 0 or float(eos_row.sum()) <= 0:
            break
        end = start + int(eos_row.argmax())
        if total - (end + 1) < endpoint:
            break
        start = end + 1
    return segments


def _att(state: State) -> State:
    """The attention's own entries of a speller state."""
    return {k[len(ATT_PREFIX) :]: v for k, v in state.items() if k.startswith(ATT_PREFIX)}
