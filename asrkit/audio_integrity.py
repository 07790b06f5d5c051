"""Checks every audio reader applies to the samples it decoded (numpy only, cheap to import)."""

from __future__ import annotations

import numpy as np


def nonfinite_problem(samples: np.ndarray) -> str | None:
    """ "12 NaN and 1 infinite samples" when `samples` holds any, else None.

    Only floating-point files (WAV/AIFF float or double) can hold them; one such sample turns
    every feature frame it touches into NaN, and the model then emits garbage with no error.
    Such files are refused everywhere audio is read (prepare, train, transcribe, evaluate)
    rather than repaired: zeroing the samples would hide a broken recording.

    >>> nonfinite_problem(np.array([0.1, np.nan, np.inf, -np.inf], dtype=np.float32))
    '1 NaN and 2 infinite samples'
    """
    finite = np.isfinite(samples)
    if finite.all():
        return None
    nan = int(np.isnan(samples).sum())
    infinite = int(finite.size - finite.sum()) - nan
    return f"{nan} NaN and {infinite} infinite samples"
