"""Tasks for the executor tests; module-level so that spawned worker processes can import them."""
from __future__ import annotations

import os
import signal
import time


def echo_or_crash(item: str) -> tuple[str, str | None]:
    """``(item, this worker's device)``; the item "crash" kills its worker with SIGSEGV, "sleep" sleeps 60 s."""
    from pipelines.batch_executors import worker_device

    if item == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if item == "sleep":
        time.sleep(60)
    return item, worker_device()
