"""Torch's thread count for one block of work, restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch threads (None or 0: unchanged), then restore the
    process-wide setting as it was. On a machine shared with other busy processes fewer threads
    can be faster: oversubscribed OpenMP threads wait on each other."""
    threads = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
