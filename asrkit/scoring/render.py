"""Text renderings of a `ScoreReport`: sclite `pra` alignments, Markdown report, rich tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from asrkit.scoring.align import Alignment

if TYPE_CHECKING:
    from asrkit.scoring.report import ScoreReport, UttScore


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal; `n/a` for None."""
    return "n/a" if value is None else f"{100.0 * value:.1f}"


def alignment_lines(alignment: Alignment) -> tuple[str, str, str]:
    """sclite-style REF/HYP/Eval columns: correct words lower-case, errors upper-case, `***`
    filling the missing side of an insertion or deletion."""
    refs, hyps, evals = [], [], []
    for op in alignment.ops:
        ref, hyp = op.ref or "", op.hyp or ""
        width = max(len(ref), len(hyp), 1)
        if op.kind == "C":
            ref, hyp, mark = ref.lower(), hyp.lower(), ""
        else:
            ref = ref.upper() if op.ref is not None else "*" * width
            hyp = hyp.upper() if op.hyp is not None else "*" * width
            mark = op.kind
        refs.append(ref.ljust(width))
        hyps.append(hyp.ljust(width))
        evals.append(mark.ljust(width))
    return " ".join(refs).rstrip(), " ".join(hyps).rstrip(), " ".join(evals).rstrip()


def render_utterance(utt: UttScore) -> str:
    """One utterance in `pra` layout (id, Scores, REF, HYP, Eval)."""
    a = utt.alignment
    ref, hyp, evals = alignment_lines(a)
    lines = [f"id: ({utt.id})"]
    lines.append(
        f"Scores: (#C #S #D #I) {a.correct} {a.substitutions} {a.deletions} {a.insertions}"
    )
    lines += [f"REF:  {ref}", f"HYP:  {hyp}", f"Eval: {evals}"]
    return "\n".join(lines) + "\n"


def render_error_window(utt: UttScore, width: int) -> str:
    """REF/HYP/Eval lines cut to `width` columns starting just before the first error.

    For the console: a 30-second utterance's alignment wraps into an unreadable block, while
    the full alignment stays in report.md and alignments.pra.
    """
    ref, hyp, evals = alignment_lines(utt.alignment)
    first_error = len(evals) - len(evals.lstrip()) if evals.strip() else 0
    start = max(0, first_error - width // 4)
    while start > 0 and any(line[start - 1 : start] not in (" ", "") for line in (ref, hyp)):
        start -= 1  # back to a column boundary: cut between words, not inside one
    lines = []
    for name, line in (("REF: ", ref), ("HYP: ", hyp), ("Eval:", evals)):
        piece = line[start : start + width]
        lead = "..." if start > 0 else ""
        tail = "..." if start + width < len(line) else ""
        lines.append(f"{name} {lead}{piece}{tail}".rstrip())
    return "\n".join(lines)


def render_pra(utts: Sequence[UttScore]) -> str:
    """All utterances in sclite `pra` style, sorted by id, separated by blank lines."""
    header = "attnasr alignments (sclite pra layout; errors upper-case, *** = missing word)\n\n"
    return header + "\n".join(render_utterance(u) for u in utts)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _sum_row(label: str, row: dict[str, Any]) -> list[Any]:
    cells = [row["sentences"], row["words"], pct(row["corr"]), pct(row["sub"]), pct(row["del"])]
    return [label, *cells, pct(row["ins"]), pct(row["wer"]), pct(row["ser"])]


SUM_HEADERS = ("", "# Snt", "# Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err")


def kaldi_lines(report: ScoreReport) -> list[str]:
    """The greppable Kaldi `compute-wer` summary lines."""
    c = report.counts
    return [
        f"%WER {100 * (c.wer or 0.0):.2f} [ {c.errors} / {c.ref_words}, {c.insertions} ins,"
        f" {c.deletions} del, {c.substitutions} sub ]",
        f"%SER {100 * c.ser:.2f} [ {c.sentence_errors} / {c.sentences} ]",
        f"Scored {c.sentences} sentences, 0 not present in hyp.",
    ]


def render_markdown(report: ScoreReport, worst: int = 10) -> str:
    """The human-readable `report.md`."""
    c, ci, meta = report.counts, report.bootstrap, report.meta
    out = ["# attnasr evaluation report\n"]
    system = meta.get("model") or meta.get("hyp") or "-"
    out.append(f"- system: `{system}`; reference: `{meta.get('manifest') or meta.get('ref')}`")
    out.append(f"- normaliser: **{report.normalizer}**; alignment: unit-cost Levenshtein (jiwer)")
    out.append(
        f"- bootstrap 95 % CI: {ci.replications} replications, seed {ci.seed}, "
        f"resampling {ci.unit}s ({ci.blocks}); speakers from {report.speakers_from}"
    )
    out.append(
        f"- reference words: {c.ref_words} after normalisation, {report.num_words_raw} before"
    )
    if report.rtf is not None:
        out.append(f"- real-time factor: {report.rtf:.3f}")
    if meta.get("decode"):
        options = ", ".join(f"{k}={v}" for k, v in meta["decode"].items())
        out.append(f"- decoding: {options}")
    if meta.get("feature_normalisation"):
        out.append(f"- features: {meta['feature_normalisation']}")
    for row in meta.get("undecoded") or []:
        out.append(f"- **not decoded, scored as empty**: `{row['id']}` ({row['reason']})")
    out.append("\n## Summary\n")
    headers = [*SUM_HEADERS[1:], "WER 95% CI", "CER"]
    row = [*_sum_row("", c.row())[1:], f"{pct(ci.low)}-{pct(ci.high)}", pct(c.cer)]
    out.append(_md_table(headers, [row]))
    out.append("```\n" + "\n".join(kaldi_lines(report)) + "\n```\n")
    out.append("## Per speaker\n")
    rows = [_sum_row(r["speaker"], r) for r in report.per_speaker()]
    rows.append(_sum_row("Sum/Avg", c.row()))
    out.append(_md_table(SUM_HEADERS, rows))
    spread = report.speaker_spread()
    if spread:
        out.append(
            f"Per-speaker WER: mean {pct(spread['mean'])}, S.D. {pct(spread['sd'])}, "
            f"median {pct(spread['median'])}\n"
        )
    out.append("## WER by reference length (words)\n")
    out.append(_md_table(SUM_HEADERS, [_sum_row(r["length"], r) for r in report.by_length()]))
    out.append(_render_error_tables(report))
    out.append(_render_worst(report, worst))
    return "\n".join(out)


def _render_error_tables(report: ScoreReport) -> str:
    pairs, ins, dels = report.error_counts()
    out = ["## Top confusion pairs (word level)\n"]
    out.append(
        _md_table(["count", "ref", "hyp"], [(n, r, h) for (r, h), n in pairs.most_common(20)])
    )
    out.append("## Top insertions\n")
    out.append(_md_table(["count", "word"], [(n, w) for w, n in ins.most_common(20)]))
    out.append("## Top deletions\n")
    out.append(_md_table(["count", "word"], [(n, w) for w, n in dels.most_common(20)]))
    return "\n".join(out)


def _render_worst(report: ScoreReport, worst: int) -> str:
    out = [f"## Worst {worst} utterances\n"]
    health = report.health_counts()
    if health is not None:
        flags = ", ".join(f"{name} {count}" for name, count in health.items())
        out.append(f"Attention-health flags over all utterances: {flags}\n")
    plots = report.meta.get("plots", {})
    for utt in report.worst(worst):
        flags = ", ".join(utt.health.names()) if utt.health is not None else ""
        title = f"### {utt.id} ({utt.errors} errors, WER {pct(utt.wer)})"
        out.append(title + (f" flags: {flags}" if flags else ""))
        if utt.id in plots:
            out.append(f"\n![attention]({plots[utt.id]})\n")
        out.append("```\n" + render_utterance(utt) + "```\n")
    return "\n".join(out)


def _rich_sum_table(title: str, rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for index, header in enumerate(SUM_HEADERS):
        table.add_column(header or "set", justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def print_summary(report: ScoreReport, console: Console, worst: int = 5) -> None:
    """Print the summary, per-speaker and top-error tables and the worst utterances."""
    c, ci = report.counts, report.bootstrap
    console.print(
        f"normaliser [bold]{report.normalizer}[/], {c.sentences} utterances, "
        f"{c.ref_words} words; WER 95% CI {pct(ci.low)}-{pct(ci.high)} "
        f"({ci.replications} x {ci.unit} bootstrap); CER {pct(c.cer)}"
        + (f"; RTF {report.rtf:.3f}" if report.rtf is not None else ""),
        highlight=False,
    )
    console.print(_rich_sum_table("Summary", [_sum_row("Sum/Avg", c.row())]))
    speakers = report.per_speaker()
    if len(speakers) > 1:
        rows = [_sum_row(r["speaker"], r) for r in speakers[:15]]
        console.print(_rich_sum_table(f"Per speaker (worst {len(rows)})", rows))
    pairs, ins, dels = report.error_counts()
    errors = Table(title="Top errors", title_justify="left")
    for header in ("confusion (ref -> hyp)", "n", "insertion", "n", "deletion", "n"):
        errors.add_column(header, justify="right" if header == "n" else "left")
    tops = [pairs.most_common(8), ins.most_common(8), dels.most_common(8)]
    for i in range(max(map(len, tops), default=0)):
        cells: list[str] = []
        for kind, top in enumerate(tops):
            if i < len(top):
                key, count = top[i]
                cells += [f"{key[0]} -> {key[1]}" if kind == 0 else str(key), str(count)]
            else:
                cells += ["", ""]
        errors.add_row(*cells)
    console.print(errors)
    width = max(40, console.width - 16)
    for utt in report.worst(worst):
        flags = f" [yellow]{', '.join(utt.health.names())}[/]" if utt.health else ""
        console.print(f"[bold]{utt.id}[/] errors {utt.errors}{flags}", highlight=False)
        console.print(render_error_window(utt, width), highlight=False, markup=False)
    for line in kaldi_lines(report):
        console.print(line, highlight=False)
