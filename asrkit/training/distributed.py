"""Data-parallel training under `torchrun`: detection, process group, and small collectives.

`torchrun --nproc_per_node N -m asrkit.cli.main train ...` sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; the same command without torchrun runs one process. NCCL is used
on GPUs and gloo on the CPU. Only rank 0 writes files or prints progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """Read torchrun's environment variables."""
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def setup(info: DistInfo, device: str) -> str:
    """Join the process group (if distributed); returns this process's device."""
    if not info.enabled:
        return device
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
        device = f"cuda:{info.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return device


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo, device: str) -> nn.Module:
    """DDP-wrap `model` when distributed; DDP broadcasts rank 0's weights at construction."""
    if not info.enabled:
        return model
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def any_rank(flag: bool, info: DistInfo, device: str = "cpu") -> bool:
    """True on every rank if `flag` is True on any rank (stop decisions must agree, or the
    ranks that keep going wait forever in the next all-reduce)."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)  # NCCL needs a GPU tensor
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def sum_over_ranks(value: float, device: str = "cpu") -> float:
    """`value` summed over every rank of the process group (itself when not distributed).
    Every rank must call it at the same point, like any collective."""
    return sum_all([value], device)[0]


def sum_all(values: list[float], device: str = "cpu") -> list[float]:
    """Each of `values` summed over every rank, in one all-reduce (as `sum_over_ranks`)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    total = torch.tensor(values, dtype=torch.float64, device=device)  # NCCL: a GPU tensor
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.tolist()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
