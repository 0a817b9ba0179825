"""Video IO and the command-line programs.

Importing the package applies the process's thread policy (:func:`baseio.threads.apply_thread_policy`):
every command starts here, and OpenMP reads its wait policy only when torch first loads it, which a
command's imports do next.
"""
from baseio.threads import apply_thread_policy

apply_thread_policy()
