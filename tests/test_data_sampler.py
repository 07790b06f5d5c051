"""Frame-budget batching: every utterance once per epoch, caps respected, exact re-creation."""

from __future__ import annotations

import random

import pytest

from asrkit.data.sampler import FrameBatchSampler, make_batches

_RNG = random.Random(0)
LENGTHS = [_RNG.randint(20, 400) for _ in range(200)]


def test_batches_respect_the_frame_cap_and_cover_every_utterance() -> None:
    batches = make_batches(LENGTHS, max_frames=1500)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    for batch in batches:
        assert len(batch) * max(LENGTHS[i] for i in batch) <= 1500


def test_an_overlong_utterance_gets_a_batch_of_its_own() -> None:
    batches = make_batches([10, 5000, 12], max_frames=100)
    assert [1] in batches and sorted(i for b in batches for i in b) == [0, 1, 2]


def test_order_depends_only_on_seed_and_epoch() -> None:
    a, b = FrameBatchSampler(LENGTHS, 1500, seed=3), FrameBatchSampler(LENGTHS, 1500, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)  # a new epoch reshuffles
    assert sorted(map(sorted, a)) == sorted(map(sorted, b))  # ... the same batches


def test_start_skips_the_batches_already_done() -> None:
    sampler = FrameBatchSampler(LENGTHS, 1500, seed=1)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_epoch(4, start=5)
    assert list(sampler) == full[5:] and len(sampler) == len(full) - 5


def test_evaluation_order_is_length_sorted() -> None:
    sampler = FrameBatchSampler(LENGTHS, 1500, shuffle=False)
    longest = [max(LENGTHS[i] for i in b) for b in sampler]
    assert longest == sorted(longest)


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_share_an_epoch_with_equal_step_counts(world: int) -> None:
    shards = []
    for rank in range(world):
        sampler = FrameBatchSampler(LENGTHS, 1500, seed=7, rank=rank, world_size=world)
        sampler.set_epoch(1)
        shards.append(list(sampler))
    assert len({len(s) for s in shards}) == 1  # DDP needs the same number of steps everywhere
    single = FrameBatchSampler(LENGTHS, 1500, seed=7)
    single.set_epoch(1)
    seen = [tuple(b) for s in shards for b in s]
    assert set(seen) == {tuple(b) for b in single}


@pytest.mark.parametrize("world", [2, 4])
def test_unpadded_evaluation_shards_score_every_batch_exactly_once(world: int) -> None:
    single = list(FrameBatchSampler(LENGTHS, 1000, shuffle=False))
    assert len(single) % world != 0  # else padding would add nothing and this test is empty
    shards = []
    for rank in range(world):
        sampler = FrameBatchSampler(
            LENGTHS, 1000, shuffle=False, rank=rank, world_size=world, pad=False
        )
        shards.append(list(sampler))
        assert len(sampler) == len(shards[-1])
    seen = sorted(tuple(b) for s in shards for b in s)
    assert seen == sorted(tuple(b) for b in single)


def test_sortagrad_epochs_run_shortest_first_then_shuffle() -> None:
    sampler = FrameBatchSampler(LENGTHS, 1500, seed=2, sortagrad=2)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        longest = [max(LENGTHS[i] for i in b) for b in sampler]
        assert longest == sorted(longest)
    sampler.set_epoch(2)
    longest = [max(LENGTHS[i] for i in b) for b in sampler]
    assert longest != sorted(longest)
    sampler.set_epoch(1, start=4)  # resume inside a sorted epoch
    assert list(sampler) == make_batches(LENGTHS, 1500)[4:]
