"""Data-parallel set-up: the same training code runs as one process or under ``torchrun``.

``torchrun --nproc_per_node=N -m robo_policies train ...`` sets ``RANK`` and ``WORLD_SIZE``;
we then join a process group (gloo on CPU, NCCL on GPU), each process samples its own share
of every batch, and DistributedDataParallel averages gradients so all replicas stay equal.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, how many processes, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; otherwise a single process."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return DistInfo(rank, world_size, torch.device("cuda", local_rank))
    return DistInfo(rank, world_size, torch.device("cpu"))


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


def teardown(info: DistInfo) -> None:
    if info.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of all parameters: equal digests mean bit-identical replicas."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def gather(info: DistInfo, value: Any) -> list[Any]:
    """``value`` from every process, in rank order (a picklable object)."""
    if info.world_size == 1:
        return [value]
    everyone: list[Any] = [None] * info.world_size
    dist.all_gather_object(everyone, value)
    return everyone
