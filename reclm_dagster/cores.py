"""How many threads a CPU-bound step may use."""

from __future__ import annotations

import os


def default_jobs() -> int:
    """All cores, or one when other processes already keep them busy (threads then wait on each other)."""
    cores = os.cpu_count() or 1
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > cores + 0.5
    return 1 if busy else cores
