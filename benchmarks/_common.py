"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(func: Callable[[], object], repeat: int = 3) -> float:
    """Fastest wall time of ``repeat`` calls (seconds): the least noisy figure on a shared box."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)
