"""Choosing the compute device: one rule for the CLI, the widgets and the engines."""

from __future__ import annotations

import threading

from napari_higt.errors import UserFacingError

__all__ = ["available_devices", "resolve_device", "import_torch_stack"]

_IMPORT_LOCK = threading.Lock()


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
