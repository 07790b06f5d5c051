"""Frame-budget batching: length-sorted buckets, batches capped in padded frames, shuffled order.

Padding wastes compute in proportion to the length spread inside a batch, so utterances are
sorted by length and cut into consecutive batches whose *padded* size (items x longest) stays
under `max_frames`. Only the order of the batches is shuffled, with a generator seeded from
`(seed, epoch)`, except in the first `sortagrad` epochs, which run shortest batch first
(SortaGrad, Amodei et al. 2016: short utterances get an attention decoder aligned before long
ones can pull it onto a few frames). The order of any epoch can be rebuilt from two integers,
which is what exact resume needs (no generator state to carry around), and every DDP rank
computes the same order and takes its own share.

Example:
    >>> sampler = FrameBatchSampler([300, 120, 500, 110], max_frames=1000, seed=0)
    >>> sorted(sorted(b) for b in sampler)
    [[0, 1, 3], [2]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def make_batches(lengths: Sequence[int], max_frames: int) -> list[list[int]]:
    """Cut length-sorted indices into batches with items * longest <= max_frames.

    An utterance longer than `max_frames` gets a batch of its own (it is never dropped here;
    overlong utterances are filtered by the dataset with a count printed).
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[index]  # sorted ascending: the newcomer is the longest
        if current and (len(current) + 1) * longest > max_frames:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class FrameBatchSampler:
    """Yields lists of dataset indices; each list is one batch of at most `max_frames` frames.

    Args:
        lengths: frames of each utterance, in dataset order.
        max_frames: cap on padded frames per batch (batch size x longest utterance).
        seed: base of the per-epoch shuffle.
        shuffle: shuffle the batch order (training) or keep it length-sorted (evaluation).
        rank: this process's DDP rank.
        world_size: number of DDP processes; each takes every `world_size`-th batch. With
            `pad`, the list is padded with batches from its start so every rank runs the same
            number of steps (DDP hangs if one rank finishes early); evaluation sets it False,
            so every batch is scored exactly once.
        sortagrad: epochs (from 0) whose batches come shortest first instead of shuffled.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        sortagrad: int = 0,
        pad: bool = True,
    ) -> None:
        if max_frames <= 0:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        self.batches = make_batches(lengths, max_frames)
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.sortagrad = sortagrad
        self.pad = pad
        self.epoch = 0
        self.start = 0  # batches of this epoch already consumed (mid-epoch resume)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order; skip its first `start` batches (of this rank)."""
        self.epoch = epoch
        self.start = start

    def epoch_order(self) -> list[list[int]]:
        """All batches of the current epoch for this rank, before skipping `start`."""
        batches = self.batches
        if self.shuffle and self.epoch >= self.sortagrad:  # else make_batches' ascending order
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            perm = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in perm]
        if self.pad:
            per_rank = -(-len(batches) // self.world_size)  # ceil
            batches = batches + batches[: per_rank * self.world_size - len(batches)]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.epoch_order()[self.start :]

    def __len__(self) -> int:
        if self.pad:
            return max(0, -(-len(self.batches) // self.world_size) - self.start)
        return max(0, len(self.batches[self.rank :: self.world_size]) - self.start)
