"""Row chunks for kernels that would otherwise build large temporaries.

A fresh tensor of tens of MB costs more than its arithmetic: the CPU allocator maps it
page by page from the system (glibc serves blocks over 32 MB with ``mmap``) and every page
faults in on first touch. Kernels that walk rows in chunks of a few MB reuse the same small
blocks from the heap, and each chunk stays in cache between the steps that read it.
"""

from __future__ import annotations

__all__ = ["CHUNK_BYTES", "chunk_rows", "row_chunks"]

# Bytes of one chunk temporary: small enough to be reused from the allocator's heap.
CHUNK_BYTES = 1 << 22


def chunk_rows(channels: int, itemsize: int) -> int:
    """Rows per chunk so that a (rows, channels) temporary is about ``CHUNK_BYTES``."""
    return max(1, CHUNK_BYTES // max(channels * itemsize, 1))


def row_chunks(n: int, channels: int, itemsize: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the row chunks of an (n, channels) tensor (one if it is small)."""
    step = chunk_rows(channels, itemsize)
    return [(i, min(i + step, n)) for i in range(0, n, step)] or [(0, 0)]
