"""Scoring a test set: per-utterance alignments joined by id, totals, breakdowns, artefacts.

`score(refs, hyps)` normalises both sides with one named normaliser, aligns every utterance
id with jiwer (unit costs) and returns a `ScoreReport`; `ScoreReport.write(out_dir)` writes

- `report.json`: every number (fractions, not percent) and how it was obtained;
- `report.md`: the human-readable report (sclite-style tables);
- `ref.trn`, `hyp.trn`: sclite-readable normalised transcripts (`sclite -i rm`);
- `utterances.jsonl`: one row per utterance (id, speaker, ref, hyp, counts, wer, flags);
- `alignments.pra`: per-utterance alignments in sclite's `pra` layout.

WER is the micro average sum(S + D + I) / sum(N) over utterances; an utterance with an empty
reference has no WER of its own ("n/a") but its insertions count in the totals.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asrkit import __version__
from asrkit.io import UserError, atomic_write_json, atomic_write_text, write_jsonl
from asrkit.scoring.align import Alignment, align_words, char_errors
from asrkit.scoring.formats import write_trn
from asrkit.scoring.health import FLAGS, HealthFlags
from asrkit.scoring.normalize import NORMALIZER_VERSION, normalize
from asrkit.scoring.stats import BootstrapCI, bootstrap_wer

# Upper bounds (inclusive) of the reference-length buckets, in words.
LENGTH_BUCKETS = (0, 4, 9, 19, 39)
TOP_K = 20


@dataclass(frozen=True)
class UttScore:
    """One scored utterance; `ref`/`hyp` are the normalised texts that were aligned."""

    id: str
    speaker: str | None
    ref: str
    hyp: str
    alignment: Alignment
    char_errors: int
    ref_chars: int
    duration: float | None = None
    health: HealthFlags | None = None
    audio: str | None = None  # the recording, when known (model mode, or a manifest as ref)

    @property
    def errors(self) -> int:
        return self.alignment.errors

    @property
    def ref_words(self) -> int:
        return self.alignment.ref_len

    @property
    def wer(self) -> float | None:
        """Per-utterance WER, None ("n/a") for an empty reference."""
        return self.errors / self.ref_words if self.ref_words else None

    def to_json(self) -> dict[str, Any]:
        a = self.alignment
        row: dict[str, Any] = {"id": self.id, "speaker": self.speaker, "ref": self.ref}
        row.update(hyp=self.hyp, errors=self.errors, ref_words=self.ref_words, wer=self.wer)
        row.update(correct=a.correct, substitutions=a.substitutions, deletions=a.deletions)
        row.update(insertions=a.insertions, char_errors=self.char_errors)
        row.update(ref_chars=self.ref_chars, duration=self.duration, audio=self.audio)
        row["health"] = None if self.health is None else self.health.to_dict()
        row["flags"] = [] if self.health is None else self.health.names()
        return row


@dataclass(frozen=True)
class Counts:
    """Summed counts over a set of utterances."""

    sentences: int
    sentence_errors: int
    correct: int
    substitutions: int
    deletions: int
    insertions: int
    ref_words: int
    char_errors: int
    ref_chars: int

    @classmethod
    def of(cls, utts: Sequence[UttScore]) -> Counts:
        return cls(
            sentences=len(utts),
            sentence_errors=sum(u.errors > 0 for u in utts),
            correct=sum(u.alignment.correct for u in utts),
            substitutions=sum(u.alignment.substitutions for u in utts),
            deletions=sum(u.alignment.deletions for u in utts),
            insertions=sum(u.alignment.insertions for u in utts),
            ref_words=sum(u.ref_words for u in utts),
            char_errors=sum(u.char_errors for u in utts),
            ref_chars=sum(u.ref_chars for u in utts),
        )

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def rate(self, count: int) -> float | None:
        return count / self.ref_words if self.ref_words else None

    @property
    def wer(self) -> float | None:
        return self.rate(self.errors)

    @property
    def cer(self) -> float | None:
        return self.char_errors / self.ref_chars if self.ref_chars else None

    @property
    def ser(self) -> float:
        return self.sentence_errors / self.sentences if self.sentences else 0.0

    def row(self) -> dict[str, Any]:
        """sclite `sum` row as fractions: Corr Sub Del Ins Err S.Err, plus counts."""
        return {
            "sentences": self.sentences,
            "words": self.ref_words,
            "corr": self.rate(self.correct),
            "sub": self.rate(self.substitutions),
            "del": self.rate(self.deletions),
            "ins": self.rate(self.insertions),
            "wer": self.wer,
            "ser": self.ser,
            "errors": self.errors,
        }


@dataclass
class ScoreReport:
    """The scores of one system on one test set, with everything needed to write the report."""

    utterances: list[UttScore]
    normalizer: str
    bootstrap: BootstrapCI
    speakers_from: str  # "file", "utterance id prefix" or "unknown"
    num_words_raw: int  # reference words before normalisation
    rtf: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # mode, model, decode options, timing

    @property
    def counts(self) -> Counts:
        return Counts.of(self.utterances)

    def per_speaker(self) -> list[dict[str, Any]]:
        """sclite `sum` rows per speaker, worst WER first."""
        groups: dict[str, list[UttScore]] = {}
        for utt in self.utterances:
            groups.setdefault(utt.speaker or "-", []).append(utt)
        rows = [{"speaker": spk, **Counts.of(utts).row()} for spk, utts in groups.items()]
        return sorted(rows, key=lambda r: (-(r["wer"] or 0.0), r["speaker"]))

    def speaker_spread(self) -> dict[str, float]:
        """Mean, standard deviation and median of the per-speaker WERs (sclite `sum` footer)."""
        wers = [r["wer"] for r in self.per_speaker() if r["wer"] is not None]
        if not wers:
            return {}
        sd = statistics.stdev(wers) if len(wers) > 1 else 0.0
        return {"mean": statistics.fmean(wers), "sd": sd, "median": statistics.median(wers)}

    def by_length(self) -> list[dict[str, Any]]:
        """WER per reference-length bucket (in words)."""
        rows = []
        lower = 0
        for upper in (*LENGTH_BUCKETS, None):
            utts = [
                u
                for u in self.utterances
                if lower <= u.ref_words and (upper is None or u.ref_words <= upper)
            ]
            label = (
                f"{lower}+"
                if upper is None
                else f"{lower}-{upper}"
                if upper > lower
                else f"{lower}"
            )
            if utts:
                rows.append({"length": label, **Counts.of(utts).row()})
            lower = (upper or 0) + 1
        return rows

    def error_counts(self) -> tuple[Counter[tuple[str, str]], Counter[str], Counter[str]]:
        """Word-level (not chunk-level) confusion pairs, insertions and deletions."""
        pairs: Counter[tuple[str, str]] = Counter()
        ins: Counter[str] = Counter()
        dels: Counter[str] = Counter()
        for utt in self.utterances:
            for op in utt.alignment.ops:
                if op.kind == "S":
                    pairs[(op.ref or "", op.hyp or "")] += 1
                elif op.kind == "I":
                    ins[op.hyp or ""] += 1
                elif op.kind == "D":
                    dels[op.ref or ""] += 1
        return pairs, ins, dels

    def worst(self, k: int) -> list[UttScore]:
        """The k utterances with most errors (ties: higher WER, then id)."""
        ranked = sorted(self.utterances, key=lambda u: (-u.errors, -(u.wer or 0.0), u.id))
        return [u for u in ranked[:k] if u.errors > 0]

    def health_counts(self) -> dict[str, int] | None:
        flagged = [u.health for u in self.utterances if u.health is not None]
        if not flagged:
            return None
        return {name: sum(getattr(h, name) for h in flagged) for name in FLAGS}

    def summary(self) -> dict[str, Any]:
        """Everything in `report.json`."""
        c = self.counts
        pairs, ins, dels = self.error_counts()
        return {
            "wer": c.wer,
            "cer": c.cer,
            "ser": c.ser,
            "wer_ci95": [self.bootstrap.low, self.bootstrap.high],
            "num_utterances": c.sentences,
            "num_words": c.ref_words,
            "num_words_raw": self.num_words_raw,
            "num_chars": c.ref_chars,
            "correct": c.correct,
            "substitutions": c.substitutions,
            "deletions": c.deletions,
            "insertions": c.insertions,
            "errors": c.errors,
            "sentence_errors": c.sentence_errors,
            "char_errors": c.char_errors,
            "empty_references": sum(u.ref_words == 0 for u in self.utterances),
            "empty_hypotheses": sum(not u.hyp for u in self.utterances),
            "rtf": self.rtf,
            "normalizer": self.normalizer,
            "normalizer_version": NORMALIZER_VERSION,
            "align_costs": "levenshtein (jiwer 4, unit costs)",
            "cer_unit": "characters of the normalised text, spaces included",
            "bootstrap": self.bootstrap.to_dict(),
            "speakers_from": self.speakers_from,
            "per_speaker": self.per_speaker(),
            "speaker_spread": self.speaker_spread(),
            "by_length": self.by_length(),
            "confusion_pairs": [
                {"ref": r, "hyp": h, "count": n} for (r, h), n in pairs.most_common(TOP_K)
            ],
            "insertions_top": [{"word": w, "count": n} for w, n in ins.most_common(TOP_K)],
            "deletions_top": [{"word": w, "count": n} for w, n in dels.most_common(TOP_K)],
            "health": self.health_counts(),
            "attnasr_version": __version__,
            **self.meta,
        }

    def write(self, out_dir: Path, worst: int = 10) -> dict[str, Path]:
        """Write the report files into `out_dir` (atomically, each); returns them by name."""
        from asrkit.scoring.render import render_markdown, render_pra

        out_dir = Path(out_dir)
        paths = {
            name: out_dir / name
            for name in ("report.json", "report.md", "ref.trn", "hyp.trn", "utterances.jsonl")
        }
        paths["alignments.pra"] = out_dir / "alignments.pra"
        speakers = {u.id: u.speaker for u in self.utterances if u.speaker is not None}
        write_trn(paths["ref.trn"], {u.id: u.ref for u in self.utterances}, speakers)
        write_trn(paths["hyp.trn"], {u.id: u.hyp for u in self.utterances}, speakers)
        write_jsonl(paths["utterances.jsonl"], (u.to_json() for u in self.utterances))
        atomic_write_text(paths["alignments.pra"], render_pra(self.utterances))
        atomic_write_text(paths["report.md"], render_markdown(self, worst=worst))
        atomic_write_json(paths["report.json"], self.summary())
        return paths


def speaker_of_id(utt_id: str) -> str | None:
    """sclite `-i rm` rule: the speaker is the id's prefix before the first `-` or `_`."""
    for index, char in enumerate(utt_id):
        if char in "-_" and index > 0:
            return utt_id[:index]
    return None


def _check_ids(refs: dict[str, str], hyps: dict[str, str]) -> None:
    if not refs:
        raise UserError("the reference is empty (no utterances to score)")
    only_ref = sorted(set(refs) - set(hyps))
    only_hyp = sorted(set(hyps) - set(refs))
    if only_ref or only_hyp:

        def names(ids: list[str]) -> str:
            shown = ", ".join(ids[:5])
            return f"{len(ids)} ({shown}{', ...' if len(ids) > 5 else ''})"

        parts = [f"only in ref: {names(only_ref)}" if only_ref else ""]
        parts.append(f"only in hyp: {names(only_hyp)}" if only_hyp else "")
        detail = "; ".join(p for p in parts if p)
        raise UserError(f"reference and hypothesis have different utterance ids: {detail}")


def score(
    refs: dict[str, str],
    hyps: dict[str, str],
    *,
    normalizer: str = "librispeech",
    speakers: dict[str, str] | None = None,
    durations: dict[str, float] | None = None,
    health: dict[str, HealthFlags] | None = None,
    audio: dict[str, str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    rtf: float | None = None,
    meta: dict[str, Any] | None = None,
) -> ScoreReport:
    """Score hypotheses against references, joined by utterance id.

    Args:
        refs: reference text per utterance id (raw; normalised here).
        hyps: hypothesis text per utterance id; must have exactly the ids of `refs`.
        normalizer: `librispeech`, `english` or `none`, applied to both sides.
        speakers: speaker per id; when absent, taken from the id prefix (sclite `-i rm`)
            if every id has one, else unknown (the bootstrap then resamples utterances).
        durations: seconds per id, copied to the per-utterance file.
        health: attention-health flags per id (model mode).
        audio: the recording's path per id, for the HTML report's player.
        bootstrap: number of bootstrap replications for the WER CI.
        seed: bootstrap seed.
        rtf: real-time factor of the decoding, None when not decoded here.
        meta: extra keys for `report.json` (mode, model, decode options).

    Raises:
        UserError: empty reference set, mismatched ids (named), or no reference words.
    """
    _check_ids(refs, hyps)
    speakers_from = "file"
    if not speakers:
        prefixes = {i: speaker_of_id(i) for i in refs}
        known = all(p is not None for p in prefixes.values())
        speakers = {i: p for i, p in prefixes.items() if p is not None} if known else {}
        speakers_from = "utterance id prefix" if known else "unknown"
    utts = []
    for utt_id in sorted(refs):
        ref = normalize(refs[utt_id], normalizer)
        hyp = normalize(hyps[utt_id], normalizer)
        errors, ref_chars = char_errors(ref, hyp)
        utts.append(
            UttScore(
                id=utt_id,
                speaker=speakers.get(utt_id),
                ref=ref,
                hyp=hyp,
                alignment=align_words(ref.split(), hyp.split()),
                char_errors=errors,
                ref_chars=ref_chars,
                duration=(durations or {}).get(utt_id),
                health=(health or {}).get(utt_id),
                audio=(audio or {}).get(utt_id),
            )
        )
    if not any(u.ref_words for u in utts):
        raise UserError(f"the reference has no words after {normalizer!r} normalisation")
    groups = [u.speaker or "" for u in utts] if speakers else None
    ci = bootstrap_wer(
        [u.errors for u in utts], [u.ref_words for u in utts], groups, bootstrap, seed
    )
    raw_words = sum(len(text.split()) for text in refs.values())
    return ScoreReport(utts, normalizer, ci, speakers_from, raw_words, rtf, dict(meta or {}))
