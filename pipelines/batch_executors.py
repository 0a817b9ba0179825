"""Run one task per item in parallel where a task may kill its process: a local process pool, or a Dask cluster.

:mod:`pipelines.batch` runs :func:`pipelines.batch.run_clip` on each clip with these. Both executors call
``on_result(result)`` for each task that returned and ``on_crash(item, reason)`` for each task whose
worker process died under it; results arrive in completion order, in the calling thread.

Local pool (:func:`run_local`)
------------------------------
* ``ProcessPoolExecutor`` with the ``spawn`` start method (CUDA and threaded libraries do not survive a
  fork), one worker per entry of ``devices``; a worker reads its own device with :func:`worker_device`.
  Each worker gets its share of the usable cores, ``cores // workers`` threads for every library
  (:mod:`baseio.threads`, applied before the task imports torch).
* At most one task per worker is in flight, so the tasks in flight are exactly those that may have been
  running when a worker died. A dead worker breaks the whole pool (``BrokenProcessPool`` for every task
  in flight, the other workers are terminated): the pool is restarted and the tasks that were in flight
  run again one at a time; a task that kills its worker when alone is reported to ``on_crash``.
* A worker's stdout and stderr (native libraries' logging, e.g. MediaPipe's) go to ``log_path`` when
  given, with ``faulthandler`` on, so a worker that crashes leaves its Python traceback there.
* Workers ignore SIGINT (Ctrl-C in a terminal reaches the whole process group; the calling process
  decides), turn SIGTERM into ``SystemExit`` so that atomic writers remove their temporary files, and on
  Linux get SIGKILL when the calling process dies (``PR_SET_PDEATHSIG``), even by SIGKILL: no orphan
  goes on writing outputs.
* Any exception in the caller (KeyboardInterrupt included) stops the workers (SIGTERM, then SIGKILL
  after :data:`WORKER_STOP_TIMEOUT_S`) and propagates.

Dask (:func:`run_dask`)
-----------------------
The task is submitted per item to an existing ``distributed`` cluster (the optional extra ``dask``;
imported only here). Dask reruns a task whose worker died on another worker; one that keeps killing
workers ends in ``KilledWorker``, reported to ``on_crash``. Any exception in the caller cancels the tasks.
"""
from __future__ import annotations

import ctypes
import faulthandler
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from baseio.threads import apply_thread_policy, plan_threads

__all__ = ["WORKER_DIED", "WORKER_STOP_TIMEOUT_S", "ExecutorUnavailable", "default_workers", "worker_devices",
           "worker_device", "run_local", "run_dask"]

Item = TypeVar("Item")
Result = TypeVar("Result")

WORKER_DIED = "worker process died (crashed in native code, or was killed, e.g. by the out-of-memory killer)"
WORKER_STOP_TIMEOUT_S = 10.0  # after SIGTERM, workers get this long to clean up before SIGKILL
DASK_CONNECT_TIMEOUT = "15s"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_device: str | None = None  # this process's device, in local pool workers (set by _init_worker)


class ExecutorUnavailable(RuntimeError):
    """The executor cannot run at all (dask not installed, scheduler unreachable); one line."""


def default_workers(device: str) -> int:
    """One per visible GPU when ``device`` is "auto" or "cuda" and CUDA is present, else half the cores this
    process may use (affinity and CPU quota, :func:`baseio.threads.usable_cores`; at least 1), each worker
    running two threads."""
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    return max(1, plan_threads().cores // 2)


def worker_devices(device: str, workers: int) -> list[str]:
    """The device of each of ``workers`` local workers: "auto" and "cuda" give ``cuda:i`` round-robin over
    the visible GPUs ("auto" without CUDA: "cpu"); any other device is used by every worker."""
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
        if device == "auto":
            return ["cpu"] * workers
    return [device] * workers


def worker_device() -> str | None:
    """The device this local pool worker was given; None outside a local pool worker (e.g. on Dask)."""
    return _device


def _die_with_parent(parent_pid: int) -> None:
    """Linux: get SIGKILL when the parent process dies, however it dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _init_worker(devices: Any, parent_pid: int, threads: int, log_path: Path | None) -> None:
    """Worker set-up (module doc): output to the log, signals, death with the parent, threads, device."""
    global _device
    if log_path is not None:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.dup2(log, sys.stdout.fileno())
        os.dup2(log, sys.stderr.fileno())
        os.close(log)
        faulthandler.enable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _die_with_parent(parent_pid)
    apply_thread_policy(threads=threads)  # before the task imports torch: its OpenMP pool is sized on loading
    _device = devices.get()


def _new_pool(devices: Sequence[str], log_path: Path | None) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()  # each worker takes one device
    for device in devices:
        queue.put(device)
    threads = plan_threads(len(devices)).threads
    return ProcessPoolExecutor(len(devices), ctx, initializer=_init_worker,
                               initargs=(queue, os.getpid(), threads, log_path))


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued tasks and stop the workers now (SIGTERM, SIGKILL after ``WORKER_STOP_TIMEOUT_S``).

    Python 3.11's executor has no public way to stop running workers (``terminate_workers`` came in 3.14).
    """
    processes = list(pool._processes.values())  # noqa: SLF001
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    deadline = time.monotonic() + WORKER_STOP_TIMEOUT_S
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def run_local(items: Sequence[Item], task: Callable[[Item], Result], devices: Sequence[str],
              on_result: Callable[[Result], None], on_crash: Callable[[Item, str], None],
              log_path: Path | None = None) -> None:
    """Run ``task(item)`` for every item in a pool of ``len(devices)`` worker processes (module doc).

    ``task`` must be picklable (a module-level function) and should not raise: an exception it raises
    propagates here and stops the run.
    """
    pending: deque[tuple[int, Item]] = deque(enumerate(items))
    suspects: deque[tuple[int, Item]] = deque()
    in_flight: dict[Future, tuple[int, Item]] = {}
    pool: ProcessPoolExecutor | None = None
    try:
        while pending or suspects or in_flight:
            if pool is None:
                pool = _new_pool(devices, log_path)
            queue, limit = (suspects, 1) if suspects else (pending, len(devices))
            try:
                while queue and len(in_flight) < limit:
                    future = pool.submit(task, queue[0][1])
                    in_flight[future] = queue.popleft()
            except BrokenProcessPool:  # a worker died while idle
                if not in_flight:
                    pool.shutdown(wait=True)
                    pool = None
                    continue
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                wait(in_flight)  # the broken pool fails every task in flight
                done = set(in_flight)
            crashed = []
            for future in done:
                entry = in_flight.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    crashed.append(entry)
                else:
                    on_result(future.result())
            if crashed:
                pool.shutdown(wait=True)
                pool = None
                if len(crashed) == 1:
                    on_crash(crashed[0][1], WORKER_DIED)
                else:  # which one killed its worker is unknown: run each alone
                    suspects.extend(sorted(crashed, key=lambda entry: entry[0]))
    except BaseException:
        if pool is not None:
            _stop_pool(pool)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def run_dask(items: Sequence[Item], task: Callable[[Item], Result], scheduler: str,
             on_result: Callable[[Result], None], on_crash: Callable[[Item, str], None]) -> None:
    """Submit ``task(item)`` for every item to the Dask cluster at ``scheduler`` (module doc).

    Raises:
        ExecutorUnavailable: dask is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, KilledWorker, as_completed
    except ImportError:
        raise ExecutorUnavailable("the dask executor needs the optional extra: "
                                  "pip install 'perspnet-tracker[dask]'") from None
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {scheduler}: {reason}") from None
    with client:
        futures = {client.submit(task, item, pure=False): item for item in items}
        try:
            for future in as_completed(futures):
                try:
                    on_result(future.result())
                except KilledWorker:
                    on_crash(futures[future], "Dask workers died running it, too many times (KilledWorker)")
        except BaseException:
            client.cancel(list(futures))
            raise
