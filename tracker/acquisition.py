"""Where to look for the face: detector boxes when the track is lost, predicted-pose boxes between detections.

Boxes are ``(cx, cy, side)`` in pixels of the full (distorted, as decoded) frame, the square box around
the face's 468 mesh points that PerspNet's crops are built from (:func:`perspnet.training_data.box_from_points`).

* Acquisition: every face of the frame, small ones included, from the tiled face search
  (:class:`perspnet.face_search.FaceSearch`: MediaPipe's face detector on overlapping tiles, then the
  Face Landmarker on a crop around each face); a face's box is that of its 468 landmarks
  (:meth:`FaceSearch.find <perspnet.face_search.FaceSearch.find>` gives them all, largest first;
  :func:`detect_face` picks the largest, or the one at a tracked box).
* Tracking: the current shape projected with a predicted pose and the camera (K and distortion)
  (:func:`box_from_pose`), re-anchored now and then to the detected face that overlaps it
  (``detect_face(..., near=box)``).
A box is usable when its centre lies in the frame and its side is at least ``min_face_px``
(:func:`box_in_view`); otherwise the track counts as lost and the detector runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perspnet.crop import box_from_points
from perspnet.face_search import FaceSearch, FoundFace, box_iou
from perspnet.intrinsics import Intrinsics

__all__ = ["Detection", "FaceSearch", "FoundFace", "detect_face", "project_to_image", "box_from_pose", "box_in_view",
           "box_iou", "boxes_agree", "box_thumbnail", "box_similarity", "MIN_IOU", "NEAR_MIN_SIDE"]

MIN_IOU = 0.3  # a detection re-anchors a tracked box if they overlap this much, or if it is centred inside it
# When no face is at a tracked box, the search skips faces under this fraction of its side: the tracked
# face itself (a tracked box drifts in size by less than that) and a face as large elsewhere
# (tracker.online's jump test) are still found, and the fine tile levels, most of the search's cost, are
# skipped for all but small faces.
NEAR_MIN_SIDE = 0.5


@dataclass(frozen=True)
class Detection:
    """The detector's answer on one frame.

    Attributes:
        box: ``(3,)`` (cx, cy, side) pixels of the face asked for (the largest, or the one near a tracked
            box), None when there is none.
        n_faces: faces found.
        largest: ``(3,)`` box of the largest face found, near the tracked box or not; None without faces.
        points_px: ``(468, 2)`` landmark pixels of the face of ``box``, None when ``box`` is None.
    """

    box: np.ndarray | None
    n_faces: int
    largest: np.ndarray | None = None
    points_px: np.ndarray | None = None


def detect_face(search: FaceSearch, image_rgb: np.ndarray, near: np.ndarray | None = None) -> Detection:
    """The face asked for in ``image_rgb (H, W, 3) uint8``.

    Without ``near``: the largest face of a whole search. With ``near`` (a tracked box): first only the
    landmarker on a crop around it (:meth:`FaceSearch.landmarks_at`; one landmarker run, no tile search),
    which answers with that face alone (``n_faces`` 1); when no face is there, a search for faces of at
    least ``NEAR_MIN_SIDE`` of its side, and among them the one overlapping it most of those that overlap
    it by ``MIN_IOU`` or have their centre inside it (a tracked box may have drifted), else none but
    ``largest`` (the tracker's test for a face that jumped).
    """
    if near is not None:
        at_box = search.landmarks_at(image_rgb, near)
        if at_box is not None:
            box = box_from_points(at_box.points_px)
            return Detection(box, 1, box, at_box.points_px)
    faces = search.find(image_rgb, None if near is None else NEAR_MIN_SIDE * float(near[2]))
    boxes = [face.box for face in faces]
    largest = boxes[0] if boxes else None
    if near is not None:
        matches = [(box_iou(box, near), k) for k, box in enumerate(boxes)
                   if box_iou(box, near) >= MIN_IOU or np.all(np.abs(box[:2] - near[:2]) < near[2] / 2)]
        chosen = max(matches)[1] if matches else None
    else:
        chosen = 0 if boxes else None
    if chosen is None:
        return Detection(None, len(faces), largest)
    return Detection(boxes[chosen], len(faces), largest, faces[chosen].landmarks.points_px)


def project_to_image(points_cam: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Camera-frame points ``(N, 3)`` (metres, z > 0) -> ``(N, 2)`` pixels of the decoded image: K and
    the lens distortion ``intr.dist`` applied (``cv2.projectPoints``)."""
    dist = None if intr.dist is None else np.asarray(intr.dist)
    px, _ = cv2.projectPoints(np.asarray(points_cam, np.float64).reshape(-1, 3), np.zeros(3), np.zeros(3),
                              intr.K, dist)
    return px.reshape(-1, 2)


def box_from_pose(R_cam_face: np.ndarray, t_cam_face: np.ndarray, verts_face_m: np.ndarray,
                  intr: Intrinsics) -> np.ndarray | None:
    """Box ``(cx, cy, side)`` of ``verts_face_m (n, 3)`` (canonical frame, metres) seen at the pose.

    Projected with K and ``intr.dist`` into the decoded (distorted) image. None when a vertex lies at or
    behind the camera's plane (z <= 1 cm), where the projection means nothing.
    """
    verts_cam = verts_face_m @ np.asarray(R_cam_face).T + np.asarray(t_cam_face)
    if not np.all(np.isfinite(verts_cam)) or verts_cam[:, 2].min() <= 0.01:
        return None
    return box_from_points(project_to_image(verts_cam, intr))


def box_in_view(box: np.ndarray | None, width: int, height: int, min_face_px: float) -> bool:
    """True when ``box`` (cx, cy, side) has its centre inside the ``width x height`` frame and a side of
    at least ``min_face_px`` pixels, and no larger than twice the frame's larger side."""
    if box is None or not np.all(np.isfinite(box)):
        return False
    cx, cy, side = box
    return bool(-0.5 <= cx <= width - 0.5 and -0.5 <= cy <= height - 0.5
                and min_face_px <= side <= 2 * max(width, height))



def boxes_agree(box: np.ndarray | None, reference: np.ndarray, max_offset: float) -> bool:
    """True when ``box`` (cx, cy, side) is centred within ``max_offset * side`` of ``reference`` (both
    axes, the reference's side) and its side is within a factor ``1 + 2 * max_offset`` of it."""
    if box is None or not np.all(np.isfinite(box)):
        return False
    side = reference[2]
    return bool(np.all(np.abs(box[:2] - reference[:2]) <= max_offset * side)
                and 1.0 / (1.0 + 2.0 * max_offset) <= box[2] / side <= 1.0 + 2.0 * max_offset)


THUMB_PX = 24  # side of the grey thumbnails that :func:`box_similarity` compares


def box_thumbnail(image_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``(THUMB_PX, THUMB_PX)`` float32 grey thumbnail of the part of ``box`` (cx, cy, side; pixels) inside
    ``image_rgb (H, W, 3) uint8``, area-averaged, zero mean and unit norm (all zero for a flat patch)."""
    h, w = image_rgb.shape[:2]
    cx, cy, side = box
    x0, x1 = (int(np.clip(round(c), 0, w)) for c in (cx - side / 2, cx + side / 2))
    y0, y1 = (int(np.clip(round(c), 0, h)) for c in (cy - side / 2, cy + side / 2))
    if x1 <= x0 or y1 <= y0:  # the box lies outside the image
        return np.zeros((THUMB_PX, THUMB_PX), np.float32)
    small = cv2.resize(image_rgb[y0:y1, x0:x1], (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)
    grey = small.astype(np.float32).mean(axis=2)
    grey -= grey.mean()
    norm = float(np.linalg.norm(grey))
    return grey / norm if norm > 1e-6 else np.zeros_like(grey)


def box_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation in [-1, 1] of two :func:`box_thumbnail` s (0 when either is flat)."""
    return float(np.sum(a * b))
