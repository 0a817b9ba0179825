"""Several faces: ids through a crossing, a face that leaves and comes back, faces only at the clip's end,
``--faces largest`` / ``--faces 1``, the poses.csv layout, and the pieces (id linking, id metrics).

Expected boxes and ids come from the clips' ground truth (:mod:`perspnet.synth.multi_clips`: face 0 is the
nearer, larger one), never from the tracker: the true box of a face is its true mesh projected with K. The
tests that track with the shipped model are marked slow (10-60 s each on 2 CPU cores).
"""
import json

import numpy as np
import pandas as pd
import pytest

from perspnet.checkpoint import default_checkpoint_path
from perspnet.synth.multi_clips import MultiClipConfig, write_multi_clip
from pipelines.synth_cli import main as synth_main
from pipelines.track_outputs import TRACK_COLUMNS, read_poses_csv
from pipelines.track_video import TrackConfig, track_video
from tracker.faces import link_tracks, shape_distance_mm
from tracker.mot_metrics import id_metrics, tracked_boxes, true_boxes

SIZE = dict(width=480, height=360, fx=450.0)


def clip_of(tmp_path_factory, test_generator, scenario, frames, seed=5):
    folder = tmp_path_factory.mktemp(scenario)
    return write_multi_clip(folder / "clip", seed, MultiClipConfig(scenario=scenario, frames=frames, **SIZE),
                            test_generator)


def track(clip, out, **kwargs):
    return track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=out, device="cpu",
                                   **kwargs), notify=None)


@pytest.fixture(scope="module")
def cross(tmp_path_factory, test_generator):
    clip = clip_of(tmp_path_factory, test_generator, "cross", 48)
    return clip, track(clip, clip.parent / "track")


def test_two_face_clip_ground_truth(tmp_path, test_generator):
    clip = write_multi_clip(tmp_path, 1, MultiClipConfig(scenario="late", frames=10, late_fraction=0.5, **SIZE),
                            test_generator)
    gt = pd.read_csv(clip / "gt.csv")
    assert list(gt.columns[:2]) == ["frame", "face_id"] and gt.frame.min() == 5 and len(gt) == 10
    for f in (0, 1):
        single = pd.read_csv(clip / f"gt_{f}.csv")
        np.testing.assert_allclose(single.tz, gt[gt.face_id == f].tz)
    assert (gt[gt.face_id == 0].tz.to_numpy() < gt[gt.face_id == 1].tz.to_numpy()).all()  # face 0 is the nearer
    names = {json.loads((clip / f"identity_{f}.json").read_text())["name"] for f in (0, 1)}
    assert len(names) == 2  # two identities


def test_synth_cli_writes_a_two_face_clip(tmp_path):
    assert synth_main(["clip", "--faces", "2", "--scenario", "cross", "--frames", "4", "--size", "320x240",
                       "--out", str(tmp_path / "c")]) == 0
    assert set(pd.read_csv(tmp_path / "c" / "gt.csv").face_id) == {0, 1}


@pytest.mark.slow
@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
def test_crossing_keeps_both_ids(cross):
    clip, result = cross
    m = id_metrics(tracked_boxes(result.out_dir / "poses.csv"), true_boxes(clip))
    assert m.id_switches == 0 and m.mapping == {0: 0, 1: 1}, m
    assert set(m.per_true_id[0]) == {0} and set(m.per_true_id[1]) == {1}, m  # never on the other face
    visible = pd.read_csv(clip / "gt.csv").face_id.value_counts()
    assert m.per_true_id[0][0] >= 0.9 * visible[0] and m.per_true_id[1][1] >= 0.6 * visible[1], m  # 1 hides


@pytest.mark.slow
@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
def test_poses_csv_has_a_row_per_frame_and_face(cross):
    clip, result = cross
    df = read_poses_csv(result.out_dir / "poses.csv")
    assert tuple(df.columns) == TRACK_COLUMNS
    assert not df.duplicated(["frame", "face_id"]).any()
    assert (df.sort_values(["frame", "face_id"], na_position="first").index == df.index).all()
    per_frame = df.groupby("frame").face_id.apply(lambda ids: sorted(ids.dropna()))
    assert set(per_frame.index) == set(range(48))
    assert per_frame[0] == per_frame[47] == [0, 1]  # both faces, before and after the crossing
    s = result.summary
    assert [f["face_id"] for f in s["faces"]] == [0, 1]
    assert all(f["first_frame"] == 0 and f["last_frame"] == 47 and 55 < f["ipd_mm"] < 75 for f in s["faces"])
    names = {p.name for p in result.out_dir.iterdir()}
    assert {"identity.obj", "identity_0.obj", "identity_1.obj", "identity_1.npz"} <= names
    np.testing.assert_array_equal(np.load(result.out_dir / "identity.npz")["verts_face_m"],
                                  np.load(result.out_dir / "identity_0.npz")["verts_face_m"])
    assert [r["label"] for r in s["jitter"]["runs"]][:2] == ["perspnet face 0:filtered", "perspnet face 0:raw"]


@pytest.mark.slow
@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
@pytest.mark.parametrize("faces", ["largest", "1"])
def test_one_face_tracks_the_larger(cross, faces):
    clip, _ = cross
    result = track(clip, clip.parent / f"track_{faces}", faces=faces)
    df = read_poses_csv(result.out_dir / "poses.csv")
    assert not df.frame.duplicated().any() and set(df.face_id.dropna()) == {0}
    truth = {f: dict(faces) for f, faces in true_boxes(clip).items()}
    first = df[df.success == 1].iloc[0]
    box = np.array([first.box_x + first.box_w / 2, first.box_y + first.box_h / 2, first.box_w])
    near, far = truth[int(first.frame)][0], truth[int(first.frame)][1]
    assert np.abs(box - near).max() < 0.2 * near[2] and np.abs(box[:2] - far[:2]).max() > near[2]


@pytest.mark.slow
@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
def test_a_face_that_leaves_and_returns_keeps_its_id(tmp_path_factory, test_generator):
    clip = clip_of(tmp_path_factory, test_generator, "leave", 72)
    result = track(clip, clip.parent / "track")
    m = id_metrics(tracked_boxes(result.out_dir / "poses.csv"), true_boxes(clip))
    assert m.id_switches == 0 and m.mapping == {0: 0, 1: 1}, m
    gt = pd.read_csv(clip / "gt.csv")
    back = gt[(gt.face_id == 1) & (gt.frame > 40)].frame  # face 1 in view again after leaving
    ours = read_poses_csv(result.out_dir / "poses.csv")
    ours = ours[(ours.success == 1) & ours.frame.isin(back)]
    assert len(ours[ours.face_id == 1]) >= 0.5 * len(back) and set(ours.face_id) == {0, 1}  # found within 0.5 s
    assert [f["tracks"] for f in result.summary["faces"]] == [1, 2]


@pytest.mark.slow
@pytest.mark.skipif(not default_checkpoint_path().is_file(), reason="no shipped checkpoint")
def test_faces_only_at_the_end(tmp_path_factory, test_generator):
    clip = clip_of(tmp_path_factory, test_generator, "late", 32)
    result = track(clip, clip.parent / "track")
    start = int(pd.read_csv(clip / "gt.csv").frame.min())
    df = read_poses_csv(result.out_dir / "poses.csv")
    before = df[df.frame < start]
    assert len(before) == start and before.face_id.isna().all() and (before.success == 0).all()
    m = id_metrics(tracked_boxes(result.out_dir / "poses.csv"), true_boxes(clip))
    assert m.id_switches == 0 and m.mapping == {0: 0, 1: 1} and m.matches >= 0.8 * m.true_faces, m


def test_link_tracks_joins_a_returning_face_and_not_a_new_one(bank):
    rng = np.random.default_rng(0)
    a, b = (ident.verts_face_m for ident in bank.split("test")[:2])
    assert shape_distance_mm(a, b) > 1.0
    noisy = lambda shape: shape * 1.03 + rng.normal(0, 1e-4, shape.shape)  # noqa: E731  re-estimated, rescaled
    look_a, look_b = np.ones((8, 8, 3)), np.full((8, 8, 3), 1.3)
    spans = [(0, 0, 50), (1, 10, 40), (2, 60, 90), (3, 95, 120), (4, 30, 70), (5, 125, 130)]
    shapes = {0: a, 1: b, 2: noisy(b), 3: noisy(a), 4: noisy(a), 5: noisy(a)}
    colours = {0: look_a, 1: look_b, 2: look_b + 0.05, 3: look_a - 0.05, 4: look_a, 5: look_b}
    ids = link_tracks(spans, shapes, colours, reid_max_mm=1.0, reid_max_colour=0.19)
    # 2 is b back after it left, 3 is a back; 4 looks like a but overlaps a's first track in time; 5 has a's
    # shape but b's colouring: someone new
    assert ids == {0: 0, 1: 1, 4: 2, 2: 1, 3: 0, 5: 3}


def test_id_metrics_counts_a_swap():
    box = {0: np.array([100.0, 100.0, 50.0]), 1: np.array([300.0, 100.0, 50.0])}
    true = {f: [(0, box[0]), (1, box[1])] for f in range(10)}
    swapped = {f: [(0 if f < 5 else 1, box[0]), (1 if f < 5 else 0, box[1])] for f in range(10)}
    m = id_metrics(swapped, true)
    assert m.id_switches == 2 and m.idf1 == pytest.approx(0.5) and m.matches == 20
    m = id_metrics(true, true)
    assert m.id_switches == 0 and m.idf1 == 1.0 and m.mapping == {0: 0, 1: 1}
