"""Write a recipe's RESULTS.md from the `report.json` files that `attnasr evaluate` wrote.

Usage: python recipes/common/results_table.py --out recipes/mini/RESULTS.md EXP_ROOT...
Every EXP_ROOT/*/eval/*/report.json (or EXP/eval/*/report.json) becomes one row; the model
(encoder + decoder), its size and the attention kind come from the experiment's config.yaml (an
ensemble's: its first member's, the folders its report names). The file is generated, never
edited by hand.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from asrkit.config import load_yaml
from asrkit.io import atomic_write_text
from asrkit.model.las import LAS
from asrkit.training.provenance import host_description


def _units(exp: Path) -> str:
    """The experiment's output units, e.g. "char (31)" or "bpe (256)"."""
    path = exp / "tokenizer.json"
    if not path.is_file():
        return "?"
    data = json.loads(path.read_text())
    kind = data.get("model_type", data.get("kind", "?"))
    return f"{kind} ({len(data.get('pieces', []))})"


@functools.cache
def _model(exp: Path) -> tuple[str, str]:
    """The encoder + decoder kinds of the experiment's config.yaml, e.g. "conformer +
    transformer", and millions of parameters of the model it builds for the experiment's
    vocabulary (once per experiment: its test sets share the row's figures)."""
    config = exp / "config.yaml"
    if not config.is_file():
        return "?", "?"
    cfg = load_yaml(config)
    path = exp / "tokenizer.json"
    vocab = len(json.loads(path.read_text()).get("pieces", [])) if path.is_file() else 0
    size = "?"
    if vocab:
        size = f"{sum(p.numel() for p in LAS(cfg, vocab).parameters()) / 1e6:.1f}"
    return f"{cfg.listener.kind} + {cfg.decoder.kind}", size


def _trained(folders: list[Path]) -> list[str]:
    """Epochs, steps, training minutes, threads and audio-s/s of the runs in `folders`: one
    run's figures, or for an ensemble's members trained side by side the epochs and steps of
    each (a / b), the longest training time and the summed threads and throughput."""
    files = [folder / "train_result.json" for folder in folders]
    results = [json.loads(f.read_text()) for f in files if f.is_file()]
    if len(results) < len(folders) or not results:
        return ["?"] * 5
    return [
        " / ".join(str(r.get("epochs", "?")) for r in results),
        " / ".join(str(r.get("steps", "?")) for r in results),
        f"{max(r['train_minutes'] for r in results):.1f}",
        str(sum(r.get("threads", 0) for r in results) or "?"),
        f"{sum(r['audio_seconds_per_second'] for r in results):.0f}",
    ]


def _lm(decode: dict) -> str:
    """ "0.3 x lm" (weight x LM folder or file), "-" without fusion."""
    if not decode.get("lm") or not decode.get("lm_weight"):
        return "-"
    path = Path(decode["lm"])
    name = path.parent.name if path.name in ("final.pt", "lm.arpa") else path.name
    return f"{decode['lm_weight']:g} x {name}"


def _row(path: Path) -> str:
    exp, test_set = path.parents[2], path.parent.name
    report = json.loads(path.read_text())
    # An ensemble's report names its members' checkpoints; each member is an experiment folder.
    members = [Path(m["model"]).parent for m in report.get("ensemble") or []]
    first = members[0] if members else exp
    config = first / "config.yaml"
    cfg = load_yaml(config) if config.is_file() else None
    kind = cfg.attention.kind if cfg else "?"
    guide = "?" if cfg is None else cfg.train.guide_weight or "-"
    decode = report.get("decode", {})
    rtf = "-" if report.get("rtf") is None else f"{report['rtf']:.3f}"
    name = f"{exp.name} ({len(members)} members)" if members else exp.name
    cells = [
        name,
        *_model(first),
        kind,
        _units(first),
        guide,
        test_set,
        decode.get("beam", "?"),
        decode.get("ctc_weight", "?"),
        _lm(decode),
        f"{100 * report['wer']:.2f}",
        f"{100 * report['cer']:.2f}",
        f"{100 * report['ser']:.1f}",
        report["num_utterances"],
        report["num_words"],
        *_trained(members or [exp]),
        rtf,
    ]
    return "| " + " | ".join(map(str, cells)) + " |"


def rows(roots: list[Path]) -> list[str]:
    """One table row per report.json under the given experiment folders or their parents."""
    patterns = ("eval/*/report.json", "*/eval/*/report.json")
    return [_row(p) for p in sorted({p for r in roots for pat in patterns for p in r.glob(pat)})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="RESULTS.md to write")
    parser.add_argument("--command", default="", help="the command that produced the results")
    parser.add_argument("roots", type=Path, nargs="+", help="experiment folders or their parents")
    args = parser.parse_args()
    table = rows(args.roots)
    if not table:
        raise SystemExit(f"no eval/*/report.json under {', '.join(map(str, args.roots))}")
    header = [
        f"# Results ({args.out.parent.name})",
        "",
        "Generated by `recipes/common/results_table.py` from the evaluate reports; do not edit.",
        "",
        *([f"Command: `{args.command}`", ""] if args.command else []),
        f"Machine: {host_description()}",
        "",
        "Columns: model = encoder + decoder, params = millions of parameters, "
        "units = output units (vocabulary size), guide = guided-attention weight at "
        "the start of training (- = none), beam (1 = greedy), CTC = weight of the CTC prefix score "
        "in the search (0 = attention alone), LM = weight x language model fused in the "
        "search (- = none), epochs (whole ones), optimizer steps (`attnasr train "
        "--max-steps` repeats a budget-stopped run on another host) and minutes of training "
        "(validation excluded), the CPU threads it ran with, its throughput in audio seconds "
        "per second, and the decoding real-time factor. An ensemble's row (N members: models "
        "trained side by side, decoded with their mean scores) gives each member's epochs and "
        "steps (a / b), its longest training time and the threads and throughput summed.",
        "",
        "| experiment | model | params | attention | units | guide | test set | beam | CTC | LM "
        "| WER % | CER % | SER % | utts | words | epochs | steps | train min | threads "
        "| audio s/s | RTF |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    atomic_write_text(args.out, "\n".join([*header, *table]) + "\n")
    print(f"wrote {args.out} ({len(table)} rows)")


if __name__ == "__main__":
    main()
