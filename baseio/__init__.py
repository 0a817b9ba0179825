"""Base IO that every layer may import: atomic writes (:mod:`baseio.atomic`), video decode/encode
(:mod:`baseio.video_io`) and the process's thread policy (:mod:`baseio.threads`, whose environment part each
package applies when it loads). It imports nothing of the project above it."""

from baseio.threads import ensure_thread_policy

ensure_thread_policy()  # before torch loads: OpenMP reads its wait policy only then (baseio.threads)
