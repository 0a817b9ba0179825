"""The tiled face search: small faces in large frames, several faces, none, and no duplicates across tiles.

Expected boxes come from the construction: a real frame whose face the landmarker finds at full size
(about 250 px, where it is reliable) is scaled down and pasted into a canvas at a known place, and the
full-size landmarks are moved by the same scale and offset. They never come from the search itself.
"""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from perspnet.assets import pyfeat_file
from perspnet.crop import box_from_points
from perspnet.face_search import (DETECTOR_PER_LANDMARK_SIDE, MIN_FACE_FRACTION, FaceSearch, SearchConfig, box_iou,
                                  search_tiles)
from perspnet.landmark_ids import CHIN
from perspnet.landmarker import DETECTOR_INPUT_PX, FaceLandmarker
from tracker.acquisition import detect_face

BROW = 9  # mesh vertex between the eyebrows


def _first_frame(name: str) -> np.ndarray:
    with av.open(str(pyfeat_file(name))) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def sources() -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, its one face's landmark pixels (468, 2) found at full size) of two real videos."""
    out = []
    with FaceLandmarker("image", max_faces=2) as landmarker:
        for name in ("WolfgangLanger_Pexels.mp4", "single_face.mp4"):
            image = _first_frame(name)
            faces = landmarker.detect(image)
            assert len(faces) == 1 and faces[0].size_px > 150, name
            out.append((image, faces[0].points_px))
    return out


@pytest.fixture(scope="module")
def search():
    with FaceSearch() as s:
        yield s


def _paste(canvas: np.ndarray, image: np.ndarray, points: np.ndarray, height_px: float, x0: int, y0: int) -> np.ndarray:
    """Paste ``image`` scaled so its face is ``height_px`` from brow to chin, top-left at (x0, y0) (parts
    outside the canvas are cut off); return the true landmark box (cx, cy, side) in the canvas."""
    scale = height_px / np.linalg.norm(points[BROW] - points[CHIN])
    h, w = image.shape[:2]
    size = (round(w * scale), round(h * scale))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    cut_x, cut_y = max(0, -x0), max(0, -y0)
    canvas[y0 + cut_y:y0 + size[1], x0 + cut_x:x0 + size[0]] = small[cut_y:, cut_x:]
    return box_from_points((points + 0.5) * (size[0] / w, size[1] / h) - 0.5 + (x0, y0))


def _grey(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 96, np.uint8)


def test_small_face_in_full_hd_is_found_with_its_box(sources, search):
    image, points = sources[0]
    canvas = _grey(1920, 1080)
    expected = _paste(canvas, image, points, 50.0, 1103, 577)
    faces = search.find(canvas)
    assert len(faces) == 1
    box = faces[0].box
    assert box_iou(box, expected) > 0.8
    assert np.all(np.abs(box[:2] - expected[:2]) < 0.1 * expected[2])
    assert abs(box[2] / expected[2] - 1.0) < 0.1
    assert faces[0].landmarks.points_px.shape == (468, 2)


def test_two_faces_give_two_detections_and_detect_face_picks_by_size_or_place(sources, search):
    canvas = _grey(1920, 1080)
    small = _paste(canvas, *sources[0], 70.0, 150, 120)
    large = _paste(canvas, *sources[1], 140.0, 900, 300)
    faces = search.find(canvas)
    assert len(faces) == 2
    assert box_iou(faces[0].box, large) > 0.7 and box_iou(faces[1].box, small) > 0.7  # largest first
    largest = detect_face(search, canvas)
    assert largest.n_faces == 2 and box_iou(largest.box, large) > 0.7
    near_small = detect_face(search, canvas, near=small)
    assert box_iou(near_small.box, small) > 0.7
    nowhere = detect_face(search, canvas, near=np.array([1500.0, 800.0, large[2]]))  # the face jumped
    assert nowhere.box is None and box_iou(nowhere.largest, large) > 0.7


def test_empty_frames_give_no_face(search):
    with av.open(str(pyfeat_file("no_face.mp4"))) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    for canvas in (cv2.resize(frame, (1920, 1080)), _grey(1280, 720)):
        assert search.find(canvas) == []
        assert detect_face(search, canvas).box is None


@pytest.mark.parametrize("shift", [0, 23, 41, 67])
def test_a_face_across_tile_edges_is_found_once(sources, search, shift):
    """Faces placed at several offsets of the finest tiles' stride, and one large enough for every level."""
    image, points = sources[0]
    canvas = _grey(1280, 720)
    expected = [_paste(canvas, image, points, 56.0, 100 + shift, 90 + shift),
                _paste(canvas, image, points, 200.0, 420 + shift, 250 + shift)]
    faces = search.find(canvas)
    assert len(faces) == 2
    for box in expected:
        assert sum(box_iou(f.box, box) > 0.5 for f in faces) == 1


def test_tiles_hold_every_face_in_the_detectors_range():
    """Geometry of the pyramid: any face from the smallest asked for up to the frame's height lies whole in
    some tile whose detector-input size puts it between MIN_FACE_FRACTION and 0.9 of the tile."""
    rng = np.random.default_rng(3)
    for width, height in ((1280, 720), (1920, 1080), (3840, 2160), (720, 1280)):
        levels = search_tiles(width, height, SearchConfig().min_side_px)
        for _ in range(300):
            side = np.exp(rng.uniform(np.log(SearchConfig().min_side_px), np.log(min(width, height))))
            det = side * DETECTOR_PER_LANDMARK_SIDE
            cx, cy = rng.uniform(det / 2, width - det / 2), rng.uniform(det / 2, height - det / 2)
            held = False
            for scale, tiles in levels:
                d = det * scale
                for x, y, tw, th in tiles:
                    inside = (x <= (cx - det / 2) * scale and (cx + det / 2) * scale <= x + tw
                              and y <= (cy - det / 2) * scale and (cy + det / 2) * scale <= y + th)
                    held |= inside and MIN_FACE_FRACTION * DETECTOR_INPUT_PX * 0.99 <= d <= 0.9 * max(tw, th)
            assert held, (width, height, side, cx, cy)


def test_a_face_at_the_frame_corner_keeps_its_box(sources, search):
    """The landmark crop around a face in a corner reaches outside the frame (padded): the box stays put."""
    image, points = sources[1]
    canvas = _grey(1280, 720)
    at_origin = _paste(np.zeros_like(canvas), image, points, 90.0, 0, 0)
    x0, y0 = np.round(4 - (at_origin[:2] - at_origin[2] / 2)).astype(int)  # the face box 4 px from the corner
    expected = _paste(canvas, image, points, 90.0, int(x0), int(y0))
    assert np.all(expected[:2] - expected[2] / 2 < 5)
    faces = search.find(canvas)
    assert len(faces) == 1
    assert box_iou(faces[0].box, expected) > 0.8


@pytest.mark.parametrize("kwargs", [{"min_side_px": 0}, {"min_score": 1.0}, {"nms_iou": 0.0}, {"max_candidates": 0}])
def test_search_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        SearchConfig(**kwargs)


def test_a_smaller_face_asked_for_than_configured_searches_no_finer_tiles(search):
    canvas = _grey(1280, 720)
    runs = []
    for min_side_px in (None, 10.0, 4 * search.config.min_side_px):
        before = search.detector_runs
        search.find(canvas, min_side_px)
        runs.append(search.detector_runs - before)
    assert runs[0] == runs[1] == sum(len(t) for _, t in search_tiles(1280, 720, search.config.min_side_px))
    assert runs[2] < runs[0] / 4
