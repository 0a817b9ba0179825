"""PerspNet: 3D face shape and 6DoF pose under perspective projection (single image)."""

from baseio.threads import ensure_thread_policy

ensure_thread_policy()  # before torch loads: OpenMP reads its wait policy only then (baseio.threads)
