"""`attnasr rescore`: re-rank an N-best list with other weights or another LM, no decoding.

Reads the `nbest.jsonl` that `evaluate` or `transcribe` wrote with `--nbest N`, recombines each
hypothesis' attention, CTC and LM scores (`asrkit.decoding.fusion.rescore`) with the weights
given (the decode-time ones by default), optionally replacing the LM scores by those of another
LM, and writes OUT/hyp.jsonl (id, text) and OUT/rescored.jsonl (every list, re-ranked); with a
reference manifest, a WER report in OUT/report/.

Example:
    >>> rescore_file(Path("eval/dev/nbest.jsonl"), Path("eval/dev_rescored"),
    ...              {"lm_weight": 0.5}, lm=Path("exp/lm_big"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asrkit.decoding.fusion import FusionWeights, lm_sequence_scores, rescore, units_digest
from asrkit.decoding.options import Alternative
from asrkit.io import UserError, read_jsonl, refuse_overwrite, write_jsonl

_FIELDS = ("tokens", "text", "rank", "attention", "ctc", "lm")


def read_nbest(path: Path) -> list[tuple[dict[str, Any], list[Alternative]]]:
    """Each row of an nbest.jsonl with its hypotheses."""
    rows = read_jsonl(path)
    if not rows:
        raise UserError(f"{path}: no N-best list in it")
    out = []
    for number, row in enumerate(rows, 1):
        try:
            alternatives = [Alternative(**{k: entry[k] for k in _FIELDS}) for entry in row["nbest"]]
        except (KeyError, TypeError) as exc:
            raise UserError(f"{path}:{number}: not an N-best row (written by --nbest)") from exc
        if not alternatives or "id" not in row:
            raise UserError(f"{path}:{number}: not an N-best row (written by --nbest)")
        out.append((row, alternatives))
    return out


def rescore_file(
    nbest: Path,
    out: Path,
    overrides: dict[str, float | None],
    lm: Path | None = None,
    force: bool = False,
) -> Path:
    """Re-rank every list of `nbest`; returns OUT/hyp.jsonl.

    Args:
        nbest: an nbest.jsonl.
        out: output folder.
        overrides: ctc_weight, lm_weight, length_bonus, length_penalty (None = as decoded).
        lm: another LM whose scores replace the decode-time LM's.
        force: replace earlier outputs.

    Raises:
        UserError: an unreadable list, a CTC weight for a list decoded without joint CTC, or
            an LM over other units than the list's.
    """
    refuse_overwrite([out / "hyp.jsonl", out / "rescored.jsonl"], force)
    rows = read_nbest(Path(nbest))
    score_with = _lm_scorer(lm, rows[0][0].get("units"), nbest) if lm is not None else None
    hyps, lists = [], []
    for row, alternatives in rows:
        weights = _weights(row, overrides, nbest)
        if score_with is not None:
            scores = score_with(alternatives)
            alternatives = [
                dataclasses.replace(a, lm=s) for a, s in zip(alternatives, scores, strict=True)
            ]
        ranked = rescore(alternatives, weights, bool(row.get("joint_ctc")))
        hyps.append({"id": row["id"], "text": ranked[0].text})
        lists.append(
            {
                **row,
                "weights": dataclasses.asdict(weights),
                "lm": str(lm) if lm is not None else row.get("lm"),
                "nbest": [dataclasses.asdict(a) for a in ranked],
            }
        )
    write_jsonl(out / "rescored.jsonl", lists)
    write_jsonl(out / "hyp.jsonl", hyps)
    return out / "hyp.jsonl"


def _lm_scorer(lm: Path, units: object, nbest: Path) -> Callable[[list[Alternative]], list[float]]:
    """How the new LM scores a list: a word n-gram reads the texts, a neural LM the units."""
    from asrkit.lm.checkpoint import is_arpa, load_lm, resolve_lm

    path = resolve_lm(lm)
    if is_arpa(path):
        from asrkit.lm.ngram import ArpaLM

        arpa = ArpaLM.load(path)
        return lambda alts: [arpa.sentence_score(a.text) for a in alts]
    loaded = load_lm(lm)
    if units_digest(loaded.tokenizer.pieces) != units:
        raise UserError(f"{lm}: its units are not those of the model that wrote {nbest}")
    return lambda alts: lm_sequence_scores(loaded.model, [a.tokens for a in alts])


def _weights(row: dict[str, Any], overrides: dict[str, float | None], where: Path) -> FusionWeights:
    recorded = row.get("weights") or {}
    values = {f.name: recorded.get(f.name, f.default) for f in dataclasses.fields(FusionWeights)}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("ctc_weight") and not row.get("joint_ctc"):
        raise UserError(f"{where}: decoded without joint CTC, so it has no CTC scores to weigh")
    if values["lm_weight"] < 0:
        raise UserError(f"lm weight must be >= 0, got {values['lm_weight']}")
    return FusionWeights(**values)
