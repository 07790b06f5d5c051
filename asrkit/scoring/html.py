"""`report.html`: the evaluate report as one page to look at in a browser.

One self-contained file: the CSS and JavaScript are inlined (no network, no CDN), the attention
plots are embedded as data URIs, and the recordings are linked by their path relative to the
report (so a report and its data can be moved together), never copied. The page holds the
summary, the comparison with another system, the per-speaker and length tables, the confusion
pairs and every utterance in a sortable, filterable list; clicking an utterance opens its
aligned REF/HYP (errors coloured), its spectrogram + attention plot and an audio player.

Every text that comes from data (ids, transcripts, paths) goes through `html.escape`, so an
utterance id such as `a<b>&"c` shows as written and cannot break the page.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

from asrkit import __version__
from asrkit.io import atomic_write_text
from asrkit.scoring.align import Alignment, align_words
from asrkit.scoring.render import SUM_HEADERS, pct
from asrkit.scoring.report import ScoreReport, UttScore

ASSETS = files("asrkit.scoring") / "html_assets"
NAV = (
    '<nav><a href="#speakers">speakers</a> <a href="#errors">errors</a>'
    ' <a href="#utts">utterances</a></nav>'
)
OP_CLASSES = {"C": "ok", "S": "sub", "D": "del", "I": "ins"}


def esc(value: object) -> str:
    """Data as HTML text or attribute value (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    cls: str = "sortable",
    numeric_from: int = 1,
) -> str:
    head = "".join(
        f'<th class="{"num" if i >= numeric_from else ""}">{esc(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i >= numeric_from else ""}">{esc(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _sum_cells(label: str, row: dict[str, Any]) -> list[Any]:
    rates = [pct(row[k]) for k in ("corr", "sub", "del", "ins", "wer", "ser")]
    return [label, row["sentences"], row["words"], *rates]


def _header(report: ScoreReport) -> str:
    meta, c, ci = report.meta, report.counts, report.bootstrap
    system = meta.get("model") or meta.get("hyp") or "-"
    reference = meta.get("manifest") or meta.get("ref") or "-"
    facts = [
        ("system", system),
        ("reference", reference),
        ("normaliser", report.normalizer),
        ("WER 95% CI", f"{pct(ci.low)}-{pct(ci.high)} ({ci.replications} x {ci.unit} bootstrap)"),
        ("CER", pct(c.cer)),
    ]
    if report.rtf is not None:
        facts.append(("real-time factor", f"{report.rtf:.3f}"))
    if meta.get("decode"):
        facts.append(("decoding", ", ".join(f"{k}={v}" for k, v in meta["decode"].items())))
    if meta.get("feature_normalisation"):
        facts.append(("features", meta["feature_normalisation"]))
    if meta.get("ensemble"):
        facts.append(("ensemble", ", ".join(m["model"] for m in meta["ensemble"])))
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    undecoded = "".join(
        f"<li><code>{esc(row['id'])}</code>: {esc(row['reason'])}</li>"
        for row in meta.get("undecoded") or []
    )
    warning = (
        f'<div class="warn"><b>Not decoded, scored as empty:</b><ul>{undecoded}</ul></div>'
        if undecoded
        else ""
    )
    wer = pct(c.wer)
    return (
        f'<header><h1>WER {esc(wer)}%</h1><p class="sub">{c.sentences} utterances, '
        f"{c.ref_words} reference words, {c.errors} errors</p><dl>{items}</dl>{warning}</header>"
    )


def _comparison(result: dict[str, Any]) -> str:
    boot, mp, mcn = result["paired_bootstrap"], result["mapsswe"], result["mcnemar"]
    excludes_zero = boot["low"] > 0 or boot["high"] < 0
    rows = [
        (
            f"paired bootstrap ({boot['replications']} x {boot['unit']})",
            f"delta CI [{100 * boot['low']:+.2f}, {100 * boot['high']:+.2f}]",
            f"P(this better) = {boot['prob_a_better']:.3f}",
            "yes" if excludes_zero else "no",
        ),
        (
            f"MAPSSWE ({mp['segments']} segments)",
            "Z = n/a" if mp["z"] is None else f"Z = {mp['z']:.3f}",
            f"p = {mp['p_value']:.4f}",
            "yes" if mp["significant"] else "no",
        ),
        (
            "sentence McNemar",
            f"this-only correct {mcn['a_only_correct']}, other-only {mcn['b_only_correct']}",
            f"p = {mcn['p_value']:.4f}",
            "yes" if mcn["significant"] else "no",
        ),
    ]
    title = (
        f"This system {pct(result['this']['wer'])}% vs {result['other']['dir']} "
        f"{pct(result['other']['wer'])}% (delta {100 * result['delta_wer']:+.2f} points)"
    )
    headers = ("test", "statistic", "p / probability", "significant (95 %)")
    return f"<h3>{esc(title)}</h3>" + _table(headers, rows, cls="plain", numeric_from=9)


def _breakdowns(report: ScoreReport) -> str:
    speakers = [_sum_cells(r["speaker"], r) for r in report.per_speaker()]
    lengths = [_sum_cells(r["length"], r) for r in report.by_length()]
    headers = ["speaker", *SUM_HEADERS[1:]]
    pairs, ins, dels = report.error_counts()
    errors = [
        (
            "confusion pairs",
            ("count", "ref", "hyp"),
            [(n, r, h) for (r, h), n in pairs.most_common(20)],
        ),
        ("insertions", ("count", "word"), [(n, w) for w, n in ins.most_common(20)]),
        ("deletions", ("count", "word"), [(n, w) for w, n in dels.most_common(20)]),
    ]
    error_tables = "".join(
        f"<div><h3>Top {name}</h3>{_table(heads, rows, numeric_from=9)}</div>"
        for name, heads, rows in errors
    )
    return (
        f'<section id="speakers"><div class="row"><div><h2>Per speaker (worst first)</h2>'
        f'<div class="scroll">{_table(headers, speakers)}</div></div>'
        f"<div><h2>WER by reference length (words)</h2>"
        f"{_table(['length', *SUM_HEADERS[1:]], lengths)}</div></div></section>"
        f'<section id="errors"><h2>Errors</h2><div class="row">{error_tables}</div></section>'
    )


def alignment_html(alignment: Alignment) -> str:
    """The aligned words as columns (REF over HYP), each coloured by its edit kind."""
    cells = []
    for op in alignment.ops:
        ref = esc(op.ref) if op.ref is not None else "***"
        hyp = esc(op.hyp) if op.hyp is not None else "***"
        cells.append(
            f'<span class="w {OP_CLASSES[op.kind]}" title="{esc(op.kind)}">'
            f"<i>{ref}</i><i>{hyp}</i></span>"
        )
    return (
        '<div class="ali"><span class="w lab"><i>REF</i><i>HYP</i></span>'
        + "".join(cells)
        + "</div>"
    )


def audio_html(audio: str | None, out_dir: Path) -> str:
    """A player for the recording, or a line saying why there is none."""
    if not audio:
        return '<p class="missing">no recording known for this utterance</p>'
    path = Path(audio)
    if not path.is_file():
        return f'<p class="missing">audio file missing: {esc(audio)}</p>'
    try:
        url = quote(Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix())
    except ValueError:  # another drive on Windows: no relative path exists
        url = path.resolve().as_uri()
    return f'<audio controls preload="none" src="{esc(url)}" data-path="{esc(audio)}"></audio>'


def plot_html(utt_id: str, report: ScoreReport, out_dir: Path) -> str:
    """The utterance's spectrogram + attention plot embedded, or why there is none."""
    plots = report.meta.get("plots") or {}
    if utt_id in plots and (out_dir / plots[utt_id]).is_file():
        data = base64.b64encode((out_dir / plots[utt_id]).read_bytes()).decode("ascii")
        alt = f"spectrogram and attention alignment of {esc(utt_id)}"
        return f'<img class="plot" alt="{alt}" src="data:image/png;base64,{data}">'
    if report.meta.get("mode") != "model":
        return '<p class="note">no attention plot: scored from transcript files</p>'
    worst = report.meta.get("worst")
    return (
        f'<p class="note">no attention plot: only the {esc(worst)} worst utterances are plotted'
        " (evaluate --worst N)</p>"
    )


def _utterance(utt: UttScore, report: ScoreReport, out_dir: Path, other: Alignment | None) -> str:
    flags = utt.health.names() if utt.health is not None else []
    cells = [
        f"<td>{esc(utt.id)}</td>",
        f"<td>{esc(utt.speaker or '-')}</td>",
        f'<td class="num">{"" if utt.duration is None else f"{utt.duration:.1f}"}</td>',
        f'<td class="num">{utt.ref_words}</td>',
        f'<td class="num">{utt.errors}</td>',
        f'<td class="num">{pct(utt.wer)}</td>',
    ]
    data = {
        "id": utt.id,
        "speaker": utt.speaker or "",
        "duration": utt.duration or 0,
        "words": utt.ref_words,
        "errors": utt.errors,
        "wer": -1 if utt.wer is None else utt.wer,
        "flags": len(flags),
        "text": f"{utt.ref} {utt.hyp}",
    }
    detail = [f"<h4>{esc(utt.id)}</h4>", alignment_html(utt.alignment)]
    if other is not None:
        cells.append(f'<td class="num">{other.errors}</td>')
        cells.append(f'<td class="num">{utt.errors - other.errors:+d}</td>')
        data.update(other=other.errors, delta=utt.errors - other.errors)
        data["differ"] = int(other.ops != utt.alignment.ops)
        detail += ["<p>the other system:</p>", alignment_html(other)]
    cells.append(f'<td class="flags">{esc(", ".join(flags))}</td>')
    if utt.health is not None and flags:
        values = ", ".join(f"{k} {v}" for k, v in utt.health.to_dict().items())
        detail.append(f'<p class="note">attention health: {esc(values)}</p>')
    detail += [plot_html(utt.id, report, out_dir), audio_html(utt.audio, out_dir)]
    attrs = " ".join(f'data-{k}="{esc(v)}"' for k, v in data.items())
    span = len(cells)
    return (
        f'<tbody class="utt" {attrs}><tr class="head">{"".join(cells)}</tr>'
        f'<tr class="detail" hidden><td colspan="{span}">{"".join(detail)}</td></tr></tbody>'
    )


def _utterances(report: ScoreReport, out_dir: Path, others: dict[str, Alignment] | None) -> str:
    headers = [("id", "id"), ("speaker", "speaker"), ("duration", "seconds"), ("words", "words")]
    headers += [("errors", "errors"), ("wer", "WER")]
    if others is not None:
        headers += [("other", "other errors"), ("delta", "this - other")]
    headers.append(("flags", "health flags"))
    head = "".join(f'<th data-key="{k}">{esc(label)}</th>' for k, label in headers)
    ranked = sorted(
        report.utterances,
        key=lambda u: (
            0 if others is None or others[u.id].ops != u.alignment.ops else 1,
            -u.errors,
            u.id,
        ),
    )
    bodies = "".join(
        _utterance(u, report, out_dir, None if others is None else others[u.id]) for u in ranked
    )
    order = "where the two systems differ first, then " if others is not None else ""
    return (
        f'<section id="utts"><h2>Utterances</h2><p class="note">Sorted {order}by errors;'
        " click a header to sort, a row to open it.</p>"
        '<div class="controls"><input id="filter" type="search" placeholder="filter: id, speaker'
        ' or words">'
        '<label><input id="errors-only" type="checkbox"> with errors only</label>'
        '<label><input id="flagged-only" type="checkbox"> flagged only</label>'
        '<span id="shown"></span></div>'
        f'<table id="utterances"><thead><tr>{head}</tr></thead>{bodies}</table></section>'
    )


def render_html(
    report: ScoreReport,
    out_dir: Path,
    comparison: dict[str, Any] | None = None,
    other_hyps: dict[str, str] | None = None,
) -> str:
    """The whole page.

    Args:
        report: the scored system.
        out_dir: where the page is written (plots are read from it, audio linked relative to it).
        comparison: the `compare.json` content when evaluated with `--compare`.
        other_hyps: the other system's normalised hypotheses by id (with `comparison`).
    """
    others = None
    if other_hyps is not None:
        others = {
            u.id: align_words(u.ref.split(), other_hyps[u.id].split()) for u in report.utterances
        }
    css = (ASSETS / "report.css").read_text(encoding="utf-8")
    script = (ASSETS / "report.js").read_text(encoding="utf-8")
    compare = (
        f"<section><h2>Comparison</h2>{_comparison(comparison)}</section>" if comparison else ""
    )
    c = report.counts
    summary = _table(
        [*SUM_HEADERS[1:], "WER 95% CI", "CER"],
        [
            [
                *_sum_cells("", c.row())[1:],
                f"{pct(report.bootstrap.low)}-{pct(report.bootstrap.high)}",
                pct(c.cer),
            ]
        ],
        cls="plain",
        numeric_from=0,
    )
    reference = report.meta.get("manifest") or report.meta.get("ref") or ""
    title = f"attnasr report: WER {pct(c.wer)}% on {reference}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{css}</style></head><body>"
        f"{NAV}{_header(report)}<section><h2>Summary</h2>{summary}</section>{compare}"
        f"{_breakdowns(report)}{_utterances(report, out_dir, others)}"
        f"<footer>attnasr {esc(__version__)}; every number is also in"
        " report.json</footer>"
        f"<script>{script}</script></body></html>"
    )


def write_html(
    report: ScoreReport,
    out_dir: Path,
    comparison: dict[str, Any] | None = None,
    other_hyps: dict[str, str] | None = None,
) -> Path:
    """Write `out_dir/report.html` atomically; returns its path."""
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, render_html(report, Path(out_dir), comparison, other_hyps))
    return path
