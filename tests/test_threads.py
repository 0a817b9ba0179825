"""The thread policy (baseio.threads): cores from affinity and cgroup quota, the split over workers, that
every library in a fresh process runs the planned number of threads; and the background-thread prefetch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from baseio.threads import (THREAD_COUNT_VARIABLES, WAIT_VARIABLES, cgroup_cpu_quota, parse_cfs_quota, parse_cpu_max,
                            plan_threads, prefetched, usable_cores)
from baseio.video_io import DecodeReport, VideoWriter, iter_frames

ROOT = Path(__file__).resolve().parents[1]


class TestUsableCores:
    def test_quota_caps_affinity_rounded_down(self):
        assert usable_cores(affinity=16, quota_cores=4.0) == 4
        assert usable_cores(affinity=16, quota_cores=2.9) == 2

    def test_affinity_caps_quota(self):
        assert usable_cores(affinity=3, quota_cores=8.0) == 3

    def test_at_least_one_core(self):
        assert usable_cores(affinity=4, quota_cores=0.5) == 1

    def test_no_quota_is_the_affinity(self):
        assert usable_cores(affinity=6, quota_cores=None) == 6

    def test_reads_this_process_affinity(self):
        assert usable_cores(quota_cores=None) == len(os.sched_getaffinity(0))


class TestPlan:
    @pytest.mark.parametrize("cores, workers, threads", [(8, 1, 8), (8, 2, 4), (8, 3, 2), (2, 2, 1), (2, 5, 1)])
    def test_split_over_workers(self, cores, workers, threads):
        plan = plan_threads(workers, cores=cores)
        assert (plan.cores, plan.workers, plan.threads) == (cores, workers, threads)

    def test_explicit_threads_win(self):
        assert plan_threads(2, cores=8, threads=3).threads == 3

    @pytest.mark.parametrize("workers", [0, -1, 1.5])
    def test_bad_workers(self, workers):
        with pytest.raises(ValueError, match="workers"):
            plan_threads(workers, cores=4)


class TestCgroupQuota:
    def test_parsers(self):
        assert parse_cpu_max("250000 100000") == 2.5
        assert parse_cpu_max("max 100000") is None
        assert parse_cpu_max("garbage") is None
        assert parse_cfs_quota("50000", "100000") == 0.5
        assert parse_cfs_quota("-1", "100000") is None

    def test_v2_own_cgroup_and_smallest_ancestor(self, tmp_path):
        (tmp_path / "jobs" / "job7").mkdir(parents=True)
        (tmp_path / "jobs" / "cpu.max").write_text("300000 100000\n")
        (tmp_path / "jobs" / "job7" / "cpu.max").write_text("max 100000\n")
        proc = tmp_path / "proc_cgroup"
        proc.write_text("0::/jobs/job7\n")
        assert cgroup_cpu_quota(tmp_path, proc) == 3.0

    def test_v1_cfs_quota(self, tmp_path):
        (tmp_path / "cpu" / "docker" / "abc").mkdir(parents=True)
        (tmp_path / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("150000\n")
        (tmp_path / "cpu" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
        proc = tmp_path / "proc_cgroup"
        proc.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
        assert cgroup_cpu_quota(tmp_path, proc) == 1.5

    def test_container_root_mount(self, tmp_path):
        """Inside a container the own cgroup is mounted at the root; /proc names a path that is not there."""
        (tmp_path / "cpu.max").write_text("200000 100000\n")
        proc = tmp_path / "proc_cgroup"
        proc.write_text("0::/system.slice/docker-123.scope\n")
        assert cgroup_cpu_quota(tmp_path, proc) == 2.0

    def test_no_quota(self, tmp_path):
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
        proc = tmp_path / "proc_cgroup"
        proc.write_text("1:cpu:/\n")
        assert cgroup_cpu_quota(tmp_path, proc) is None


_PROBE = """
import json, os, sys
{before}
import torch, cv2, numba
{after}
from baseio.threads import current_plan
print(json.dumps({{"plan": current_plan().threads, "torch": torch.get_num_threads(),
                  "interop": torch.get_num_interop_threads(), "cv2": cv2.getNumThreads(),
                  "numba": numba.get_num_threads(), "wait": os.environ.get("OMP_WAIT_POLICY"),
                  "omp": os.environ.get("OMP_NUM_THREADS")}}))
"""


def _probe(before: str, after: str = "", **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in THREAD_COUNT_VARIABLES and k not in WAIT_VARIABLES}
    out = subprocess.run([sys.executable, "-c", _PROBE.format(before=before, after=after)], cwd=ROOT,
                         env={**clean, **env}, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("first", ["import pipelines", "import perspnet.inference", "import tracker.online"])
def test_importing_the_project_sizes_every_library(first):
    """The policy's environment is written when a package loads, before torch, OpenCV and numba do."""
    got = _probe(first)
    cores = usable_cores(quota_cores=cgroup_cpu_quota())
    assert got == {"plan": cores, "torch": cores, "interop": got["interop"], "cv2": cores, "numba": cores,
                   "wait": "PASSIVE", "omp": str(cores)}


def test_user_omp_num_threads_is_kept():
    got = _probe("import pipelines", OMP_NUM_THREADS="1")
    assert (got["plan"], got["torch"], got["cv2"], got["numba"]) == (1, 1, 1, 1)


def test_worker_share_applied_after_the_libraries_loaded():
    """A batch worker's share set on already imported libraries, inter-op threads included."""
    got = _probe("", "from baseio.threads import apply_thread_policy\napply_thread_policy(threads=1)")
    assert (got["plan"], got["torch"], got["interop"], got["cv2"], got["numba"], got["omp"]) == (1, 1, 1, 1, 1, "1")


class TestPrefetched:
    def test_order_and_all_items(self):
        assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def test_error_raised_after_the_items_before_it(self):
        def source():
            yield from (0, 1, 2)
            raise ValueError("broken at 3")

        got = []
        with pytest.raises(ValueError, match="broken at 3"):
            for x in prefetched(source(), depth=2):
                got.append(x)
        assert got == [0, 1, 2]

    def test_early_close_stops_the_thread_and_closes_the_source(self):
        closed = threading.Event()

        def source():
            try:
                yield from range(10_000)
            finally:
                closed.set()

        stream = prefetched(source(), depth=4)
        assert [next(stream), next(stream)] == [0, 1]
        stream.close()
        assert closed.is_set()
        assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())

    def test_bad_depth(self):
        with pytest.raises(ValueError, match="depth"):
            prefetched(iter([]), depth=0)

    def test_decoded_frames_unchanged(self, tmp_path):
        """A real decode through the thread: the same frames, times and decode report."""
        clip = tmp_path / "clip.mp4"
        rng = np.random.default_rng(0)
        with VideoWriter(clip, 64, 48, Fraction(25)) as writer:
            for _ in range(20):
                writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        plain_report, ahead_report = DecodeReport(), DecodeReport()
        plain = list(iter_frames(clip, plain_report))
        ahead = list(prefetched(iter_frames(clip, ahead_report), depth=3))
        assert [(f.index, f.timestamp_s) for f in ahead] == [(f.index, f.timestamp_s) for f in plain]
        assert all(np.array_equal(a.image_rgb, b.image_rgb) for a, b in zip(ahead, plain))
        assert ahead_report == plain_report and ahead_report.n_frames == 20


def test_worker_share_survives_later_package_imports():
    """A batch worker's share, applied before the project's packages load, is kept by them (the parent's
    OMP_NUM_THREADS in the inherited environment is not taken for the user's)."""
    got = _probe("from baseio.threads import apply_thread_policy\napply_thread_policy(threads=1)\n"
                 "import perspnet.inference, tracker.online", OMP_NUM_THREADS="2")
    assert (got["plan"], got["torch"], got["cv2"], got["numba"], got["omp"]) == (1, 1, 1, 1, "1")


def test_a_script_own_torch_threads_kept_on_import():
    got = _probe("import torch\ntorch.set_num_threads(1)\nimport perspnet.inference, tracker.online")
    assert got["torch"] == 1
