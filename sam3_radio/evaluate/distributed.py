"""Process groups for sharded evaluation: one process per GPU under `torchrun`, or one alone.

Under `torchrun` the environment contains RANK, WORLD_SIZE and LOCAL_RANK, and
`init_distributed` joins the group (NCCL on CUDA, gloo on CPU). A caller that
already created a group (tests spawn gloo processes themselves) keeps it.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the evaluation group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    def barrier(self) -> None:
        """Wait until every process reaches this point (no-op in a single process)."""
        if self.active:
            dist.barrier()

    def shard(self, items: Sequence[T]) -> list[T]:
        """Return this rank's items: every `world_size`-th one, starting at `rank`."""
        return list(items[self.rank :: self.world_size])

    def device(self, requested: str) -> str:
        """Resolve 'auto' to this rank's GPU (cuda:LOCAL_RANK) or the CPU."""
        if requested != "auto":
            return requested
        if torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return "cpu"


def init_distributed(device: str = "auto", timeout_minutes: float = 180) -> DistributedContext:
    """Join the process group that `torchrun` describes, or run as a single process.

    Args:
        device: the evaluation device; 'cpu' selects gloo, otherwise NCCL when CUDA exists.
        timeout_minutes: how long a process waits at a barrier for the slowest
            rank. Ranks finish their shards at different times, so this must
            exceed the largest difference in shard run time.
    """
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        )
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_nccl = device != "cpu" and torch.cuda.is_available()
    if use_nccl:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    backend = "nccl" if use_nccl else "gloo"
    dist.init_process_group(
        backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes)
    )
    logger.info("rank %d of %d joined the %s process group", rank, world_size, backend)
    return DistributedContext(rank, world_size, local_rank)
