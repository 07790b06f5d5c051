"""Decode utterances or audio files end to end: audio -> pieces -> batched search -> transcripts.

Utterances are taken longest first in groups of `batch_size`; each group's audio is read, long
files are cut at quiet points (`segment.split_points`), and the pieces are decoded in
length-sorted batches, so padding stays small. Pieces of one file are stitched back in order
with their times offset. Unreadable, empty or silent audio gives an empty transcript and a
warning instead of stopping the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import soundfile as sf
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from asrkit.data.manifest import Utterance
from asrkit.data.speaker_cmn import shift_features, speaker_shifts
from asrkit.decoding.beam import beam_search
from asrkit.decoding.constraints import eval_mode
from asrkit.decoding.greedy import greedy_search
from asrkit.decoding.options import (
    DecodeOptions,
    DecodeTiming,
    Hypothesis,
    Segment,
    Transcript,
    WordTiming,
)
from asrkit.decoding.segment import split_points
from asrkit.decoding.timing import attention_word_times, ctc_word_times
from asrkit.features import Fbank, load_audio
from asrkit.io import UserError

if TYPE_CHECKING:
    from asrkit.checkpoint import LoadedModel

SILENCE_PEAK = 1e-4  # peak amplitude below about -80 dBFS counts as silence
MIN_SECONDS = 0.1  # shorter audio has too few encoder frames to decode


@dataclass(frozen=True)
class _Piece:
    """One segment of one input, ready to decode."""

    item: int  # index of the utterance it belongs to
    start: float  # seconds from the start of the file
    end: float
    feats: Tensor  # (T, n_mels)


def decode_utterances(
    loaded: LoadedModel,
    utts: list[Utterance],
    opts: DecodeOptions,
    progress: bool = True,
    console: Console | None = None,
) -> tuple[list[Transcript], DecodeTiming]:
    """Decode manifest utterances (any length) with greedy or beam search.

    Args:
        loaded: the model, its config and tokenizer (`asrkit.checkpoint.load_model`).
        utts: utterances; only `id` and `audio` are needed (`duration` orders the batches).
        opts: search options; beam 1 without CTC weight runs greedy search.
        progress: show a progress bar (on `console`, stderr by default).
        console: where progress and warnings go.

    Returns:
        One `Transcript` per utterance in input order, and the timing of the whole run
        (audio reading, features and search; not model loading).
    """
    started = time.perf_counter()
    order = sorted(range(len(utts)), key=lambda i: -utts[i].duration)
    results: list[Transcript | None] = [None] * len(utts)
    audio_seconds = 0.0
    shifts = None
    if loaded.config.model.speaker_cmn:
        shifts = _speaker_shifts(loaded, utts, progress, console)
    with _progress(progress, console, len(utts)) as advance:
        for first in range(0, len(order), opts.batch_size):
            group = order[first : first + opts.batch_size]
            pieces, waves = _read_group(loaded, utts, group, opts, results, shifts)
            audio_seconds += sum(w.numel() for w in waves.values()) / _rate(loaded)
            decoded = _decode_pieces(loaded, pieces, opts)
            for item in waves:
                mine = [(p, decoded[i]) for i, p in enumerate(pieces) if p.item == item]
                duration = waves[item].numel() / _rate(loaded)
                results[item] = _stitch(utts[item], mine, duration)
            for item in group:
                warning = results[item].warning if results[item] is not None else None
                if warning:
                    (console or Console(stderr=True)).print(f"[yellow]warning:[/] {warning}")
            advance(len(group))
    timing = DecodeTiming(audio_seconds, time.perf_counter() - started)
    return [t for t in results if t is not None], timing


def transcribe_files(
    loaded: LoadedModel,
    paths: list[Path],
    opts: DecodeOptions,
    progress: bool = True,
    console: Console | None = None,
) -> tuple[list[Transcript], DecodeTiming]:
    """Decode audio files; transcript ids are the file stems (made unique with -2, -3...)."""
    utts, seen = [], {}
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        uid = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        try:
            info = sf.info(str(path))
            duration, rate = float(info.duration), int(info.samplerate)
        except (sf.LibsndfileError, RuntimeError, TypeError):
            duration, rate = 0.0, 0  # reported as unreadable when decoded
        utts.append(Utterance(uid, str(path), duration, rate, speaker="", text=""))
    return decode_utterances(loaded, utts, opts, progress=progress, console=console)


def _rate(loaded: LoadedModel) -> int:
    return loaded.config.features.sample_rate


@contextmanager
def _progress(show: bool, console: Console | None, total: int, what: str = "decoding") -> Iterator:
    if not show:
        yield lambda n: None
        return
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def _speaker_shifts(
    loaded: LoadedModel, utts: list[Utterance], progress: bool, console: Console | None
) -> dict[str, Tensor]:
    """Speaker CMN: each speaker's shift from all of its utterances' audio (a first pass)."""
    rate, fbank = _rate(loaded), Fbank(loaded.config.features)
    target = loaded.model.feat_mean.detach().cpu()

    def plain(advance: Callable[[int], None]) -> Iterator[tuple[str, Tensor]]:
        for utt in utts:
            advance(1)
            if not utt.speaker:
                continue
            try:  # unreadable audio is reported (and skipped) when it is decoded
                wave = load_audio(utt.audio, rate)
            except UserError:
                continue
            yield utt.speaker, fbank(wave)

    with _progress(progress, console, len(utts), "speaker means") as advance:
        return speaker_shifts(plain(advance), target)


def _read_group(
    loaded: LoadedModel,
    utts: list[Utterance],
    group: list[int],
    opts: DecodeOptions,
    results: list[Transcript | None],
    shifts: dict[str, Tensor] | None,
) -> tuple[list[_Piece], dict[int, Tensor]]:
    """Read audio, cut long files, compute features (shifted by the speaker's vector when
    `shifts` is given, see `speaker_cmn`); empty results for unusable audio."""
    rate, fbank = _rate(loaded), Fbank(loaded.config.features)
    target = loaded.model.feat_mean.detach().cpu()  # where speaker shifts move each mean
    pieces, waves = [], {}
    for item in group:
        utt = utts[item]
        try:
            wave = load_audio(utt.audio, rate)
        except UserError as exc:
            results[item] = _empty(utt, 0.0, str(exc))
            continue
        duration = wave.numel() / rate
        if duration < MIN_SECONDS:
            results[item] = _empty(utt, duration, f"{utt.audio}: audio is empty or too short")
            continue
        if float(wave.abs().max()) < SILENCE_PEAK:
            results[item] = _empty(utt, duration, f"{utt.audio}: audio is silent")
            continue
        waves[item] = wave
        spans = split_points(wave, rate, opts.max_segment_seconds)
        feats = [fbank(wave[start:end]) for start, end in spans]
        if shifts is not None:  # shifted whole, so a file without a speaker uses its own mean
            joined = shift_features(torch.cat(feats), utt.speaker, shifts, target)
            feats = list(joined.split([f.shape[0] for f in feats]))
        for (start, end), piece in zip(spans, feats, strict=True):
            pieces.append(_Piece(item, start / rate, end / rate, piece))
    return pieces, waves


def _empty(utt: Utterance, duration: float, warning: str) -> Transcript:
    return Transcript(utt.id, utt.audio, "", [], duration, None, [], warning)


def _decode_pieces(
    loaded: LoadedModel, pieces: list[_Piece], opts: DecodeOptions
) -> list[tuple[Hypothesis, list[WordTiming]]]:
    """Search every piece in length-sorted batches; word times relative to the piece."""
    model = loaded.model
    device = next(model.parameters()).device
    use_ctc = model.ctc is not None and opts.timestamps != "attention"
    joint = model.ctc is not None and opts.ctc_weight > 0
    search = beam_search if opts.beam > 1 or joint else greedy_search
    shift = model.subsampling * loaded.config.features.hop_ms / 1000
    order = sorted(range(len(pieces)), key=lambda i: -pieces[i].feats.shape[0])
    out: list[tuple[Hypothesis, list[WordTiming]] | None] = [None] * len(pieces)
    for first in range(0, len(order), opts.batch_size):
        chosen = order[first : first + opts.batch_size]
        feats = pad_sequence([pieces[i].feats for i in chosen], batch_first=True).to(device)
        lengths = torch.tensor([pieces[i].feats.shape[0] for i in chosen], device=device)
        with eval_mode(model):
            encoded = model.encode(feats, lengths)
        hyps = search(model, feats, lengths, opts, loaded.tokenizer, encoded)
        ctc = _ctc_posteriors(loaded, *encoded) if use_ctc else None
        for j, (i, hyp) in enumerate(zip(chosen, hyps, strict=True)):
            words = None
            if ctc is not None:
                words = ctc_word_times(hyp, loaded.tokenizer, ctc[j], shift)
            if words is None:
                words = attention_word_times(hyp, loaded.tokenizer, shift)
            out[i] = (hyp, words)
    return [o for o in out if o is not None]


def _ctc_posteriors(loaded: LoadedModel, enc: Tensor, enc_lengths: Tensor) -> list[Tensor]:
    """Per item (T_valid', V) CTC log-probabilities, on the CPU."""
    with eval_mode(loaded.model):
        log_probs = loaded.model.ctc_log_probs(enc)
    assert log_probs is not None  # only called for models with a CTC head
    return [lp[: int(n)].cpu() for lp, n in zip(log_probs, enc_lengths, strict=True)]


def _stitch(
    utt: Utterance,
    pieces: list[tuple[_Piece, tuple[Hypothesis, list[WordTiming]]]],
    duration: float,
) -> Transcript:
    """Join the pieces of one file in time order, offsetting word times."""
    segments = []
    for piece, (hyp, words) in sorted(pieces, key=lambda p: p[0].start):
        # Encoder frames round up, so the last word may reach a few ms past the piece.
        shifted = [
            WordTiming(
                w.word,
                round(min(w.start + piece.start, piece.end), 3),
                round(min(w.end + piece.start, piece.end), 3),
                w.confidence,
            )
            for w in words
        ]
        segments.append(Segment(piece.start, piece.end, hyp.text, shifted, hyp))
    text = " ".join(s.text for s in segments if s.text)
    words = [w for s in segments for w in s.words]
    single = segments[0].hypothesis if len(segments) == 1 else None
    return Transcript(utt.id, utt.audio, text, words, duration, single, segments)
