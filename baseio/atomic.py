"""Write output files atomically: readers see the old file or the complete new one, never a partial file.

The pattern: write to a temporary name in the destination folder, flush it to disk, then
``os.replace`` it onto the final name (atomic on POSIX and Windows within one file system).
On any exception the temporary file is removed and the final path is left as it was.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "poses.csv") as tmp:
    ...     _ = tmp.write_text("t,x\\n0.0,1.0\\n")
    >>> (folder / "poses.csv").read_text()
    't,x\\n0.0,1.0\\n'
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "OutputError",
    "TEMPORARY_NAME",
    "write_error_message",
    "remove_stale_temporaries",
    "atomic_path",
    "write_text_atomic",
    "write_json_atomic",
    "save_npz_atomic",
]


class OutputError(Exception):
    """An output file could not be written; the one-line message names the path and the reason."""


# Hidden temporaries of this module (".<stem>.tmp-<pid>-<hex8><suffix>") and of staged output folders
# (".<name>.tmp-<pid>-<hex8>", pipelines.track_outputs.staged_folder): the pid tells whether their writer lives.
TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}(\.[^.]*)?$")
# numpy's ndarray.tofile reports a failed fwrite as "N requested and M written" without an errno; so little
# room left means the disk was full
_FULL_BYTES = 1 << 20
_STORAGE_ERRORS = {errno.ENOSPC: "no space left on the device holding {folder}",
                   errno.EDQUOT: "disk quota exceeded on the device holding {folder}",
                   errno.EFBIG: "file too large for the file system (or the process's file size limit)",
                   errno.EROFS: "{folder} is on a read-only file system",
                   errno.EIO: "input/output error on the device holding {folder} (a failing or removed drive?)"}


def _free_bytes(path: Path) -> int | None:
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def write_error_message(path: str | os.PathLike[str], err: OSError) -> str | None:
    """One line for an error of the storage under ``path`` while writing it (a full disk, a quota, a read-only
    or failing device), ``cannot write <path>: <cause>``; None for any other OSError.

    A write that failed without an errno (numpy's ``tofile``) counts as a full disk when under 1 MiB is free.
    """
    path = Path(path)
    folder = path.parent
    code = err.errno
    if code is None and (free := _free_bytes(path)) is not None and free < _FULL_BYTES:
        code = errno.ENOSPC
    if code not in _STORAGE_ERRORS:
        return None
    return f"cannot write {path}: {_STORAGE_ERRORS[code].format(folder=folder)}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Remove the hidden temporaries for ``name`` in ``folder`` (:data:`TEMPORARY_NAME`: ``.<name>.tmp-<pid>-...``,
    files or staged folders) whose writing process no longer exists: what a run killed with SIGKILL, or a
    crashed machine, left behind. Those of live processes (a run still going) are kept. Returns the removed paths.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = TEMPORARY_NAME.match(path.name)
        if match is None or match["name"] != name or _pid_alive(int(match["pid"])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _reason(final: Path, err: OSError) -> str:
    """One-line explanation of why the temporary file next to ``final`` could not be created."""
    folder = final.parent
    if isinstance(err, PermissionError):
        return f"cannot write {final}: folder {folder} is not writable"
    if isinstance(err, FileNotFoundError):
        return f"cannot write {final}: folder {folder} does not exist"
    if isinstance(err, NotADirectoryError):
        return f"cannot write {final}: {folder} is not a folder"
    return write_error_message(final, err) or f"cannot write {final}: {err.strerror or err}"


@contextmanager
def atomic_path(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``final_path`` atomically.

    The temporary file ``.<stem>.tmp-<pid>-<random><suffix>`` is created (empty) in the final
    path's folder before the body runs, so an unwritable or missing folder fails early. It keeps
    the final suffix, so libraries that choose a format from the extension (PyAV, ``np.savez``)
    behave as they would with the final name. The body may overwrite or truncate it.

    On normal exit the file is fsync'ed and ``os.replace``d onto ``final_path``. If the body
    raises, the temporary file is removed, ``final_path`` is untouched, and the exception
    propagates unchanged, except a storage error (full disk, quota, read-only or failing device:
    :func:`write_error_message`), which becomes an OutputError naming ``final_path`` and the cause.

    Raises:
        OutputError: the folder is missing or not writable, the storage failed while writing, or the
            rename failed (e.g. ``final_path`` is a folder).
    """
    final = Path(final_path)
    tmp = final.with_name(f".{final.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{final.suffix}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise OutputError(_reason(final, err)) from err
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, final)
        except OSError as err:
            raise OutputError(f"cannot write {final}: {err.strerror or err}") from err
    except OSError as err:
        tmp.unlink(missing_ok=True)
        message = write_error_message(final, err)
        if message is None:
            raise
        raise OutputError(message) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as standard JSON (UTF-8, trailing newline) to ``path`` atomically.

    Serialisation happens before anything touches the disk; NaN and infinity are rejected
    (``ValueError``) because standard JSON cannot hold them: store missing values as ``null``.
    """
    text = json.dumps(obj, indent=indent, allow_nan=False) + "\n"
    write_text_atomic(path, text)


def save_npz_atomic(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], compress: bool = True
) -> None:
    """Save named arrays as an ``.npz`` archive at ``path`` atomically.

    ``path`` is used as given (``np.savez`` would append ``.npz`` to a name without it; this does not).
    ``compress`` selects ``np.savez_compressed`` (default) or ``np.savez``.
    """
    save = np.savez_compressed if compress else np.savez
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        save(f, **arrays)
