"""How many CPU threads the heavy work uses, so that it never oversubscribes a shared CPU.

PyTorch's intra-op pool and the BLAS / OpenMP pools of numpy, scipy and scikit-learn each start one thread per core.
Beside another busy process (a second job, Dask workers, the viewer drawing) that oversubscribes the cores, and
spinning OpenMP threads then wait on each other: a training step on a 2-core CPU ran 2x slower with two threads than
with one beside one busy process, and more beside more (``benchmarks/threads.py``). :class:`ThreadBudget` gives the
work the cores that are free now (the cores this process may use, less what other processes keep busy), sets
PyTorch and the BLAS pools (threadpoolctl) to that, re-measures while training runs, and restores both afterwards.

Pure core (psutil, threadpoolctl, torch): imports neither Qt nor napari.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import psutil
import torch
from threadpoolctl import ThreadpoolController

__all__ = ["ThreadBudget", "available_cores", "free_cores"]

#: how long the first measurement of the other processes' load watches the CPU (seconds)
FIRST_SAMPLE_SECONDS = 0.2
#: a measurement this recent (seconds) is reused, so that many short calls (predict in a loop) do not each wait
RECENT_SECONDS = 5.0
_recent: tuple[float, float] | None = None  #: (time.monotonic(), cores busy elsewhere) of the last measurement


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one, capped by a container's CPU
    quota (Linux cgroups), which the affinity does not show."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup's quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _cpus() -> list[int] | None:
    """The CPU numbers of this process's affinity (None where the OS does not say)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return None


class _CpuClock:
    """Busy CPU seconds of the cores this process may use, and of this process, since the last reading."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cpus = _cpus()
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        per_cpu = psutil.cpu_times(percpu=True)
        chosen = [per_cpu[i] for i in self._cpus if i < len(per_cpu)] if self._cpus else per_cpu
        busy = sum(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) for t in chosen)
        own = self._process.cpu_times()
        return time.perf_counter(), busy, own.user + own.system

    def busy_elsewhere(self) -> float | None:
        """Cores kept busy by other processes since the last reading (None when too little time passed)."""
        now = self._read()
        wall, busy, own = (b - a for a, b in zip(self._last, now, strict=True))
        if wall < 0.05:
            return None
        self._last = now
        return max(0.0, (busy - own) / wall)


def free_cores(busy: float, cores: int | None = None) -> int:
    """Threads to use when other processes keep ``busy`` cores busy: the rest of the cores, at least one."""
    cores = available_cores() if cores is None else cores
    return int(min(cores, max(1, math.floor(cores - busy + 0.5))))


class ThreadBudget:
    """PyTorch and BLAS threads for a block of heavy work, chosen from the free cores (or fixed).

    Use as a context manager; :meth:`adapt` re-measures (e.g. every few hundred training steps) and changes the
    number when other processes came or went. The previous settings come back on exit.

    Parameters
    ----------
    threads : int, optional
        A fixed number of threads; None chooses from the cores free now and adapts.
    """

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.fixed = threads
        self.threads = threads or 1
        self._clock: _CpuClock | None = None
        self._saved_torch: int | None = None
        self._limits = None

    def __enter__(self) -> ThreadBudget:
        self._saved_torch = torch.get_num_threads()
        if self.fixed is None:
            global _recent
            self._clock = _CpuClock()
            if _recent is not None and time.monotonic() - _recent[0] < RECENT_SECONDS:
                busy = _recent[1]
            else:
                time.sleep(FIRST_SAMPLE_SECONDS)
                busy = self._clock.busy_elsewhere() or 0.0
                _recent = (time.monotonic(), busy)
            self._apply(free_cores(busy))
        else:
            self._apply(self.fixed)
        return self

    def adapt(self) -> int:
        """Re-measure the other processes' load since the last call and follow it; returns the threads now."""
        if self._clock is not None:
            busy = self._clock.busy_elsewhere()
            if busy is not None and (threads := free_cores(busy)) != self.threads:
                self._apply(threads)
        return self.threads

    def _apply(self, threads: int) -> None:
        self.threads = threads
        torch.set_num_threads(threads)
        if self._limits is not None:
            self._limits.restore_original_limits()
        self._limits = ThreadpoolController().limit(limits=threads)

    def __exit__(self, *exc) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None
        if self._saved_torch is not None:
            torch.set_num_threads(self._saved_torch)
