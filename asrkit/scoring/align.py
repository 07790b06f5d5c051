"""Word and character alignment of one reference/hypothesis pair (jiwer 4, unit costs).

jiwer returns alignment *chunks* (a run of adjacent substitutions is one chunk), so we expand
every chunk word by word here: confusion pairs, insertions and deletions are then counted per
word, as sclite's `dtl` report does, never per chunk.

>>> a = align_words("the cat sat".split(), "a cat sat down".split())
>>> [op.kind for op in a.ops], (a.correct, a.substitutions, a.deletions, a.insertions)
(['S', 'C', 'C', 'I'], (2, 1, 0, 1))
"""

from __future__ import annotations

from dataclasses import dataclass

import jiwer

# One Compose per call would rebuild the pipeline each time; the words are already split.
_AS_WORDS = jiwer.Compose([jiwer.ReduceToListOfListOfWords()])
_CHUNK_KIND = {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}


@dataclass(frozen=True)
class AlignOp:
    """One aligned position: kind C (correct), S, D or I; `ref`/`hyp` is None for I/D."""

    kind: str
    ref: str | None
    hyp: str | None


@dataclass(frozen=True)
class Alignment:
    """A minimum-edit-distance alignment of a reference and a hypothesis token sequence."""

    ops: tuple[AlignOp, ...]

    def count(self, kind: str) -> int:
        return sum(op.kind == kind for op in self.ops)

    @property
    def correct(self) -> int:
        return self.count("C")

    @property
    def substitutions(self) -> int:
        return self.count("S")

    @property
    def deletions(self) -> int:
        return self.count("D")

    @property
    def insertions(self) -> int:
        return self.count("I")

    @property
    def errors(self) -> int:
        return len(self.ops) - self.correct

    @property
    def ref_len(self) -> int:
        return sum(op.kind != "I" for op in self.ops)

    @property
    def hyp_len(self) -> int:
        return sum(op.kind != "D" for op in self.ops)

    def to_list(self) -> list[list[str | None]]:
        """JSON form: `[[kind, ref, hyp], ...]`."""
        return [[op.kind, op.ref, op.hyp] for op in self.ops]

    @classmethod
    def from_list(cls, rows: list[list[str | None]]) -> Alignment:
        return cls(tuple(AlignOp(str(kind), ref, hyp) for kind, ref, hyp in rows))


def _expand(chunks: list[jiwer.AlignmentChunk], ref: list[str], hyp: list[str]) -> Alignment:
    ops: list[AlignOp] = []
    for chunk in chunks:
        kind = _CHUNK_KIND[chunk.type]
        refs = ref[chunk.ref_start_idx : chunk.ref_end_idx]
        hyps = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if kind in ("C", "S"):  # equal length by construction
            ops.extend(AlignOp(kind, r, h) for r, h in zip(refs, hyps, strict=True))
        elif kind == "D":
            ops.extend(AlignOp("D", r, None) for r in refs)
        else:
            ops.extend(AlignOp("I", None, h) for h in hyps)
    return Alignment(tuple(ops))


def align_words(ref: list[str], hyp: list[str]) -> Alignment:
    """Align two word lists with unit (Levenshtein) costs.

    Args:
        ref: reference words (may be empty: every hypothesis word is then an insertion).
        hyp: hypothesis words.

    Returns:
        The word-by-word `Alignment`; C+S+D == len(ref), C+S+I == len(hyp).
    """
    if not ref or not hyp:  # jiwer's edge cases differ between versions; they are trivial
        return Alignment(
            tuple(AlignOp("D", r, None) for r in ref) + tuple(AlignOp("I", None, h) for h in hyp)
        )
    out = jiwer.process_words(" ".join(ref), " ".join(hyp), _AS_WORDS, _AS_WORDS)
    return _expand(out.alignments[0], out.references[0], out.hypotheses[0])


def char_errors(ref: str, hyp: str) -> tuple[int, int]:
    """Character edit distance and reference length, spaces included (jiwer `cer_default`).

    Returns:
        `(errors, ref_chars)`; the CER of a set is sum(errors) / sum(ref_chars).
    """
    if not ref or not hyp:
        return max(len(ref), len(hyp)), len(ref)
    out = jiwer.process_characters(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(out.references[0])
