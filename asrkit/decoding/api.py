"""Decode utterances or audio files end to end: audio -> pieces -> batched search -> transcripts.

Utterances are taken longest first in groups of `batch_size`; each group's audio is read, long
files are cut at quiet points (`segment.split_points`), and the pieces are decoded in
length-sorted batches, so padding stays small. Pieces of one file are stitched back in order
with their times offset. Unreadable, empty or silent audio gives an empty transcript and a
warning instead of stopping the run. Given several models (an ensemble sharing a tokenizer and
features), every piece is searched with their mean scores (`beam.ensemble_beam_search`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
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
from asrkit.data.speaker_cmn import shift_features, shifts_to, speaker_means
from asrkit.decoding.beam import beam_search, ensemble_beam_search
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
    from asrkit.lm.model import LanguageModel

SILENCE_PEAK = 1e-4  # peak amplitude below about -80 dBFS counts as silence
MIN_SECONDS = 0.1  # shorter audio has too few encoder frames to decode


@dataclass(frozen=True)
class _Piece:
    """One segment of one input, ready to decode."""

    item: int  # index of the utterance it belongs to
    start: float  # seconds from the start of the file
    end: float
    feats: tuple[Tensor, ...]  # (T, n_mels) per model (speaker CMN shifts them differently)


def decode_utterances(
    loaded: LoadedModel | Sequence[LoadedModel],
    utts: list[Utterance],
    opts: DecodeOptions,
    progress: bool = True,
    console: Console | None = None,
    lm: LanguageModel | None = None,
) -> tuple[list[Transcript], DecodeTiming]:
    """Decode manifest utterances (any length) with greedy or beam search.

    Args:
        loaded: the model, its config and tokenizer (`asrkit.checkpoint.load_model`), or
            several such models to decode as an ensemble (the first one's attention is kept).
        utts: utterances; only `id` and `audio` are needed (`duration` orders the batches).
        opts: search options; beam 1 without CTC weight runs greedy search (beam search with
            one beam for an ensemble, which is the same search).
        progress: show a progress bar (on `console`, stderr by default).
        console: where progress and warnings go.
        lm: the fused language model when the caller has loaded it already (a weight sweep
            loads it once); None loads `opts.lm` when `opts.lm_weight` > 0.

    Raises:
        UserError: ensemble members with different tokenizers or features, or an LM that
            does not fit (`fusion_lm`).

    Returns:
        One `Transcript` per utterance in input order, and the timing of the whole run
        (audio reading, features and search; not model loading).
    """
    started = time.perf_counter()
    models = ensemble_members(loaded)
    if lm is None:
        lm = fusion_lm(models[0], opts)
    order = sorted(range(len(utts)), key=lambda i: -utts[i].duration)
    results: list[Transcript | None] = [None] * len(utts)
    rate = _rate(models[0])
    shifts = _member_shifts(models, utts, progress, console)
    with _progress(progress, console, len(utts)) as advance:
        for first in range(0, len(order), opts.batch_size):
            group = order[first : first + opts.batch_size]
            pieces, waves = _read_group(models, utts, group, opts, results, shifts)
            decoded = _decode_pieces(models, pieces, opts, lm)
            for item in waves:
                mine = [(p, decoded[i]) for i, p in enumerate(pieces) if p.item == item]
                duration = waves[item].numel() / rate
                results[item] = _stitch(utts[item], mine, duration)
            for item in group:
                warning = results[item].warning if results[item] is not None else None
                if warning:
                    (console or Console(stderr=True)).print(
                        f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True
                    )
            advance(len(group))
    done = [t for t in results if t is not None]
    # Silent and too-short files were read too: their seconds count in the real-time factor.
    timing = DecodeTiming(sum(t.duration for t in done), time.perf_counter() - started)
    return done, timing


def transcribe_files(
    loaded: LoadedModel | Sequence[LoadedModel],
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


def load_members(paths: Path | Sequence[Path], device: str) -> list[LoadedModel]:
    """Load one model or an ensemble's members (`ensemble_members` checks they fit)."""
    from asrkit.checkpoint import load_model

    given = [paths] if isinstance(paths, Path) else list(paths)
    return ensemble_members([load_model(path, device) for path in given])


def ensemble_members(loaded: LoadedModel | Sequence[LoadedModel]) -> list[LoadedModel]:
    """The models to decode with, the first being the one whose attention and CTC word times
    are reported; several must share their tokenizer and features.

    Raises:
        UserError: no model, or a member whose tokenizer or features differ from the first's.
    """
    models = list(loaded) if isinstance(loaded, Sequence) else [loaded]
    if not models:
        raise UserError("no model to decode with")
    first = models[0]
    for other in models[1:]:
        if other.tokenizer.pieces != first.tokenizer.pieces:
            raise UserError(
                f"{other.path}: its tokenizer differs from {first.path}'s; "
                "an ensemble needs one tokenizer"
            )
        if other.config.features != first.config.features:
            raise UserError(
                f"{other.path}: its features config differs from {first.path}'s; "
                "an ensemble needs the same features"
            )
    return models


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


def _speaker_means(
    loaded: LoadedModel, utts: list[Utterance], progress: bool, console: Console | None
) -> dict[str, Tensor]:
    """Speaker CMN's first pass: each speaker's mean log-mel over all of its utterances' audio."""
    rate, fbank = _rate(loaded), Fbank(loaded.config.features)

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
        return speaker_means(plain(advance))


def _member_shifts(
    models: list[LoadedModel], utts: list[Utterance], progress: bool, console: Console | None
) -> list[dict[str, Tensor] | None]:
    """Each model's speaker CMN shifts onto its own CMVN mean (None without speaker CMN).
    Members share their features config (`ensemble_members`), so one pass over the audio
    gives the speaker means for all of them."""
    if not any(m.config.model.speaker_cmn for m in models):
        return [None] * len(models)
    means = _speaker_means(models[0], utts, progress, console)
    return [
        shifts_to(means, m.model.feat_mean.detach().cpu()) if m.config.model.speaker_cmn else None
        for m in models
    ]


def _read_group(
    models: list[LoadedModel],
    utts: list[Utterance],
    group: list[int],
    opts: DecodeOptions,
    results: list[Transcript | None],
    shifts: list[dict[str, Tensor] | None],
) -> tuple[list[_Piece], dict[int, Tensor]]:
    """Read audio, cut long files, compute features (for each model, shifted by the speaker's
    vector when its `shifts` are given, see `speaker_cmn`); empty results for unusable audio."""
    rate, fbank = _rate(models[0]), Fbank(models[0].config.features)
    pieces, waves = [], {}
    for item in group:
        utt = utts[item]
        try:
            wave = load_audio(utt.audio, rate)
        except UserError as exc:
            results[item] = _empty(utt, 0.0, str(exc), failed=True)
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
        per_model = [
            _shifted(feats, utt.speaker, m, s) for m, s in zip(models, shifts, strict=True)
        ]
        for j, (start, end) in enumerate(spans):
            piece = tuple(model_feats[j] for model_feats in per_model)
            pieces.append(_Piece(item, start / rate, end / rate, piece))
    return pieces, waves


def _shifted(
    feats: list[Tensor], speaker: str, loaded: LoadedModel, shifts: dict[str, Tensor] | None
) -> list[Tensor]:
    """The pieces of one file as `loaded` reads them: shifted by the speaker's vector towards
    its mean when it uses speaker CMN. Shifted whole, so a file without a speaker uses its
    own mean."""
    if shifts is None:
        return feats
    target = loaded.model.feat_mean.detach().cpu()  # where speaker shifts move each mean
    joined = shift_features(torch.cat(feats), speaker, shifts, target)
    return list(joined.split([f.shape[0] for f in feats]))


def _empty(utt: Utterance, duration: float, warning: str, failed: bool = False) -> Transcript:
    return Transcript(utt.id, utt.audio, "", [], duration, None, [], warning, failed)


def fusion_lm(loaded: LoadedModel, opts: DecodeOptions) -> LanguageModel | None:
    """The language model `opts.lm` names, on the model's device, when it is to be fused
    (`opts.lm_weight` > 0); None otherwise.

    Raises:
        UserError: a weight without an LM, or an LM over other units than the model's.
    """
    if opts.lm and opts.lm_weight <= 0:
        raise UserError(f"{opts.lm}: a language model needs a weight > 0 (--lm-weight, e.g. 0.4)")
    if opts.lm_weight <= 0:
        return None
    if not opts.lm:
        raise UserError(f"an LM weight ({opts.lm_weight}) was given but no LM (--lm LM_DIR)")
    from asrkit.lm.checkpoint import check_units, is_arpa, load_lm, resolve_lm

    path = resolve_lm(Path(opts.lm))
    if is_arpa(path):  # a word n-gram, scored through the units with lexicon look-ahead
        from asrkit.lm.ngram import ArpaLM
        from asrkit.lm.word_fusion import WordFusion

        return WordFusion(ArpaLM.load(path), loaded.tokenizer)
    device = str(next(loaded.model.parameters()).device)
    fused = load_lm(Path(opts.lm), device)
    check_units(fused, loaded.tokenizer, opts.lm, loaded.path)
    return fused.model


def _decode_pieces(
    models: list[LoadedModel],
    pieces: list[_Piece],
    opts: DecodeOptions,
    lm: LanguageModel | None = None,
) -> list[tuple[Hypothesis, list[WordTiming]]]:
    """Search every piece in length-sorted batches; word times relative to the piece (from
    the first model's CTC head or attention)."""
    loaded, model = models[0], models[0].model
    device = next(model.parameters()).device
    use_ctc = model.ctc is not None and opts.timestamps != "attention"
    shift = model.subsampling * loaded.config.features.hop_ms / 1000
    order = sorted(range(len(pieces)), key=lambda i: -pieces[i].feats[0].shape[0])
    out: list[tuple[Hypothesis, list[WordTiming]] | None] = [None] * len(pieces)
    for first in range(0, len(order), opts.batch_size):
        chosen = order[first : first + opts.batch_size]
        lengths = torch.tensor([pieces[i].feats[0].shape[0] for i in chosen], device=device)
        feats, encoded = [], []
        for m, member in enumerate(models):
            x = pad_sequence([pieces[i].feats[m] for i in chosen], batch_first=True).to(device)
            with eval_mode(member.model):
                encoded.append(member.model.encode(x, lengths))
            feats.append(x)
        hyps = _search(models, feats, lengths, opts, encoded, lm)
        ctc = _ctc_posteriors(loaded, *encoded[0]) if use_ctc else None
        for j, (i, hyp) in enumerate(zip(chosen, hyps, strict=True)):
            words = None
            if ctc is not None:
                words = ctc_word_times(hyp, loaded.tokenizer, ctc[j], shift)
            if words is None:
                words = attention_word_times(hyp, loaded.tokenizer, shift)
            out[i] = (hyp, words)
    return [o for o in out if o is not None]


def _search(
    models: list[LoadedModel],
    feats: list[Tensor],
    lengths: Tensor,
    opts: DecodeOptions,
    encoded: list[tuple[Tensor, Tensor]],
    lm: LanguageModel | None = None,
) -> list[Hypothesis]:
    """Greedy search for one model at beam 1 without CTC or LM, else (ensemble) beam search
    (at beam 1 with an LM: greedy search over the fused scores)."""
    tokenizer = models[0].tokenizer
    if len(models) > 1:
        las = [m.model for m in models]
        return ensemble_beam_search(las, feats, lengths, opts, tokenizer, encoded, lm)
    model = models[0].model
    joint = model.ctc is not None and opts.ctc_weight > 0
    if opts.beam > 1 or joint or lm is not None:
        return beam_search(model, feats[0], lengths, opts, tokenizer, encoded[0], lm)
    return greedy_search(model, feats[0], lengths, opts, tokenizer, encoded[0])


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
