"""``torchrun`` support: the rank layout and its initialisation (a no-op in one process)."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DistContext", "init_distributed"]


@dataclass
class DistContext:
    """Rank layout; ``world_size == 1`` means no ``torch.distributed``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls) -> DistContext:
        """The layout of the running process group (one process when none is initialised)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", dist.get_rank())))
        return cls()

    def all_sum(self, value: float) -> float:
        """Sum of ``value`` over the ranks."""
        if self.world_size == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on one."""
        return self.all_sum(1.0 if flag else 0.0) > 0 if self.world_size > 1 else flag

    def barrier(self) -> None:
        """Wait for every rank (a no-op in one process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


def init_distributed() -> DistContext:
    """Initialise ``torch.distributed`` from the ``torchrun`` environment (gloo on CPU, nccl
    on CUDA); a no-op returning a single-process context outside ``torchrun``."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return DistContext.current()
