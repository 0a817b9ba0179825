"""Temporal tracking: SE(3) filtering, smoothing and the shared identity shape."""

from baseio.threads import ensure_thread_policy

ensure_thread_policy()  # before torch loads: OpenMP reads its wait policy only then (baseio.threads)
