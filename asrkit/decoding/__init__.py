"""Decoding: greedy and beam search (optionally joint with CTC, of one model or an ensemble),
long-audio segmentation, word times, and the writers of transcripts (txt, json, srt, vtt, ctm).

Example:
    >>> from asrkit.checkpoint import load_model
    >>> loaded = load_model("exp/las_char")  # doctest: +SKIP
    >>> opts = DecodeOptions(beam=8)
    >>> transcripts, timing = transcribe_files(loaded, ["a.flac"], opts)  # doctest: +SKIP
"""

from __future__ import annotations

from asrkit.decoding.api import decode_utterances, transcribe_files
from asrkit.decoding.beam import beam_search, ensemble_beam_search
from asrkit.decoding.greedy import greedy_search
from asrkit.decoding.options import (
    DecodeOptions,
    DecodeTiming,
    Hypothesis,
    Segment,
    Transcript,
    WordTiming,
)

__all__ = [
    "DecodeOptions",
    "DecodeTiming",
    "Hypothesis",
    "Segment",
    "Transcript",
    "WordTiming",
    "beam_search",
    "decode_utterances",
    "ensemble_beam_search",
    "greedy_search",
    "transcribe_files",
]
