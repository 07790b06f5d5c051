"""Language models (issue 38): the models, training, loading, and shallow fusion in beam search."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from decoding_support import tiny_experiment, tiny_loaded, write_tone
from typer.testing import CliRunner

from asrkit.cli.main import app
from asrkit.decoding import DecodeOptions, beam_search
from asrkit.io import UserError
from asrkit.lm.checkpoint import check_units, load_lm, save_lm
from asrkit.lm.config import LMConfig, LMExperimentConfig, LMTrainConfig
from asrkit.lm.model import build_lm
from asrkit.lm.train import train_lm
from asrkit.testing import dummy_batch
from asrkit.tokenizer import EOS_ID, CharTokenizer

runner = CliRunner()
SENTENCES = ["THE CAT SAT ON THE MAT", "A DOG RAN", "THE DOG SAT", "A CAT RAN ON THE MAT"]


def _tokenizer() -> CharTokenizer:
    return tiny_loaded().tokenizer  # the 30-unit alphabet of the tiny acoustic model


def tone_manifest(path: Path, seconds: tuple[float, ...]) -> Path:
    """A manifest of tones beside `path`, one per duration, each transcribed "A CAT"."""
    rows = []
    for i, length in enumerate(seconds):
        audio = write_tone(path.parent / f"u{i}.wav", length)
        row = {"id": f"s-{i}", "audio": str(audio), "duration": length, "sample_rate": 16000}
        rows.append({**row, "speaker": "s", "text": "A CAT"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_step_by_step_equals_teacher_forced(kind: str) -> None:
    torch.manual_seed(0)
    cfg = LMConfig(kind=kind, embed_dim=16, hidden=32, layers=2, dropout=0.0)
    lm = build_lm(cfg, 12).eval()
    tokens, lengths = torch.randint(0, 12, (3, 7)), torch.tensor([7, 5, 2])
    full = lm(tokens, lengths)
    state, steps = lm.initial_state(3, tokens.device), []
    for t in range(7):
        logits, state = lm.step(tokens[:, t], state)
        steps.append(logits)
    stepped = torch.stack(steps, dim=1)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(stepped[b, :n], full[b, :n], atol=1e-5, rtol=1e-5)
    # a padded row's logits do not depend on what the padding holds
    other = tokens.clone()
    other[2, 2:] = 0
    torch.testing.assert_close(lm(other, lengths)[2, :2], full[2, :2])


def _text(tmp_path: Path, copies: int = 30) -> Path:
    path = tmp_path / "lm.txt"
    path.write_text("\n".join(SENTENCES * copies) + "\n")
    return path


def _small(epochs: int, **train: object) -> LMExperimentConfig:
    model = LMConfig(embed_dim=32, hidden=64, layers=1, dropout=0.0)
    return LMExperimentConfig(
        model,
        LMTrainConfig(
            max_epochs=epochs, lr=5e-3, warmup_steps=10, max_tokens=256, patience=0, **train
        ),
    )


@pytest.mark.slow
def test_training_learns_the_text(tmp_path: Path) -> None:
    text = _text(tmp_path)
    result = train_lm([text], tmp_path / "lm", _tokenizer(), _small(12), valid=[text])
    # 4 sentences of ~20 characters: a model that learned them needs < 1.6 choices per unit
    # (uniform over the 30 units is perplexity 30)
    assert result.best_dev_perplexity < 1.6, result
    rows = [
        json.loads(line) for line in (tmp_path / "lm" / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 12 and rows[-1]["dev_perplexity"] < rows[0]["dev_perplexity"]
    loaded = load_lm(tmp_path / "lm")
    assert loaded.tokenizer.pieces == _tokenizer().pieces


def test_resume_continues_exactly(tmp_path: Path) -> None:
    text = _text(tmp_path, copies=5)
    tok = _tokenizer()
    train_lm([text], tmp_path / "whole", tok, _small(2), valid=[text])
    train_lm([text], tmp_path / "parts", tok, _small(1), valid=[text])
    train_lm([text], tmp_path / "parts", tok, _small(2), valid=[text], resume=True)
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=False)
    parts = torch.load(tmp_path / "parts" / "checkpoints" / "last.pt", weights_only=False)
    for name, value in whole["model"].items():
        torch.testing.assert_close(parts["model"][name], value, atol=0, rtol=0)
    with pytest.raises(UserError, match="already exists"):
        train_lm([text], tmp_path / "whole", tok, _small(1), valid=[text])


def test_bad_text_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    exp = tiny_experiment(tmp_path / "exp")
    for name, message in [("empty.txt", "no sentence found"), ("latin1.txt", "not UTF-8 text")]:
        args = [
            "train-lm",
            str(tmp_path / name),
            "--out",
            str(tmp_path / "lm"),
            "--model",
            str(exp),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and message in result.stderr, result.output
    result = runner.invoke(app, ["train-lm", str(tmp_path / "empty.txt"), "--out", "x"])
    assert result.exit_code == 1 and "--model EXP or --tokenizer" in result.stderr


# --- fusion ---------------------------------------------------------------------------------


def _lm(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = LMConfig(embed_dim=16, hidden=32, layers=1, dropout=0.0)
    return build_lm(cfg, _tokenizer().vocab_size).eval()


def test_lm_weight_zero_is_the_search_without_an_lm() -> None:
    loaded, batch = tiny_loaded(), dummy_batch()
    opts = DecodeOptions(beam=4, ctc_weight=0.3)
    plain = beam_search(loaded.model, batch.feats, batch.feat_lengths, opts)
    unused = beam_search(loaded.model, batch.feats, batch.feat_lengths, opts, lm=_lm())
    assert [h.tokens for h in unused] == [h.tokens for h in plain]
    assert [h.score for h in unused] == [h.score for h in plain]
    fused = dataclasses.replace(opts, lm_weight=2.0)
    changed = beam_search(loaded.model, batch.feats, batch.feat_lengths, fused, lm=_lm())
    assert [h.tokens for h in changed] != [h.tokens for h in plain]  # the LM does take part


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3])
def test_fused_batched_search_equals_one_at_a_time(ctc_weight: float) -> None:
    loaded, batch, lm = tiny_loaded(), dummy_batch(), _lm()
    opts = DecodeOptions(beam=3, ctc_weight=ctc_weight, lm_weight=0.7, length_bonus=0.5)
    together = beam_search(loaded.model, batch.feats, batch.feat_lengths, opts, lm=lm)
    for i, hyp in enumerate(together):
        n = int(batch.feat_lengths[i])
        alone = beam_search(
            loaded.model, batch.feats[i : i + 1, :n], batch.feat_lengths[i : i + 1], opts, lm=lm
        )[0]
        assert alone.tokens == hyp.tokens
        assert alone.score == pytest.approx(hyp.score, abs=1e-6)  # float32 LM, other BLAS shapes


def test_length_bonus_lengthens_the_output() -> None:
    loaded, batch = tiny_loaded(), dummy_batch()
    opts = DecodeOptions(beam=3, length_penalty=0.0, eos_threshold=100.0)  # <eos> always allowed

    def total_length(bonus: float) -> int:
        bonused = dataclasses.replace(opts, length_bonus=bonus)
        return sum(
            len(h.tokens)
            for h in beam_search(loaded.model, batch.feats, batch.feat_lengths, bonused)
        )

    # the untrained model runs to the length limit at bonus 0; a penalty ends it sooner
    assert total_length(-5.0) < total_length(0.0) <= total_length(5.0)


def test_cli_fusion_and_its_refusals(tmp_path: Path) -> None:
    exp = tiny_experiment(tmp_path / "exp")
    lm_dir = tmp_path / "lm"
    save_lm(
        lm_dir / "final.pt",
        _lm(),
        LMExperimentConfig(LMConfig(embed_dim=16, hidden=32, layers=1, dropout=0.0)),
        _tokenizer(),
    )
    audio = str(write_tone(tmp_path / "a.wav", 1.0))
    base = ["transcribe", audio, "--model", str(exp), "--beam", "2"]
    assert runner.invoke(app, [*base, "--lm", str(lm_dir), "--lm-weight", "0.5"]).exit_code == 0
    no_weight = runner.invoke(app, [*base, "--lm", str(lm_dir)])
    assert no_weight.exit_code == 1 and "needs a weight > 0" in no_weight.stderr
    negative = runner.invoke(app, [*base, "--lm", str(lm_dir), "--lm-weight", "-1"])
    assert negative.exit_code == 1 and "lm weight must be >= 0" in negative.stderr
    acoustic = runner.invoke(app, [*base, "--lm", str(exp / "final.pt"), "--lm-weight", "0.5"])
    assert acoustic.exit_code == 1 and "format 'attnasr-lm-v1'" in acoustic.stderr
    other = CharTokenizer.train(["XYZ"])
    save_lm(
        tmp_path / "other.pt",
        build_lm(LMConfig(embed_dim=8, hidden=8, layers=1), other.vocab_size),
        LMExperimentConfig(LMConfig(embed_dim=8, hidden=8, layers=1)),
        other,
    )
    with pytest.raises(UserError, match=r"other.pt: its units \(char, 6\) are not those of"):
        check_units(load_lm(tmp_path / "other.pt"), _tokenizer(), tmp_path / "other.pt", exp)


# --- N-best lists and rescoring ---------------------------------------------------------


def test_nbest_keeps_the_search_order_and_each_score() -> None:
    from asrkit.decoding.fusion import FusionWeights, combined, lm_sequence_scores, rescore

    loaded, batch, lm = tiny_loaded(), dummy_batch(), _lm()
    for ctc in (0.0, 0.3):
        opts = DecodeOptions(beam=4, ctc_weight=ctc, lm_weight=0.5, length_bonus=0.3, nbest=4)
        weights = FusionWeights(ctc, 0.5, 0.3, opts.length_penalty)
        for hyp in beam_search(loaded.model, batch.feats, batch.feat_lengths, opts, lm=lm):
            alts = hyp.alternatives
            assert len(alts) == 4 and alts[0].tokens == hyp.tokens
            assert [a.rank for a in alts] == sorted((a.rank for a in alts), reverse=True)
            for alt in alts:  # the parts recombine into the search's own score
                assert combined(alt, weights, ctc > 0) == pytest.approx(alt.rank, abs=1e-6)
            fused = lm_sequence_scores(lm, [a.tokens for a in alts])
            assert fused == pytest.approx([a.lm for a in alts], abs=1e-6)
            assert [a.tokens for a in rescore(alts, weights, ctc > 0)] == [a.tokens for a in alts]


def test_rescore_with_the_decode_weights_gives_the_one_best_back(tmp_path: Path) -> None:
    from asrkit.lm.rescore import read_nbest

    exp = tiny_experiment(tmp_path / "exp")
    lm_dir = tmp_path / "lm"
    cfg = LMExperimentConfig(LMConfig(embed_dim=16, hidden=32, layers=1, dropout=0.0))
    save_lm(lm_dir / "final.pt", _lm(), cfg, _tokenizer())
    manifest = tone_manifest(tmp_path / "test.jsonl", (0.8, 1.1, 1.4))
    args = [
        "evaluate",
        "--model",
        str(exp),
        "--manifest",
        str(manifest),
        "--device",
        "cpu",
        "--beam",
        "4",
        "--ctc-weight",
        "0.3",
        "--lm",
        str(lm_dir),
        "--lm-weight",
        "0.4",
        "--nbest",
        "3",
        "--bootstrap",
        "20",
    ]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    lists = read_nbest(tmp_path / "eval" / "nbest.jsonl")
    assert len(lists) == 3 and all(len(alts) == 3 for _, alts in lists)
    decoded = {
        json.loads(line)["id"]: json.loads(line)["hyp"]
        for line in (tmp_path / "eval" / "utterances.jsonl").read_text().splitlines()
    }
    again = runner.invoke(
        app, ["rescore", str(tmp_path / "eval" / "nbest.jsonl"), "--out", str(tmp_path / "same")]
    )
    assert again.exit_code == 0, again.output
    best = {r["id"]: r["text"] for r in map(json.loads, (tmp_path / "same" / "hyp.jsonl").open())}
    assert best == decoded
    heavier = runner.invoke(
        app,
        [
            "rescore",
            str(tmp_path / "eval" / "nbest.jsonl"),
            "--out",
            str(tmp_path / "x"),
            "--lm-weight",
            "3",
            "--lm",
            str(lm_dir),
        ],
    )
    assert heavier.exit_code == 0, heavier.output  # another weight and LM: no decoding needed


# --- word n-grams (ARPA) ----------------------------------------------------------------

ARPA = """
\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-1.0 <s> -0.3
-0.7 A -0.2
-0.9 CAT -0.1
-1.2 </s>
-2.0 <unk>

\\2-grams:
-0.2 <s> A
-0.4 A CAT
-0.3 CAT </s>

\\end\\
"""


def test_arpa_scores_are_the_hand_computed_ones(tmp_path: Path) -> None:
    import math

    from asrkit.lm.ngram import ArpaLM

    path = tmp_path / "lm.arpa"
    path.write_text(ARPA)
    arpa, ln10 = ArpaLM.load(path), math.log(10)
    assert arpa.score(("<s>",), "A") == pytest.approx(-0.2 * ln10)  # listed bigram
    assert arpa.score(("<s>", "A"), "CAT") == pytest.approx(-0.4 * ln10)  # order 2: last word
    assert arpa.score(("CAT",), "A") == pytest.approx((-0.1 - 0.7) * ln10)  # back-off(CAT) + P(A)
    assert arpa.score(("A",), "DOG") == pytest.approx((-0.2 - 2.0) * ln10)  # back-off + <unk>
    total = (-0.2 - 0.4 - 0.3) * ln10
    assert arpa.sentence_score("A CAT") == pytest.approx(total)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ARPA.replace("-0.4 A CAT", "-0.4 A"), r"lm.arpa:15: expected 'log10-prob 2 word"),
        (ARPA.replace("-0.9 CAT -0.1", "x CAT"), r"lm.arpa:9: not a number"),
        (ARPA.replace("ngram 2=3", "ngram 2=4"), r"4 2-grams announced, 3 listed"),
        ("hello\n", r"lm.arpa:1: not ARPA"),
    ],
)
def test_bad_arpa_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    from asrkit.lm.ngram import ArpaLM

    path = tmp_path / "lm.arpa"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        ArpaLM.load(path)


def test_word_fusion_sums_to_the_sentence_score_batched_or_alone(tmp_path: Path) -> None:
    from asrkit.lm.ngram import ArpaLM
    from asrkit.lm.word_fusion import WordFusion

    path = tmp_path / "lm.arpa"
    path.write_text(ARPA)
    arpa, loaded, batch = ArpaLM.load(path), tiny_loaded(), dummy_batch()
    fusion = WordFusion(arpa, loaded.tokenizer)
    opts = DecodeOptions(beam=3, ctc_weight=0.3, lm_weight=0.3, nbest=3, eos_threshold=100.0)
    tok = loaded.tokenizer
    together = beam_search(loaded.model, batch.feats, batch.feat_lengths, opts, tok, lm=fusion)
    for i, hyp in enumerate(together):
        for alt in hyp.alternatives:  # the fused sum is the sentence's n-gram log-probability
            assert alt.lm == pytest.approx(arpa.sentence_score(alt.text), abs=1e-6)
        n = int(batch.feat_lengths[i])
        alone = beam_search(
            loaded.model, batch.feats[i : i + 1, :n], batch.feat_lengths[i : i + 1], opts, lm=fusion
        )[0]
        assert alone.tokens == hyp.tokens


def test_word_fusion_steps_sum_to_the_sentence_score(tmp_path: Path) -> None:
    import math

    from asrkit.lm.ngram import ArpaLM
    from asrkit.lm.word_fusion import WordFusion

    path = tmp_path / "lm.arpa"
    path.write_text(ARPA)
    tok = _tokenizer()
    fusion = WordFusion(ArpaLM.load(path), tok)
    units = [*tok.encode("A CAT"), EOS_ID]
    state, prev, total = fusion.initial_state(1, torch.device("cpu")), torch.tensor([EOS_ID]), 0.0
    for unit in units:
        scores, state = fusion.log_probs(prev, state)
        total += float(scores[0, unit])
        prev = torch.tensor([unit])
    assert total == pytest.approx((-0.2 - 0.4 - 0.3) * math.log(10))


def test_train_lm_ngram_builds_a_normalised_arpa_that_fuses(tmp_path: Path) -> None:
    import math

    from asrkit.lm.ngram import ArpaLM

    text = _text(tmp_path, copies=2)
    out = tmp_path / "ngram"
    result = runner.invoke(app, ["train-lm", str(text), "--out", str(out), "--kind", "ngram"])
    assert result.exit_code == 0, result.output
    arpa = ArpaLM.load(out / "lm.arpa")
    vocabulary = {w for s in SENTENCES for w in s.split()} | {"</s>", "<unk>"}
    for history in [("<s>",), ("<s>", "THE"), ("THE", "CAT"), ("MAT",), ("NEVER", "SEEN")]:
        total = sum(math.exp(arpa.score(history, w)) for w in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-4), history  # 6-decimal log10 in the file
    assert arpa.score(("THE",), "CAT") > arpa.score(("THE",), "RAN")  # seen beats unseen
    exp = tiny_experiment(tmp_path / "exp")
    audio = str(write_tone(tmp_path / "a.wav", 1.0))
    args = ["transcribe", audio, "--model", str(exp), "--beam", "2", "--lm", str(out)]
    fused = runner.invoke(app, [*args, "--lm-weight", "0.3"])
    assert fused.exit_code == 0, fused.output
    again = runner.invoke(app, ["train-lm", str(text), "--out", str(out), "--kind", "ngram"])
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_tune_weights_decodes_every_combination_and_writes_the_choice(tmp_path: Path) -> None:
    exp = tiny_experiment(tmp_path / "exp")
    cfg = LMExperimentConfig(LMConfig(embed_dim=16, hidden=32, layers=1, dropout=0.0))
    save_lm(tmp_path / "lm" / "final.pt", _lm(), cfg, _tokenizer())
    manifest = tone_manifest(tmp_path / "dev.jsonl", (0.8, 1.2))
    out = tmp_path / "tune"
    args = [
        "tune-weights",
        "--model",
        str(exp),
        "--manifest",
        str(manifest),
        "--lm",
        str(tmp_path / "lm"),
        "--lm-weights",
        "0.2,0.5",
        "--length-bonuses",
        "0,1",
        "--beam",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "tune.json").read_text())
    assert len(record["rows"]) == 4 and record["rows"][0]["wer"] <= record["rows"][-1]["wer"]
    assert {r["lm_weight"] for r in record["rows"]} == {0.2, 0.5}
    assert record["chosen"]["lm_weight"] == record["rows"][0]["lm_weight"]
    assert "decode:" in (out / "decode.yaml").read_text()
