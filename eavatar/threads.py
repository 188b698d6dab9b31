"""Compute threads that do not fight other processes for the cores.

torch's and numba's OpenMP threads wait on each other at every parallel region: on 2 cores, two
threads beside one other busy process make a training step several times slower than one thread
would (docs/benchmarks.md, "Threads"). Training therefore watches how much of its cores other
processes keep busy (from /proc/stat through psutil: the cores' busy time less this process's
own) and runs on the cores they leave free, re-checked as it goes.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from typing import Iterator

import numba
import psutil
import torch


def usable_cores() -> list[int]:
    """The CPUs this process may run on (its affinity; all where the platform has none)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return list(range(os.cpu_count() or 1))


def threads_for(cores: int, others: float) -> int:
    """Threads for ``cores`` cores of which other processes keep ``others`` busy: the rest,
    rounded to whole cores (half a core or more counts as taken), at least one."""
    return max(1, min(cores, cores - math.floor(others + 0.5)))


def set_threads(n: int) -> None:
    """Run torch's and numba's compute on ``n`` threads (numba's first: with an OpenMP threading
    layer it also sets the OpenMP count that torch reads)."""
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(n)


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run torch's and numba's compute on ``n`` threads (None: leave as is), then restore."""
    before = torch.get_num_threads(), numba.get_num_threads()
    if n is not None:
        set_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before[1])
        torch.set_num_threads(before[0])


class CoreWatch:
    """How many of this process's cores other processes kept busy between two looks.

    A look costs two reads of /proc (microseconds); the window is whatever passed since the
    previous look, so a caller that looks every few hundred steps measures those steps.
    """

    def __init__(self, cores: list[int] | None = None):
        self.cores = usable_cores() if cores is None else cores
        self.process = psutil.Process()
        self.last = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        per_cpu = psutil.cpu_times(percpu=True)
        busy = 0.0
        for i in self.cores:
            if i < len(per_cpu):
                t = per_cpu[i]
                busy += sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        own = self.process.cpu_times()
        return busy, own.user + own.system, time.monotonic()

    def others(self) -> float:
        """Cores other processes (and the hypervisor, as steal) kept busy since the previous look."""
        busy, own, now = self._sample()
        busy0, own0, then = self.last
        self.last = busy, own, now
        if now - then <= 0:
            return 0.0
        return max(0.0, (busy - busy0 - (own - own0)) / (now - then))


class ThreadGovernor:
    """Keeps torch's and numba's thread count at the cores other processes leave free.

    ``fixed`` > 0 pins the count instead (no watching). ``update`` re-decides from the window
    since the previous call and returns the new count where it changed, else None.
    """

    def __init__(self, fixed: int = 0, watch: CoreWatch | None = None):
        self.fixed = fixed
        self.watch = None if fixed > 0 else (watch or CoreWatch())
        self.threads = fixed if fixed > 0 else torch.get_num_threads()
        self.last_others = 0.0

    def update(self) -> int | None:
        if self.watch is None:
            wanted = self.fixed
        else:
            self.last_others = self.watch.others()
            wanted = threads_for(len(self.watch.cores), self.last_others)
        if wanted == torch.get_num_threads() and wanted == self.threads:
            return None
        set_threads(wanted)
        self.threads = wanted
        return wanted

    def describe(self) -> str:
        if self.watch is None:
            return f"compute threads: {self.threads} (fixed)"
        return f"compute threads: {self.threads} of {len(self.watch.cores)} cores (other processes kept {self.last_others:.1f} busy)"
