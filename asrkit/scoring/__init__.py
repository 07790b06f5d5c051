"""Scoring: normalisation, alignment, error rates, significance tests and reports."""

from __future__ import annotations

from asrkit.scoring.align import Alignment, AlignOp, align_words, char_errors
from asrkit.scoring.health import HealthFlags, HealthThresholds, attention_health
from asrkit.scoring.normalize import NORMALIZERS, normalize, normalize_librispeech
from asrkit.scoring.report import ScoreReport, UttScore, score

__all__ = [
    "NORMALIZERS",
    "AlignOp",
    "Alignment",
    "HealthFlags",
    "HealthThresholds",
    "ScoreReport",
    "UttScore",
    "align_words",
    "attention_health",
    "char_errors",
    "normalize",
    "normalize_librispeech",
    "score",
]
