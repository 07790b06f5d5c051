"""WER/CER counts against independent computations (kaldialign, a reference Levenshtein)."""

from __future__ import annotations

import random
from pathlib import Path

import kaldialign
import pytest

from asrkit.io import UserError
from asrkit.scoring import align_words, char_errors, score
from asrkit.scoring.render import render_error_window, render_pra


def levenshtein(ref: list[str], hyp: list[str]) -> int:
    """Textbook dynamic programme, unit costs."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def corrupt(words: list[str], vocab: list[str], rate: float, rng: random.Random) -> list[str]:
    out: list[str] = []
    for word in words:
        roll = rng.random()
        if roll < rate / 3:
            continue
        if roll < 2 * rate / 3:
            out.append(rng.choice(vocab))
        elif roll < rate:
            out += [word, rng.choice(vocab)]
        else:
            out.append(word)
    return out


@pytest.fixture(scope="module")
def real_pairs(librispeech_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    refs = {}
    for trans in sorted((librispeech_dir / "dev-clean").glob("*/*/*.trans.txt"))[:20]:
        for line in trans.read_text().splitlines():
            utt_id, _, text = line.partition(" ")
            refs[utt_id] = text
    rng = random.Random(0)
    vocab = sorted({w for t in refs.values() for w in t.split()})
    hyps = {i: " ".join(corrupt(t.split(), vocab, 0.15, rng)) for i, t in refs.items()}
    return refs, hyps


def test_counts_equal_kaldialign_on_real_pairs(real_pairs) -> None:
    refs, hyps = real_pairs
    report = score(refs, hyps, bootstrap=50)
    assert len(report.utterances) == len(refs) > 100
    for utt in report.utterances:
        expected = kaldialign.edit_distance(utt.ref.split(), utt.hyp.split())
        assert utt.errors == expected["total"]
        assert utt.ref_words == expected["ref_len"]
    pooled = kaldialign.batch_error_rate(
        [r.split() for r in refs.values()], [hyps[i].split() for i in refs]
    )
    summary = report.summary()
    assert summary["wer"] == pytest.approx(pooled["err_rate"])
    assert summary["errors"] == pooled["total"]
    assert summary["num_words"] == sum(len(r.split()) for r in refs.values())
    assert (
        summary["errors"] == summary["substitutions"] + summary["deletions"] + summary["insertions"]
    )


def test_alignment_matches_reference_levenshtein() -> None:
    rng = random.Random(3)
    for _ in range(300):
        ref = [rng.choice("abcd") for _ in range(rng.randint(0, 8))]
        hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 8))]
        a = align_words(ref, hyp)
        assert a.errors == levenshtein(ref, hyp)
        assert [op.ref for op in a.ops if op.ref is not None] == ref
        assert [op.hyp for op in a.ops if op.hyp is not None] == hyp
        assert all((op.kind == "C") == (op.ref == op.hyp) for op in a.ops)


def test_char_errors_count_spaces() -> None:
    assert char_errors("ab c", "abc") == (1, 4)
    assert char_errors("", "xy") == (2, 0)
    assert char_errors("ab", "") == (2, 2)


def test_confusion_pairs_are_word_level() -> None:
    report = score({"u1": "the cat sat on a mat"}, {"u1": "a bat sat in the the mat"}, bootstrap=10)
    pairs, ins, _dels = report.error_counts()
    assert sum(pairs.values()) == report.counts.substitutions
    assert all(" " not in r and " " not in h for r, h in pairs)
    assert sum(ins.values()) == report.counts.insertions


def test_empty_reference_is_na_but_counted() -> None:
    report = score(
        {"s1_a": "one two", "s2_b": ""}, {"s1_a": "one two", "s2_b": "uh oh"}, bootstrap=20
    )
    empty = next(u for u in report.utterances if u.id == "s2_b")
    assert empty.wer is None and empty.to_json()["wer"] is None
    summary = report.summary()
    assert summary["insertions"] == 2 and summary["wer"] == pytest.approx(1.0)
    assert summary["empty_references"] == 1 and summary["ser"] == pytest.approx(0.5)


def test_joined_by_id_not_order() -> None:
    refs = {"a": "x y", "b": "p q r"}
    same = score(refs, {"b": "p q r", "a": "x y"}, bootstrap=10)
    assert same.counts.errors == 0


def test_mismatched_ids_are_named() -> None:
    with pytest.raises(UserError, match=r"only in ref: 1 \(b\).*only in hyp: 1 \(c\)"):
        score({"a": "x", "b": "y"}, {"a": "x", "c": "y"})
    with pytest.raises(UserError, match="empty"):
        score({}, {})
    with pytest.raises(UserError, match="no words"):
        score({"a": "..."}, {"a": "x"})


def test_pra_layout() -> None:
    report = score({"u1": "the cat sat"}, {"u1": "the bat sat down"}, bootstrap=10)
    text = render_pra(report.utterances)
    assert "id: (u1)\nScores: (#C #S #D #I) 2 1 0 1\n" in text
    ref_line = next(line for line in text.splitlines() if line.startswith("REF:"))
    hyp_line = next(line for line in text.splitlines() if line.startswith("HYP:"))
    assert ref_line.split() == ["REF:", "the", "CAT", "sat", "****"]
    assert hyp_line.split() == ["HYP:", "the", "BAT", "sat", "DOWN"]


def test_console_window_starts_before_the_first_error_and_keeps_columns() -> None:
    words = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(60)]  # waa wab ... wch
    hyp = [*words[:40], "wrong", *words[41:]]
    report = score({"u1": " ".join(words)}, {"u1": " ".join(hyp)}, bootstrap=10)
    ref_line, hyp_line, eval_line = render_error_window(report.utterances[0], 60).splitlines()
    assert "WBO" in ref_line and "WRONG" in hyp_line and "waa" not in ref_line  # word 40
    assert ref_line.endswith("...") and " ...wb" in ref_line  # cut on both sides, between words
    column = ref_line.index("WBO")
    assert hyp_line[column : column + 5] == "WRONG" and eval_line[column] == "S"
    short = score({"u1": "the cat"}, {"u1": "the bat"}, bootstrap=10).utterances[0]
    assert "..." not in render_error_window(short, 60)


def test_bootstrap_recorded_and_contains_wer(real_pairs) -> None:
    refs, hyps = real_pairs
    report = score(refs, hyps, bootstrap=200, seed=7)
    boot = report.summary()["bootstrap"]
    assert boot["unit"] == "speaker" and boot["seed"] == 7 and boot["replications"] == 200
    assert boot["low"] <= report.counts.wer <= boot["high"]
