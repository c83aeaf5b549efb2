"""One process per device under ``torchrun``: process-group set-up, sums across processes, barriers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.errors import InputError

if TYPE_CHECKING:
    import torch


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _init_distributed(device_pref: str) -> tuple[_Dist, "torch.device"]:
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available())
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda was asked for but PyTorch sees no CUDA GPU", hint="use --device cpu")
    if world <= 1:
        return _Dist(), torch.device("cuda" if use_cuda else "cpu")
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    info = _Dist(dist.get_rank(), dist.get_world_size(), local_rank)
    return info, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")


def _all_sum(values: list[float], dist_info: _Dist, device: "torch.device") -> list[float]:
    if not dist_info.active:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _barrier(dist_info: _Dist) -> None:
    if dist_info.active:
        import torch.distributed as dist

        dist.barrier()
