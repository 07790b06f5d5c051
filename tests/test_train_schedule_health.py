"""Learning-rate and sampling schedules; attention-health scores and the checkpoint keeper."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from asrkit.config import AttentionConfig, OptimConfig, TrainConfig
from asrkit.io import UserError
from asrkit.testing import tiny_config, tiny_model
from asrkit.tokenizer import CharTokenizer
from asrkit.training.checkpoints import CheckpointKeeper
from asrkit.training.epoch import RunState, record_if_best
from asrkit.training.health import alignment_health, is_aligned, not_aligned_advice
from asrkit.training.schedule import build_optimizer, guide_weight_at, lr_at, sampling_prob_at


@pytest.mark.parametrize("decay", ["noam", "cosine", "constant"])
def test_lr_warms_up_to_the_peak_and_never_exceeds_it(decay: str) -> None:
    cfg = OptimConfig(lr=1e-3, warmup_steps=100, decay=decay, min_lr=1e-5)
    rates = [lr_at(step, cfg, total_steps=1000) for step in range(1000)]
    assert rates[99] == pytest.approx(1e-3)
    assert all(a < b for a, b in itertools.pairwise(rates[:100]))
    assert max(rates) <= 1e-3 + 1e-12 and min(rates[100:]) >= 1e-5 - 1e-12


def test_optimizer_follows_the_schedule_and_rejects_unknown_names() -> None:
    model = torch.nn.Linear(2, 2)
    cfg = OptimConfig(lr=1e-2, warmup_steps=4, decay="noam")
    optimizer, scheduler = build_optimizer(list(model.parameters()), cfg, 100)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([lr_at(s, cfg) for s in range(6)])
    with pytest.raises(UserError, match=r"optim\.decay"):
        build_optimizer(list(model.parameters()), OptimConfig(decay="linear"), 10)
    with pytest.raises(UserError, match=r"optim\.optimizer"):
        build_optimizer(list(model.parameters()), OptimConfig(optimizer="sgd"), 10)


def test_scheduled_sampling_ramps_after_its_warm_up() -> None:
    cfg = TrainConfig(sampling_prob=0.4, sampling_warmup_epochs=2)
    assert [sampling_prob_at(e, cfg) for e in range(6)] == pytest.approx([0, 0, 0.2, 0.4, 0.4, 0.4])
    assert sampling_prob_at(10, TrainConfig()) == 0.0


def test_health_scores_tell_diagonal_from_stuck_and_uniform_attention() -> None:
    diagonal = torch.eye(10).repeat_interleave(3, dim=1)  # (10, 30): token i -> frames 3i..3i+2
    diagonal = diagonal / diagonal.sum(1, keepdim=True)
    good = alignment_health(diagonal)
    assert good["diagonality"] > 0.99 and good["monotonicity"] == 1.0 and is_aligned(good)
    stuck = torch.zeros(10, 30)
    stuck[:, 4] = 1.0
    assert alignment_health(stuck)["diagonality"] == 0.0 and not is_aligned(alignment_health(stuck))
    uniform = alignment_health(torch.full((10, 30), 1 / 30))
    assert uniform["focus"] == pytest.approx(1 / 30) and not is_aligned(uniform)
    # A 12-frame window sliding down the diagonal: diagonal and monotonic, but not listening.
    band = torch.zeros(20, 240)
    for u in range(20):
        band[u, u * 12 : u * 12 + 12] = 1 / 12
    wide = alignment_health(band)
    assert wide["diagonality"] > 0.99 and wide["monotonicity"] == 1.0 and not is_aligned(wide)
    backwards = alignment_health(diagonal.flip(0))
    assert backwards["diagonality"] < -0.99 and backwards["monotonicity"] < 0.2
    # Hard monotonic attention: one-hot steps, then an eos step that attends nowhere.
    hard = torch.zeros(11, 30)
    hard[torch.arange(10), torch.arange(10) * 3] = 1.0
    scores = alignment_health(hard)
    assert scores["diagonality"] > 0.99 and scores["monotonicity"] == 1.0 and is_aligned(scores)
    assert scores["focus"] == pytest.approx(10 / 11)
    assert not is_aligned(alignment_health(torch.zeros(10, 30)))  # attends nowhere at all
    # Location attention parking steps on the last frame and resuming where it read: still
    # monotonic. Landing well before the place it had read to is not.
    parked = torch.zeros(10, 30)
    parked[torch.arange(10), torch.tensor([0, 3, 29, 6, 9, 29, 29, 12, 15, 18])] = 1.0
    assert alignment_health(parked)["monotonicity"] == 1.0
    parked[7] = 0.0
    parked[7, 1] = 1.0  # back from the sink to frame 1, far behind frame 9
    assert alignment_health(parked)["monotonicity"] == pytest.approx(8 / 9)


def test_not_aligned_advice_names_the_numbers_and_the_local_location_score() -> None:
    health = {"diagonality": -0.37, "monotonicity": 1.0, "focus": 1.0}
    advice = not_aligned_advice(health, 531, AttentionConfig(kind="local"))
    assert "(local) has not aligned after 531 steps" in advice
    assert "diagonality -0.37" in advice and "attention.score=location" in advice
    for done in (AttentionConfig(kind="local-m", score="location"), AttentionConfig()):
        assert "attention.score=location" not in not_aligned_advice(health, 531, done)


def test_keeper_keeps_the_best_k_and_averages_them(tmp_path: Path) -> None:
    model = tiny_model("dot", vocab_size=12)
    tok = CharTokenizer(["<blank>", "<eos>", "<unk>", *"ABCDEFGHI"])
    keeper = CheckpointKeeper(tmp_path, model, tiny_config("dot"), tok, keep_best=2)
    for epoch, wer in [(1, 0.9), (2, 0.5), (3, 0.7), (4, 0.95)]:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
        keeper.add_epoch(epoch, wer, cer=wer / 2)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch-*.pt"))
    assert kept == ["epoch-2.pt", "epoch-3.pt"]
    final = torch.load(keeper.finalize(), weights_only=False)["model"]
    name = next(n for n, _ in model.named_parameters())
    assert torch.allclose(final[name], torch.full_like(final[name], 2.5))  # mean of epochs 2, 3


def test_keeper_orders_epochs_at_or_above_100_percent_wer_by_dev_loss(tmp_path: Path) -> None:
    # The mini run: epochs 5 and 8 had not aligned (WER 105%, 107%), epoch 10 had just aligned
    # and looped in greedy decoding (WER 215%) with the lowest dev loss; the WER has no say.
    model = tiny_model("dot", vocab_size=12)
    tok = CharTokenizer(["<blank>", "<eos>", "<unk>", *"ABCDEFGHI"])
    keeper = CheckpointKeeper(tmp_path, model, tiny_config("dot"), tok, keep_best=2)
    for epoch, wer, cer, loss in [(5, 1.05, 0.85, 2.0), (8, 1.07, 0.79, 1.9), (10, 2.15, 1.5, 1.8)]:
        keeper.add_epoch(epoch, wer, cer, loss=loss)
    assert [c.epoch for c in keeper.best] == [10, 8]
    keeper.add_epoch(11, 0.6, 0.3, loss=1.7)  # a real WER beats every garbage epoch
    assert [c.epoch for c in keeper.best] == [11, 10]


def test_early_stopping_counts_a_lower_dev_loss_at_100_percent_wer_as_progress() -> None:
    # Early stopping ranks epochs as the keeper does: while greedy decoding still loops
    # (WER >= 100%), a falling dev loss is progress; the first real WER beats all of them.
    state = RunState()
    scores = [(1.05, 0.85, 2.0), (1.07, 0.79, 1.9), (2.15, 1.5, 1.8), (1.01, 0.7, 1.85)]
    assert [record_if_best(state, *s) for s in scores] == [True, True, True, False]
    assert (state.best_wer, state.best_loss) == (2.15, 1.8)
    assert record_if_best(state, 0.6, 0.3, 1.9)
    assert not record_if_best(state, 0.6, 0.35, 1.0)  # CER breaks a WER tie, not the loss


def test_guide_weight_fades_linearly_to_zero() -> None:
    cfg = TrainConfig(guide_weight=1.0, guide_epochs=4)
    assert [guide_weight_at(e, cfg) for e in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert guide_weight_at(0, TrainConfig()) == 0.0  # off by default
