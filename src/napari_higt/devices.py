"""Choosing the compute device: one rule for the CLI, the widgets and the engines."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Iterator

from napari_higt.errors import UserFacingError

__all__ = ["available_devices", "resolve_device", "import_torch_stack", "cpu_heap_blocks"]

_IMPORT_LOCK = threading.Lock()
_HEAP_LOCK = threading.Lock()
_heap_depth = 0
# mallopt parameter and glibc's default for it (malloc.c: M_MMAP_MAX, DEFAULT_MMAP_MAX).
_M_MMAP_MAX, _DEFAULT_MMAP_MAX = -4, 65536


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def cpu_heap_blocks() -> Iterator[bool]:
    """Serve large CPU blocks from the heap while a model trains or predicts (glibc only).

    glibc maps every block over 32 MB straight from the system and unmaps it when freed, so
    each large activation of a big slide graph faults its pages in afresh; below that size
    freed blocks are reused. A 64k-patch HIGT step allocates hundreds of such blocks and
    spent a fifth of its time in page faults, which made its cost grow faster than its graph
    (``benchmarks/bench_model.py``). Inside this scope large blocks come from the heap and
    are reused like small ones; on leaving the outermost scope mapping is allowed again and
    the freed heap is returned to the system (``malloc_trim``), so the process does not keep
    its peak. Nested and concurrent scopes share one setting. Yields whether it applies
    (False off glibc, where it does nothing).
    """
    global _heap_depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _HEAP_LOCK:
        if _heap_depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
        _heap_depth += 1
    try:
        yield True
    finally:
        with _HEAP_LOCK:
            _heap_depth -= 1
            if _heap_depth == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.malloc_trim(0)


def import_torch_stack() -> None:
    """Import torch and PyTorch Geometric, one thread at a time.

    Two threads importing PyTorch Geometric at once (a model warming up while a graph is
    built) can see each other's half-initialised modules ("partially initialized module
    'torch_geometric' has no attribute ..."): Python's per-module import locks do not cover
    its circular imports. Background jobs call this first: the second waits until the first
    has finished importing; later calls cost a lock and two dictionary lookups.
    """
    with _IMPORT_LOCK:
        import torch  # noqa: F401
        import torch_geometric  # noqa: F401


def available_devices() -> list[str]:
    """Devices this PyTorch can use, best first: ``cuda:N``..., ``mps``, ``cpu``."""
    import torch

    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def resolve_device(device=None):
    """A ``torch.device`` from ``"auto"``/None (cuda > mps > cpu) or an explicit name.

    Raises
    ------
    UserFacingError
        When an accelerator is asked for that this machine does not have.
    """
    import torch

    if device is None or str(device) == "auto":
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserFacingError(f"unknown device {device!r} ({exc}); use auto, cuda or cpu") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserFacingError(
            f"device {device!r} was asked for but this PyTorch sees no CUDA GPU; use cpu or auto"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserFacingError(
            f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA GPU(s) found"
        )
    if dev.type == "mps" and "mps" not in available_devices():
        raise UserFacingError("device 'mps' was asked for but Apple MPS is not available")
    return dev
