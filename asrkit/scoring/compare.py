"""`evaluate --compare OTHER_DIR`: is this system significantly different from another one?

Both systems must have been scored on the same utterances with the same references and the
same normaliser; the other system is read back from its `utterances.jsonl`. Three tests, as
in sclite's `sc_stats`: paired bootstrap (speaker blocks when known), MAPSSWE and sentence
McNemar. Signs: delta = WER(this) - WER(other), negative when this system is better.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from asrkit.io import UserError, atomic_write_json, read_jsonl
from asrkit.scoring.align import align_words
from asrkit.scoring.render import pct
from asrkit.scoring.report import ScoreReport
from asrkit.scoring.stats import mapsswe, mcnemar, paired_bootstrap

Other = tuple[dict[str, Any], dict[str, dict[str, Any]]]  # report.json, utterance rows by id


def read_other(other_dir: Path) -> Other:
    """Another evaluate folder's report.json and its utterance rows by id.

    Raises:
        UserError: not an evaluate output folder, or rows without id, ref or hyp.
    """
    other_dir = Path(other_dir)
    report_path, utts_path = other_dir / "report.json", other_dir / "utterances.jsonl"
    if not report_path.is_file() or not utts_path.is_file():
        raise UserError(
            f"{other_dir}: not an evaluate output folder (no report.json/utterances.jsonl)"
        )
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{report_path}: not valid JSON ({exc.msg})") from exc
    rows = {}
    for row in read_jsonl(utts_path):
        if "id" not in row or "ref" not in row or "hyp" not in row:
            raise UserError(f"{utts_path}: a row lacks 'id', 'ref' or 'hyp'")
        rows[str(row["id"])] = row
    return report, rows


def _check_same_set(
    report: ScoreReport, other: dict[str, Any], rows: dict[str, Any], where: Path
) -> None:
    if other.get("normalizer") != report.normalizer:
        raise UserError(
            f"{where}: scored with normalizer {other.get('normalizer')!r}, "
            f"this run with {report.normalizer!r}; WERs are not comparable"
        )
    ids = {u.id for u in report.utterances}
    missing, extra = sorted(ids - set(rows)), sorted(set(rows) - ids)
    if missing or extra:
        detail = ", ".join((missing + extra)[:5])
        raise UserError(f"{where}: not the same utterances as this run (differ: {detail})")
    differ = [u.id for u in report.utterances if rows[u.id]["ref"] != u.ref]
    if differ:
        raise UserError(f"{where}: references differ from this run's for {', '.join(differ[:5])}")


def compare_with(
    report: ScoreReport,
    other_dir: Path,
    replications: int = 1000,
    seed: int = 0,
    other: Other | None = None,
) -> dict[str, Any]:
    """Compare `report` (this system) with the evaluate output in `other_dir` (its
    `read_other` result when the caller has it already).

    Returns:
        The content of `compare.json`: both WERs, the paired bootstrap, MAPSSWE and McNemar.

    Raises:
        UserError: when `other_dir` is not an evaluate output of the same test set.
    """
    other_dir = Path(other_dir)
    other_report, rows = other if other is not None else read_other(other_dir)
    _check_same_set(report, other_report, rows, other_dir)
    this_utts = report.utterances
    other_alignments = [
        align_words(u.ref.split(), str(rows[u.id]["hyp"]).split()) for u in this_utts
    ]
    errors_this = [u.errors for u in this_utts]
    errors_other = [a.errors for a in other_alignments]
    ref_words = [u.ref_words for u in this_utts]
    groups = [u.speaker or "" for u in this_utts] if all(u.speaker for u in this_utts) else None
    boot = paired_bootstrap(errors_this, errors_other, ref_words, groups, replications, seed)
    pairs = list(zip((u.alignment for u in this_utts), other_alignments, strict=True))
    total = max(sum(ref_words), 1)
    return {
        "this": {"wer": sum(errors_this) / total, "errors": sum(errors_this)},
        "other": {
            "dir": str(other_dir),
            "wer": sum(errors_other) / total,
            "errors": sum(errors_other),
        },
        "num_utterances": len(this_utts),
        "num_words": sum(ref_words),
        "delta_wer": boot.delta,
        "paired_bootstrap": boot.to_dict(),
        "mapsswe": mapsswe(pairs, min_good=2).to_dict(),
        "mcnemar": mcnemar([e == 0 for e in errors_this], [e == 0 for e in errors_other]).to_dict(),
    }


def write_comparison(result: dict[str, Any], out_dir: Path) -> Path:
    path = Path(out_dir) / "compare.json"
    atomic_write_json(path, result)
    return path


def print_comparison(result: dict[str, Any], console: Console) -> None:
    """One table: each test's statistic, p-value or probability, and verdict."""
    boot, mp, mcn = result["paired_bootstrap"], result["mapsswe"], result["mcnemar"]
    table = Table(
        title=f"This run vs {result['other']['dir']}: WER {pct(result['this']['wer'])} vs "
        f"{pct(result['other']['wer'])} (delta {100 * result['delta_wer']:+.2f} points)",
        title_justify="left",
    )
    for header in ("test", "statistic", "p / probability", "significant (95 %)"):
        table.add_column(header)
    excludes_zero = boot["low"] > 0 or boot["high"] < 0
    table.add_row(
        f"paired bootstrap ({boot['replications']} x {boot['unit']})",
        f"delta CI [{100 * boot['low']:+.2f}, {100 * boot['high']:+.2f}]",
        f"P(this better) = {boot['prob_a_better']:.3f}",
        "yes" if excludes_zero else "no",
    )
    table.add_row(
        f"MAPSSWE ({mp['segments']} segments, min_good {mp['min_good']})",
        f"Z = {'n/a' if mp['z'] is None else format(mp['z'], '.3f')}, mean {mp['mean']:+.3f}",
        f"p = {mp['p_value']:.4f}",
        "yes" if mp["significant"] else "no",
    )
    table.add_row(
        "sentence McNemar",
        f"this-only correct {mcn['a_only_correct']}, other-only {mcn['b_only_correct']}",
        f"p = {mcn['p_value']:.4f}",
        "yes" if mcn["significant"] else "no",
    )
    console.print(table)
