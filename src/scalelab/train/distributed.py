"""Many processes: the same training entry under `torchrun` becomes data-parallel (DDP).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; when they are present the process group starts
(gloo on CPU, NCCL on GPU) and every rank trains on its slice of each global batch. DDP averages
gradients over ranks, and each rank's loss is the mean over its slice, so the update equals the
single-process update on the whole batch up to floating-point reduction order. Only rank 0 writes
files. Without those variables everything here is a no-op and the run is a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun set up (if any) and return this process's place in it."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def device_for(info: DistInfo, device: torch.device) -> torch.device:
    """Each rank of a multi-GPU run takes the GPU of its local rank."""
    if device.type == "cuda" and info.enabled:
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return device


def wrap_model(model: nn.Module, info: DistInfo) -> nn.Module:
    if not info.enabled:
        return model
    dev = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a small tensor over ranks (identity in a single process)."""
    if info.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
