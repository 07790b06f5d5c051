"""DDP: 2 gloo processes on half-batches reach the parameters (and count the audio) of 1
process on whole batches, and score the dev set as 1 process does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from asrkit.decoding.greedy import greedy_search
from asrkit.decoding.options import DecodeOptions
from asrkit.model.las import LAS, Batch
from asrkit.testing import dummy_batch, tiny_model, tiny_transformer_config
from asrkit.tokenizer import CharTokenizer
from asrkit.training.distributed import DistInfo, sum_all, wrap
from asrkit.training.loop import EvalResult, Optimisation, Progress, evaluate, train_one_epoch

STEPS = 3
HALF = 2  # utterances per rank and step


def _halves(step: int) -> tuple[Batch, Batch]:
    # Same batch size -> same lengths (dummy_batch cycles fixed lengths), so the token-mean CE
    # and the per-utterance-mean CTC of the whole batch equal the mean of the two halves' losses.
    return dummy_batch(HALF, seed=2 * step), dummy_batch(HALF, seed=2 * step + 1)


def _joined(a: Batch, b: Batch) -> Batch:
    return Batch(
        torch.cat([a.feats, b.feats]),
        torch.cat([a.feat_lengths, b.feat_lengths]),
        torch.cat([a.tokens, b.tokens]),
        torch.cat([a.token_lengths, b.token_lengths]),
        a.ids + b.ids,
    )


def _run(model: torch.nn.Module, params: list[torch.nn.Parameter], batches: list[Batch]) -> float:
    """Trains on `batches`; returns the audio seconds the loop counted (all ranks)."""
    # Plain SGD: Adam divides by sqrt(v), which turns float noise in near-zero gradients into
    # full-size steps, so it cannot show that the *gradients* agree to 1e-6.
    optimizer = torch.optim.SGD(params, lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    opt = Optimisation(optimizer, scheduler, None, None, 1.0, 1, 0.01)
    progress = Progress()
    train_one_epoch(model, batches, opt, progress, device="cpu")
    return progress.audio_seconds


def _join(rank: int, out: str) -> None:
    # A file store beside the output. With TCP on a port picked beforehand (which another
    # process may take before rank 0 listens), about 1 run of this file in 15-30 lost a rank to
    # SIGABRT ("terminate called without an active exception"), at least once within a second
    # of the first test's start; a file store has no port to lose.
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}.store", rank=rank, world_size=2)


def _model(kind: str) -> LAS:
    """The same seeded weights in every process: the LSTM-LAS or the Transformer model."""
    if kind == "lstm":
        return tiny_model("location", seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return LAS(tiny_transformer_config("global"), 12)


def _worker(rank: int, out: str, kind: str) -> None:
    _join(rank, out)
    try:
        model = _model(kind)
        ddp = wrap(model, DistInfo(rank=rank, world_size=2), "cpu")
        audio = _run(ddp, list(model.parameters()), [_halves(s)[rank] for s in range(STEPS)])
        if rank == 0:
            torch.save({"state": model.state_dict(), "audio_seconds": audio}, out)
        # Leave together, as the trainer does (run.py), rather than tear gloo down under a peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_two_gloo_processes_match_one_process_on_the_combined_batch(
    tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(str(out), kind), nprocs=2, join=True)
    model = _model(kind)
    audio = _run(model, list(model.parameters()), [_joined(*_halves(s)) for s in range(STEPS)])
    saved = torch.load(out)
    ddp_state = saved["state"]
    # throughput under DDP counts every rank's audio, not rank 0's half
    assert saved["audio_seconds"] == pytest.approx(audio, rel=1e-9)
    initial = _model(kind).state_dict()
    moved = 0
    for key, value in model.state_dict().items():
        assert torch.allclose(value, ddp_state[key], atol=1e-6), key
        moved += int(not torch.equal(value, initial[key]))
    assert moved > 0  # training did change the weights


DEV_TOKENIZER = CharTokenizer.train(["ABC DEFG"])


def _dev_batches() -> list[Batch]:
    return [dummy_batch(3, DEV_TOKENIZER.vocab_size, seed=100 + i) for i in range(5)]


def _evaluate(batches: list[Batch], reduce: Callable[[list[float]], list[float]]) -> EvalResult:
    tokenizer = DEV_TOKENIZER
    model = tiny_model("location", vocab_size=tokenizer.vocab_size, seed=0)
    opts = DecodeOptions(beam=1, max_len_ratio=1.0)

    def decode(model: LAS, batch: Batch) -> list[str]:
        hyps = greedy_search(model, batch.feats, batch.feat_lengths, opts, tokenizer)
        return [h.text for h in hyps]

    return evaluate(model, batches, tokenizer, decode, device="cpu", reduce=reduce)


def _eval_worker(rank: int, out: str) -> None:
    _join(rank, out)
    try:
        share = _dev_batches()[rank::2]  # 3 batches on rank 0, 2 on rank 1
        result = _evaluate(share, lambda counts: sum_all(counts))
        torch.save(result, f"{out}.{rank}")
        dist.barrier()  # leave together (see _worker)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_scoring_halves_of_the_dev_set_report_the_whole_set(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    mp.spawn(_eval_worker, args=(str(out),), nprocs=2, join=True)
    whole = _evaluate(_dev_batches(), lambda counts: counts)
    alone = _evaluate(_dev_batches()[0::2], lambda counts: counts)
    assert alone != whole  # one rank's share alone scores differently
    for rank in range(2):
        shared = torch.load(f"{out}.{rank}", weights_only=False)
        for name in ("loss", "acc", "cer", "wer"):
            assert getattr(shared, name) == pytest.approx(getattr(whole, name), rel=1e-9), name
