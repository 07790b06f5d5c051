"""Speaker-level mean normalisation (Kaldi's per-speaker CMN, `compute-cmvn-stats --spk2utt`).

Every utterance of a speaker is shifted by the same vector: the global mean minus the speaker's
mean log-mel over all of its frames. The model's global CMVN then sees each speaker centred.

Why not each utterance's own mean (`model.utterance_cmn`): the mean of a short utterance
depends on what is said (a string of SIXes is mostly /s/ frication), so it removes part of the
content along with the speaker and the channel; a speaker's mean over all of its utterances is
phonetically balanced. It reads audio only, never transcripts, so it applies to a test set as
it does in Kaldi recipes. An utterance without a speaker (`transcribe` of plain files) uses its
own mean, i.e. falls back to utterance CMN.

Example:
    >>> import torch
    >>> utts = [("a", torch.ones(4, 2)), ("a", torch.zeros(4, 2))]
    >>> shifts = speaker_shifts(utts, target=torch.zeros(2))
    >>> shift_features(torch.ones(3, 2), "a", shifts, torch.zeros(2))[0].tolist()
    [0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor


def speaker_shifts(features: Iterable[tuple[str, Tensor]], target: Tensor) -> dict[str, Tensor]:
    """Per speaker, the (n_mels,) vector that moves its mean log-mel onto `target`.

    Args:
        features: (speaker, raw log-mel (T, n_mels)) of every utterance; utterances with an
            empty speaker are ignored (they use their own mean, see `shift_features`).
        target: (n_mels,) where each speaker's mean lands (the global CMVN mean).

    Returns:
        speaker -> target - mean over all frames of the speaker's utterances.
    """
    return shifts_to(speaker_means(features), target)


def speaker_means(features: Iterable[tuple[str, Tensor]]) -> dict[str, Tensor]:
    """Per speaker, the float64 (n_mels,) mean log-mel over all frames of its utterances
    (float64 sums: hours of frames would blur a float32 running sum); utterances with an
    empty speaker are ignored."""
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    for speaker, feats in features:
        if not speaker or feats.shape[0] == 0:
            continue
        total = feats.double().sum(dim=0)
        sums[speaker] = sums[speaker] + total if speaker in sums else total
        counts[speaker] = counts.get(speaker, 0) + feats.shape[0]
    return {s: sums[s] / counts[s] for s in sums}


def shifts_to(means: dict[str, Tensor], target: Tensor) -> dict[str, Tensor]:
    """speaker -> target - the speaker's mean (`speaker_means`): one pass over the audio
    serves models with different CMVN means."""
    return {s: (target.double() - mean).float() for s, mean in means.items()}


def shift_features(
    feats: Tensor, speaker: str, shifts: dict[str, Tensor], target: Tensor
) -> Tensor:
    """(T, n_mels) raw log-mel -> the same shifted by its speaker's vector.

    A speaker missing from `shifts` (or empty) is treated as a speaker of its own: its
    utterance is moved by target - its own mean.
    """
    if feats.shape[0] == 0:
        return feats
    shift = shifts.get(speaker) if speaker else None
    if shift is None:
        shift = target - feats.mean(dim=0)
    return feats + shift.to(feats.dtype)
