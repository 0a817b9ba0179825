"""One thread policy for the process: how many threads every native library may run, from the cores it may use.

Why: torch (OpenMP, oneDNN, MKL), NumPy/SciPy (OpenBLAS), numba, OpenCV and FFmpeg each start a thread per
core by default and know nothing of each other, of ``taskset``/cpusets, of a container's CPU quota or of the
other jobs on the machine. OpenMP's threads also spin between parallel regions by default: on a busy machine
a spinning thread holds a core that the thread it waits for needs, and a network pass that takes
milliseconds on a quiet machine takes ten times longer. The policy:

* **usable cores** (:func:`usable_cores`): the CPUs of the process's affinity mask
  (``os.sched_getaffinity``) capped by the cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us``), rounded down, at least 1.
* **threads per process** (:class:`ThreadPlan`): the usable cores split evenly over the worker processes
  that run at once (``batch-process`` workers), at least 1 each.
* **waiting**: OpenMP's and OpenCV's threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``,
  ``KMP_BLOCKTIME=0``, OpenCV's ``OPENCV_THREAD_POOL_ACTIVE_WAIT_*=0``), so another job slows us in proportion
  to the cores it takes.

:func:`apply_thread_policy` writes the environment variables each library reads when it loads (OpenMP,
MKL, OpenBLAS, numba, OpenCV) and sets the run-time counts of the libraries already imported (torch
intra- and inter-op, OpenCV, numba). OpenMP reads its wait policy only when it loads, so the policy must be
applied before torch is first imported: each of the project's packages writes the environment when it is
first imported (:func:`ensure_thread_policy`, which comes before any of its modules imports torch), and every
command applies the whole policy when it builds its parser (:func:`pipelines.cli.make_parser`). :func:`decode_threads` gives FFmpeg's decoder thread count; :func:`prefetched`
runs an iterator (a decoder) in a background thread, ahead of its consumer. MediaPipe's Tasks
API has no thread setting; its graph uses its own small pool.

An explicit ``OMP_NUM_THREADS`` in the environment at start-up (a user's or a scheduler's choice) is
kept as the per-process thread count.

Imports only the standard library: it runs before the heavy libraries load.
"""
from __future__ import annotations

import math
import os
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = ["ThreadPlan", "cgroup_cpu_quota", "parse_cpu_max", "parse_cfs_quota", "usable_cores", "plan_threads", "thread_environment",
           "apply_thread_policy", "ensure_thread_policy", "current_plan", "decode_threads", "prefetched", "THREAD_COUNT_VARIABLES",
           "WAIT_VARIABLES"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
THREAD_COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                          "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")
"""Environment variables that fix a library's thread count when it loads."""
WAIT_VARIABLES = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER": "0",
                  "OPENCV_THREAD_POOL_ACTIVE_WAIT_MAIN": "0"}
"""Threads sleep as soon as a parallel region ends: GNU and Intel OpenMP, OpenCV's own thread pool."""

_USER_THREADS = os.environ.get("OMP_NUM_THREADS")  # as the process was started, before any policy wrote it
_plan: ThreadPlan | None = None


@dataclass(frozen=True)
class ThreadPlan:
    """Threads for one process.

    Attributes:
        cores: CPUs the whole job may use (affinity and quota, :func:`usable_cores`).
        workers: processes that share them (batch workers), at least 1.
        threads: threads each process runs in every library: ``max(1, cores // workers)``, or the
            user's ``OMP_NUM_THREADS``.
    """

    cores: int
    workers: int
    threads: int

    def __post_init__(self) -> None:
        for name in ("cores", "workers", "threads"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_cgroup_dirs(root: Path, controller: str, proc_cgroup: Path) -> list[Path]:
    """The process's cgroup folders for ``controller`` (v1) or the unified hierarchy (``controller=""``), the
    deepest first, then its ancestors up to the mount root (a quota may be set on any of them)."""
    text = _read(proc_cgroup) or ""
    dirs = []
    for line in text.splitlines():
        _, controllers, rel = line.split(":", 2)
        wanted = controller in controllers.split(",") if controller else controllers == ""
        if wanted:
            base = root / controller if controller else root
            path = base / rel.lstrip("/")
            while True:
                dirs.append(path)
                if path == base:
                    break
                path = path.parent
    return dirs


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """Cores allowed by the cgroup CPU quota (quota / period), or None without a quota.

    Reads cgroup v2 ``cpu.max`` (``"max 100000"`` or ``"150000 100000"``) and cgroup v1
    ``cpu/cpu.cfs_quota_us`` (``-1``: none) and ``cpu.cfs_period_us``, in the process's own cgroup and its
    ancestors, and at ``root`` itself (inside a container the own cgroup is mounted there); the smallest
    quota found wins. ``proc_cgroup``: the process's cgroup list (``/proc/self/cgroup``).
    """
    quotas = []
    for d in _own_cgroup_dirs(root, "", proc_cgroup) + [root]:
        text = _read(d / "cpu.max")
        if text:
            quotas.append(parse_cpu_max(text))
    for d in _own_cgroup_dirs(root, "cpu", proc_cgroup) + [root / "cpu"]:
        quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
        if quota and period:
            quotas.append(parse_cfs_quota(quota, period))
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def parse_cpu_max(text: str) -> float | None:
    """Cores from cgroup v2 ``cpu.max`` text ``"QUOTA PERIOD"``; None for ``"max ..."`` or unreadable text.

    >>> parse_cpu_max("150000 100000"), parse_cpu_max("max 100000")
    (1.5, None)
    """
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs_quota(quota_us: str, period_us: str) -> float | None:
    """Cores from cgroup v1 ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``; None when the quota is -1.

    >>> parse_cfs_quota("200000", "100000"), parse_cfs_quota("-1", "100000")
    (2.0, None)
    """
    try:
        quota, period = int(quota_us), int(period_us)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cores(affinity: int | None = None, quota_cores: float | None = None) -> int:
    """Whole cores the process may use: ``min(affinity, floor(quota_cores))``, at least 1.

    Args:
        affinity: CPUs in the affinity mask; None reads ``os.sched_getaffinity(0)`` (``os.cpu_count()``
            where the platform lacks it).
        quota_cores: cores of the CPU quota (:func:`cgroup_cpu_quota`), None for no quota. A fractional
            quota is rounded down: a thread more than the quota only waits for the throttle.

    >>> usable_cores(affinity=8, quota_cores=2.5), usable_cores(affinity=2, quota_cores=None)
    (2, 2)
    """
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = affinity if quota_cores is None else min(affinity, math.floor(quota_cores))
    return max(1, int(cores))


def plan_threads(workers: int = 1, cores: int | None = None, threads: int | None = None) -> ThreadPlan:
    """The plan for one of ``workers`` processes sharing ``cores`` (None: :func:`usable_cores` of this process
    with :func:`cgroup_cpu_quota`). ``threads`` None: ``max(1, cores // workers)``.

    >>> plan_threads(workers=2, cores=8).threads, plan_threads(workers=3, cores=2).threads
    (4, 1)
    """
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    cores = usable_cores(quota_cores=cgroup_cpu_quota()) if cores is None else cores
    return ThreadPlan(cores, workers, max(1, cores // workers) if threads is None else threads)


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables of :data:`THREAD_COUNT_VARIABLES` set to ``threads``, and the passive wait."""
    return {**{name: str(threads) for name in THREAD_COUNT_VARIABLES}, **WAIT_VARIABLES}


def _user_threads() -> int | None:
    try:
        value = int(_USER_THREADS) if _USER_THREADS else None
    except ValueError:
        return None
    return value if value is not None and value >= 1 else None


def apply_thread_policy(workers: int = 1, threads: int | None = None, loaded: bool = True) -> ThreadPlan:
    """Apply the policy to this process (module doc) and return it.

    Args:
        workers: processes that run at once on the same cores; this one gets ``cores // workers`` threads.
        threads: an explicit per-process count (a batch worker's share); None: the user's
            ``OMP_NUM_THREADS`` if the process started with one, else ``cores // workers``.
        loaded: also set the libraries already imported (below); False writes the environment only (a
            script that set torch's threads itself and imports the project afterwards keeps its setting).

    Writes the thread counts and the OpenMP wait policy into ``os.environ`` (a wait policy the user set is
    kept), so libraries loaded later and child processes follow them, and sets torch's intra-op threads,
    its inter-op threads (possible only before torch's first parallel work; otherwise left as they are),
    OpenCV's and numba's threads when those modules are already imported.
    """
    global _plan
    plan = plan_threads(workers, threads=threads if threads is not None else _user_threads())
    for name, value in thread_environment(plan.threads).items():
        if name in WAIT_VARIABLES:
            os.environ.setdefault(name, value)
        else:
            os.environ[name] = value
    _plan = plan
    if not loaded:
        return plan
    numba = sys.modules.get("numba")
    if numba is not None:  # first: starting numba's OpenMP pool resets the shared OpenMP thread count
        numba.set_num_threads(min(plan.threads, numba.config.NUMBA_NUM_THREADS))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(plan.threads)
        if torch.get_num_interop_threads() != plan.threads:
            try:
                torch.set_num_interop_threads(plan.threads)
            except RuntimeError:  # inter-op pool already started; it only serves torch.jit.fork
                pass
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(plan.threads)
    return plan


def ensure_thread_policy() -> ThreadPlan:
    """The plan in force: the one applied already in this process (a batch worker's share, say), else the
    default one applied to the environment only (``apply_thread_policy(loaded=False)``). The project's
    packages call it when they load."""
    return _plan if _plan is not None else apply_thread_policy(loaded=False)


def current_plan() -> ThreadPlan:
    """The plan last applied in this process, else the default one (a single process), not applied."""
    return _plan if _plan is not None else plan_threads(threads=_user_threads())


def decode_threads() -> int:
    """Threads for FFmpeg's video decoder: the process's share of the cores (:func:`current_plan`)."""
    return current_plan().threads


T = TypeVar("T")
_POLL_S = 0.1  # how often a blocked producer looks whether its consumer has gone


@dataclass(frozen=True)
class _End:
    error: BaseException | None


def prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order while a background thread draws up to ``depth`` of them ahead.

    For a decoder (PyAV releases the GIL while it decodes and converts) feeding work that leaves a core
    idle part of the time (PnP, bookkeeping in Python): decoding then overlaps that work. An exception in
    ``items`` is raised here, where the item it stopped at would have come. Closing this generator early
    (``break``, an exception in the consumer) stops the thread and closes ``items`` (its ``close()``, for a
    generator holding a file) before returning; the background thread has ended whenever this generator has.
    """
    if not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    return _prefetch(items, depth)


def _prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_End(None))
        except BaseException as err:  # handed to the consumer, which raises it
            put(_End(err))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        worker.join()
