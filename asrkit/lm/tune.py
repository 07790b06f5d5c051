"""Choose fusion weights on a dev set: decode it once per combination and keep the best WER.

Every combination of `lm_weight` x `length_bonus` (x `ctc_weight`) decodes the whole manifest
with the same beam; the model and the LM are loaded once. The result, `OUT/tune.json`, holds
every row and the chosen values, and `OUT/decode.yaml` the chosen `decode` section to paste
into a config (or pass with `--set`). Tune on one set of speakers and report on others: a
weight chosen on the test speakers flatters the LM.

Example:
    >>> grid = WeightGrid(lm_weights=(0.2, 0.4), length_bonuses=(0.0, 1.0))
    >>> rows = tune_weights(Path("exp/mini"), Path("dev_tune.jsonl"), Path("exp/lm"),
    ...                     grid, Path("exp/mini/tune"))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from asrkit.io import UserError, atomic_write_json, atomic_write_text, refuse_overwrite


@dataclass(frozen=True)
class WeightGrid:
    """The values tried; every combination is decoded."""

    lm_weights: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7)
    length_bonuses: tuple[float, ...] = (0.0, 0.5, 1.0)
    ctc_weights: tuple[float | None, ...] = (None,)  # None keeps the model's decode config

    def combinations(self) -> list[tuple[float, float, float | None]]:
        if any(w < 0 for w in self.lm_weights):
            raise UserError(f"LM weights must be >= 0, got {list(self.lm_weights)}")
        return list(itertools.product(self.lm_weights, self.length_bonuses, self.ctc_weights))


def tune_weights(
    model: Path,
    manifest: Path,
    lm: Path | None,
    grid: WeightGrid,
    out: Path,
    beam: int | None = None,
    device: str = "cpu",
    force: bool = False,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Decode `manifest` with every combination of `grid`; write tune.json and decode.yaml.

    Args:
        model: the acoustic EXP_DIR or .pt.
        manifest: the tuning manifest (reference texts).
        lm: the LM_DIR to fuse; None tunes the length bonus (and CTC weight) alone, with the
            LM weights of the grid ignored.
        grid: the values to try.
        out: folder for tune.json and decode.yaml.
        beam: beam width (None keeps the model's config).

    Returns:
        One row per combination: the weights, WER, CER, RTF; the best (lowest WER, then CER,
        then the smaller LM weight) first.
    """
    from asrkit.checkpoint import load_model
    from asrkit.data.manifest import read_manifest
    from asrkit.decoding import decode_utterances
    from asrkit.scoring import score

    console = console or Console(stderr=True)
    refuse_overwrite([out / "tune.json", out / "decode.yaml"], force)
    loaded = load_model(model, device)
    utts = read_manifest(manifest)
    refs = {u.id: u.text for u in utts}
    fused = None
    if lm is not None:  # loaded once for the whole sweep (an ARPA file takes seconds to parse)
        from asrkit.decoding.api import fusion_lm

        fused = fusion_lm(loaded, loaded.decode_options(lm=str(lm), lm_weight=1.0))
    combos = (
        grid.combinations()
        if lm is not None
        else [
            (0.0, bonus, ctc)
            for bonus, ctc in itertools.product(grid.length_bonuses, grid.ctc_weights)
        ]
    )
    rows = []
    for lm_weight, bonus, ctc in combos:
        fusion = {"lm": str(lm), "lm_weight": lm_weight} if lm is not None and lm_weight > 0 else {}
        opts = loaded.decode_options(beam=beam, ctc_weight=ctc, length_bonus=bonus, **fusion)
        transcripts, timing = decode_utterances(
            loaded, utts, opts, console=console, lm=fused if fusion else None
        )
        report = score(refs, {t.id: t.text for t in transcripts}, bootstrap=10)
        row = {
            "lm_weight": lm_weight if fusion else 0.0,
            "length_bonus": bonus,
            "ctc_weight": opts.ctc_weight,
            "beam": opts.beam,
            "wer": report.counts.wer,
            "cer": report.counts.cer,
            "rtf": timing.rtf,
        }
        rows.append(row)
        console.print(
            f"lm_weight {row['lm_weight']:g}, length_bonus {bonus:g}, ctc_weight"
            f" {opts.ctc_weight:g}: WER {100 * row['wer']:.2f}%, CER {100 * row['cer']:.2f}%",
            highlight=False,
        )
    rows.sort(key=lambda r: (r["wer"], r["cer"], r["lm_weight"]))
    _write(out, rows, lm, model, manifest)
    console.print(_table(rows))
    return rows


def _write(
    out: Path, rows: list[dict[str, Any]], lm: Path | None, model: Path, manifest: Path
) -> None:
    best = rows[0]
    chosen = {
        "lm_weight": best["lm_weight"],
        "length_bonus": best["length_bonus"],
        "ctc_weight": best["ctc_weight"],
    }
    if lm is not None and best["lm_weight"] > 0:
        chosen["lm"] = str(lm)
    record = {"model": str(model), "manifest": str(manifest), "chosen": chosen, "rows": rows}
    atomic_write_json(out / "tune.json", record)
    atomic_write_text(out / "decode.yaml", yaml.safe_dump({"decode": chosen}, sort_keys=False))


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="fusion weights (best first)")
    for column in ("lm_weight", "length_bonus", "ctc_weight", "WER", "CER", "RTF"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['lm_weight']:g}",
            f"{row['length_bonus']:g}",
            f"{row['ctc_weight']:g}",
            f"{100 * row['wer']:.2f}%",
            f"{100 * row['cer']:.2f}%",
            f"{row['rtf']:.3f}",
        )
    return table
