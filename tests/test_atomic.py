"""baseio.atomic: outputs appear whole or not at all."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from baseio.atomic import (
    OutputError,
    atomic_path,
    remove_stale_temporaries,
    save_npz_atomic,
    write_json_atomic,
    write_error_message,
    write_text_atomic,
)

NOBODY = 65534


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


class TestAtomicPath:
    def test_success_renames_temp_onto_final(self, tmp_path: Path) -> None:
        final = tmp_path / "poses.csv"
        with atomic_path(final) as tmp:
            assert tmp.parent == tmp_path and tmp != final
            assert tmp.name.startswith(".poses.tmp-") and tmp.suffix == ".csv"
            assert tmp.exists() and not final.exists()
            tmp.write_text("a,b\n1,2\n")
        assert final.read_text() == "a,b\n1,2\n"
        assert _leftovers(tmp_path) == []

    def test_replaces_existing_file(self, tmp_path: Path) -> None:
        final = tmp_path / "out.txt"
        final.write_text("old")
        with atomic_path(final) as tmp:
            tmp.write_text("new")
        assert final.read_text() == "new"

    def test_exception_leaves_no_temp_and_no_final(self, tmp_path: Path) -> None:
        final = tmp_path / "out.txt"
        with pytest.raises(KeyError, match="boom"):
            with atomic_path(final) as tmp:
                tmp.write_text("partial")
                raise KeyError("boom")
        assert not final.exists()
        assert list(tmp_path.iterdir()) == []

    def test_exception_leaves_existing_final_untouched(self, tmp_path: Path) -> None:
        final = tmp_path / "out.txt"
        final.write_text("old")
        with pytest.raises(RuntimeError):
            with atomic_path(final) as tmp:
                tmp.write_text("half-writ")
                raise RuntimeError("disk on fire")
        assert final.read_text() == "old"
        assert _leftovers(tmp_path) == []

    def test_keyboard_interrupt_also_cleans_up(self, tmp_path: Path) -> None:
        with pytest.raises(KeyboardInterrupt):
            with atomic_path(tmp_path / "x.bin") as tmp:
                tmp.write_bytes(b"123")
                raise KeyboardInterrupt
        assert list(tmp_path.iterdir()) == []

    def test_temp_names_are_unique(self, tmp_path: Path) -> None:
        with atomic_path(tmp_path / "a.txt") as tmp1, atomic_path(tmp_path / "a.txt") as tmp2:
            assert tmp1 != tmp2
            tmp1.write_text("1")
            tmp2.write_text("2")
        assert (tmp_path / "a.txt").read_text() == "1"  # the outer one finishes last and wins, whole
        assert _leftovers(tmp_path) == []

    def test_missing_folder_is_output_error(self, tmp_path: Path) -> None:
        final = tmp_path / "no" / "such" / "out.json"
        with pytest.raises(OutputError, match="does not exist") as info:
            with atomic_path(final):
                pytest.fail("body must not run")
        assert str(final) in str(info.value) and "\n" not in str(info.value)

    def test_parent_is_a_file_is_output_error(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("x")
        with pytest.raises(OutputError, match="is not a folder"):
            write_text_atomic(tmp_path / "file" / "out.txt", "y")

    def test_final_is_a_folder_is_output_error_and_cleans_up(self, tmp_path: Path) -> None:
        (tmp_path / "taken").mkdir()
        with pytest.raises(OutputError, match="taken"):
            write_text_atomic(tmp_path / "taken", "y")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.fixture
def unwritable_dir() -> Iterator[Path]:
    """A folder everyone may read and enter but nobody (except root) may write to."""
    folder = Path(tempfile.mkdtemp(prefix="atomic-ro-", dir="/tmp"))
    (folder / "existing.txt").write_text("old")
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(folder)


def _outcome_without_root(action: Callable[[], None]) -> str:
    """Run ``action`` as an unprivileged user and return 'ok' or '<ExceptionType>: <message>'.

    Root ignores folder permissions, so as root the action runs in a forked child that has
    dropped to user ``nobody`` first; otherwise it runs here.
    """
    def outcome() -> str:
        try:
            action()
        except Exception as err:  # the test inspects the type name
            return f"{type(err).__name__}: {err}"
        return "ok"

    if os.geteuid() != 0:
        return outcome()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write_end, outcome().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(pid, 0)
    return result


class TestUnwritableFolder:
    def test_write_text_raises_output_error_naming_path(self, unwritable_dir: Path) -> None:
        final = unwritable_dir / "out.txt"
        result = _outcome_without_root(lambda: write_text_atomic(final, "x"))
        assert result == f"OutputError: cannot write {final}: folder {unwritable_dir} is not writable"
        assert sorted(p.name for p in unwritable_dir.iterdir()) == ["existing.txt"]

    def test_existing_file_untouched(self, unwritable_dir: Path) -> None:
        final = unwritable_dir / "existing.txt"
        result = _outcome_without_root(lambda: write_json_atomic(final, {"a": 1}))
        assert result.startswith("OutputError: ") and str(final) in result
        assert final.read_text() == "old"


class TestWrappers:
    def test_write_text(self, tmp_path: Path) -> None:
        write_text_atomic(tmp_path / "a.txt", "héllo\n")
        assert (tmp_path / "a.txt").read_bytes() == "héllo\n".encode()

    def test_write_json_round_trip(self, tmp_path: Path) -> None:
        obj = {"fx": 500.25, "ids": [1, 2, 3], "name": "clip", "missing": None}
        write_json_atomic(tmp_path / "a.json", obj)
        assert json.loads((tmp_path / "a.json").read_text()) == obj

    def test_write_json_unserialisable_leaves_existing_file(self, tmp_path: Path) -> None:
        final = tmp_path / "a.json"
        final.write_text('{"old": true}\n')
        with pytest.raises(TypeError):
            write_json_atomic(final, {"array": np.zeros(3)})
        with pytest.raises(ValueError):
            write_json_atomic(final, {"x": float("nan")})
        assert final.read_text() == '{"old": true}\n'
        assert _leftovers(tmp_path) == []

    @pytest.mark.parametrize("compress", [True, False])
    def test_save_npz_round_trip_keeps_name(self, tmp_path: Path, compress: bool) -> None:
        arrays = {"R": np.eye(3)[None].repeat(4, axis=0), "t": np.arange(12.0).reshape(4, 3)}
        save_npz_atomic(tmp_path / "poses.npz", arrays, compress=compress)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.npz"]
        with np.load(tmp_path / "poses.npz") as data:
            assert set(data.files) == {"R", "t"}
            np.testing.assert_array_equal(data["R"], arrays["R"])
            np.testing.assert_array_equal(data["t"], arrays["t"])

    def test_save_npz_without_npz_suffix_is_not_renamed(self, tmp_path: Path) -> None:
        save_npz_atomic(tmp_path / "poses.bin", {"a": np.ones(2)})
        assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.bin"]


class TestStorageErrors:
    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
    def test_full_disk_in_the_body_is_one_line_naming_the_path(self, tmp_path: Path) -> None:
        final = tmp_path / "poses.csv"
        final.write_text("old\n")
        with pytest.raises(OutputError) as info, atomic_path(final):
            with open("/dev/full", "wb") as device:  # every write fails with ENOSPC
                device.write(b"x")
        assert str(info.value) == f"cannot write {final}: no space left on the device holding {tmp_path}"
        assert final.read_text() == "old\n" and _leftovers(tmp_path) == []

    def test_other_os_errors_propagate_unchanged(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "a.txt"):
            (tmp_path / "missing.txt").read_text()
        assert _leftovers(tmp_path) == []

    @pytest.mark.parametrize("code,expected", [(errno.EDQUOT, "disk quota exceeded on the device holding"),
                                               (errno.EROFS, "is on a read-only file system"),
                                               (errno.EACCES, None)])
    def test_write_error_message(self, tmp_path: Path, code: int, expected: str | None) -> None:
        message = write_error_message(tmp_path / "x.npz", OSError(code, os.strerror(code)))
        assert (message is None) if expected is None else (message.startswith(f"cannot write {tmp_path / 'x.npz'}: ")
                                                           and expected in message)


def test_remove_stale_temporaries_keeps_live_writers_and_other_names(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale_dir = tmp_path / f".out.tmp-{dead.pid}-0123abcd"
    stale_dir.mkdir()
    (stale_dir / "frames.scratch").write_bytes(b"\0" * 100)
    stale_file = tmp_path / f".out.tmp-{dead.pid}-89abcdef.csv"
    stale_file.write_text("x")
    keep = [tmp_path / f".out.tmp-{os.getpid()}-0123abcd",  # a live writer
            tmp_path / f".other.tmp-{dead.pid}-0123abcd",  # another output's
            tmp_path / "out"]
    for path in keep:
        path.mkdir()
    assert sorted(remove_stale_temporaries(tmp_path, "out")) == sorted([stale_dir, stale_file])
    assert sorted(tmp_path.iterdir()) == sorted(keep)
