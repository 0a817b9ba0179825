"""Every face in a frame, small ones included: the bundle's face detector on a pyramid of overlapping tiles,
then the Face Landmarker on a crop around each face it found.

BlazeFace short-range (:class:`perspnet.landmarker.FaceBoxDetector`) sees a ``DETECTOR_INPUT_PX`` square
and finds faces whose box is at least about ``MIN_FACE_FRACTION`` of it; on a whole 1920x1080 frame that
is a face over ~300 px, so the landmarker alone misses the faces of a meeting or a lecture. The search:

1. Tiles. Level k cuts the frame into square tiles of side ``T_k = T_0 * 2**k`` source pixels,
   overlapping by ``TILE_OVERLAP`` of their side, and runs the detector on each, resampled to
   ``DETECTOR_INPUT_PX`` (area averaging, once per level for the whole frame). ``T_0`` puts the smallest
   face asked for at ``MIN_FACE_FRACTION`` of a tile; levels go up until one tile holds the whole frame
   (the whole-frame pass, for faces that fill it). Each level reliably finds faces from
   ``MIN_FACE_FRACTION * T_k`` to twice that, where the next level takes over, and the overlap holds any
   such face whole in some tile. A detection touching an inner tile edge is dropped (a cut face: it lies
   whole in a neighbouring tile or at the next level); the others are merged across tiles and levels by
   box IoU (non-maximum suppression, highest score kept).
2. Landmarks. Each remaining box is cropped with ``CROP_MARGIN`` times its side around it (frame
   resolution) and given to the Face Landmarker (IMAGE mode): its 468 landmarks, mapped back to the frame,
   are the face (the tracker's boxes are built from them). A box where the landmarker finds no face near
   the crop's centre is dropped, which also rejects most of the detector's false alarms on textured
   backgrounds; two candidates that turn out to be the same face are merged again.

The search costs one detector run per tile (many on a 4K frame) plus one landmarker run per face: run it
when faces are being looked for, not on every tracked frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from perspnet.crop import box_from_points
from perspnet.landmarker import DETECTOR_INPUT_PX, FaceBoxDetector, FaceLandmarker, FaceLandmarks
from perspnet.validate import check_int, check_range

__all__ = ["SearchConfig", "FoundFace", "FaceSearch", "search_tiles", "box_iou"]

# Smallest face box, as a fraction of the detector's input side, that BlazeFace short-range scores well,
# with a margin below which it starts missing faces (docs/experiments.md, "Face search").
MIN_FACE_FRACTION = 0.16
# BlazeFace's box is a little smaller than the square box around the 468 landmarks (which reaches the top
# of the forehead): the detector's box side per landmark-box side.
DETECTOR_PER_LANDMARK_SIDE = 0.9
# A level's largest reliable face is 2 * MIN_FACE_FRACTION (0.32) of its tile: an overlap above that holds
# every such face whole in some tile.
TILE_OVERLAP = 0.4
EDGE_PX = 1.0  # a detector box this close (detector-input pixels) to an inner tile edge is a cut face
CROP_MARGIN = 2.5  # landmark crop side per box side: the face is 0.4 of the crop, in BlazeFace's range


@dataclass(frozen=True)
class SearchConfig:
    """Settings of :class:`FaceSearch`. Validated on construction.

    Attributes:
        min_side_px: smallest face searched for: side of its landmark box (:func:`perspnet.crop.box_from_points`,
            forehead top to chin), pixels. A face 40 px high from brow to chin has a side of about 48 px.
        min_score: the detector's score threshold on tiles. Above the landmarker's 0.5: textures (stone,
            cells, a cat's eye, a galaxy) score just above 0.5 in tiles and some pass the landmarker too,
            while faces the landmarker confirms score higher (docs/experiments.md, "Face search").
        nms_iou: boxes overlapping more than this (IoU) are one face.
        max_candidates: landmarker runs per search at most (highest detector scores first).
    """

    min_side_px: float = 48.0
    min_score: float = 0.7
    nms_iou: float = 0.3
    max_candidates: int = 32

    def __post_init__(self) -> None:
        check_range("min_side_px", self.min_side_px, 0.0, lo_open=True)
        for name in ("min_score", "nms_iou"):
            check_range(name, getattr(self, name), 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("max_candidates", self.max_candidates, 1)


@dataclass(frozen=True)
class FoundFace:
    """One face found by :meth:`FaceSearch.find`.

    Attributes:
        landmarks: its 468 landmarks in full-frame pixels (:class:`perspnet.landmarker.FaceLandmarks`).
        score: the detector's score in [0, 1] for its tile box.
    """

    landmarks: FaceLandmarks
    score: float

    @property
    def box(self) -> np.ndarray:
        """``(3,)`` (cx, cy, side) pixels: the square box around the 468 landmarks."""
        return box_from_points(self.landmarks.points_px)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two square boxes ``(cx, cy, side)``."""
    lo, hi = np.maximum(a[:2] - a[2] / 2, b[:2] - b[2] / 2), np.minimum(a[:2] + a[2] / 2, b[:2] + b[2] / 2)
    inter = float(np.prod(np.clip(hi - lo, 0.0, None)))
    return inter / (a[2] ** 2 + b[2] ** 2 - inter)


def search_tiles(width: int, height: int, min_side_px: float) -> list[tuple[float, list[tuple[int, int, int, int]]]]:
    """The search's levels for a ``width x height`` frame: per level, the frame's scale (detector-input
    pixels per frame pixel) and its tiles ``(x, y, w, h)`` in pixels of the frame resampled at that scale,
    finest level first; the last level is the whole frame as one tile."""
    levels = []
    tile_px = min_side_px * DETECTOR_PER_LANDMARK_SIDE / MIN_FACE_FRACTION
    while True:
        if tile_px >= max(width, height):
            scale = DETECTOR_INPUT_PX / max(width, height)
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            levels.append((scale, [(0, 0, w, h)]))
            return levels
        scale = DETECTOR_INPUT_PX / tile_px
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        tw, th = min(DETECTOR_INPUT_PX, w), min(DETECTOR_INPUT_PX, h)
        stride = DETECTOR_INPUT_PX * (1.0 - TILE_OVERLAP)
        xs = np.linspace(0, w - tw, math.ceil((w - tw) / stride) + 1).round().astype(int)
        ys = np.linspace(0, h - th, math.ceil((h - th) / stride) + 1).round().astype(int)
        levels.append((scale, [(int(x), int(y), tw, th) for y in ys for x in xs]))
        tile_px *= 2.0


def _resample(image_rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = image_rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)


def _nms(boxes: list[np.ndarray], scores: list[float], iou: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression of square boxes ``(cx, cy, side)``, best score first;
    a box centred inside a kept one is suppressed too."""
    kept: list[int] = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if all(box_iou(boxes[i], boxes[k]) <= iou and np.any(np.abs(boxes[i][:2] - boxes[k][:2]) > boxes[k][2] / 2)
               for k in kept):
            kept.append(int(i))
    return kept


class FaceSearch:
    """Tiled face search plus landmarks (module doc). Use as a context manager, or call :meth:`close`.

    Args:
        config: sizes and thresholds.
        bundle: path of ``face_landmarker.task``; found automatically when None.
    """

    def __init__(self, config: SearchConfig = SearchConfig(), bundle=None) -> None:
        self.config = config
        self.detector = FaceBoxDetector(bundle, min_confidence=config.min_score)
        try:
            self.landmarker = FaceLandmarker("image", max_faces=2, bundle=bundle)  # 2: a neighbour may share a crop
        except BaseException:  # Ctrl-C or a bad bundle: MediaPipe's own clean-up fails at interpreter exit
            self.detector.close()
            raise
        self.detector_runs = 0  # tiles searched, for cost reports
        self.landmarker_runs = 0

    def close(self) -> None:
        self.detector.close()
        self.landmarker.close()

    def __enter__(self) -> FaceSearch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def candidates(self, image_rgb: np.ndarray, min_side_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Step 1 (module doc) on ``image_rgb (H, W, 3) uint8`` for faces of a landmark-box side from
        ``min_side_px`` (never below ``config.min_side_px``, the default): the detector's merged boxes
        ``(N, 3)`` (cx, cy, side) frame pixels and scores ``(N,)``, best first."""
        h, w = image_rgb.shape[:2]
        boxes, scores = [], []
        for scale, tiles in search_tiles(w, h, max(self.config.min_side_px, min_side_px or 0.0)):
            small = _resample(image_rgb, scale)
            sh, sw = small.shape[:2]
            for x, y, tw, th in tiles:
                found, found_scores = self.detector.detect(small[y:y + th, x:x + tw])
                self.detector_runs += 1
                for (bx, by, bw, bh), score in zip(found, found_scores):
                    cut = ((x > 0 and bx <= EDGE_PX) or (y > 0 and by <= EDGE_PX)
                           or (x + tw < sw and bx + bw >= tw - EDGE_PX) or (y + th < sh and by + bh >= th - EDGE_PX))
                    if cut:
                        continue
                    boxes.append(np.array([x + bx + bw / 2, y + by + bh / 2, max(bw, bh)]) / scale)
                    scores.append(float(score))
        kept = _nms(boxes, scores, self.config.nms_iou)
        return np.array([boxes[k] for k in kept]).reshape(-1, 3), np.array([scores[k] for k in kept])

    def landmarks_at(self, image_rgb: np.ndarray, box: np.ndarray) -> FaceLandmarks | None:
        """Step 2 (module doc): the landmarks, in frame pixels, of the face centred near ``box`` (cx, cy,
        side; a detector box, or a tracked landmark box), from a crop ``CROP_MARGIN`` times its side at the
        frame's own resolution (the landmarker resamples the face for its mesh model itself); None when the
        landmarker finds no face within half a side of the box's centre."""
        cx, cy, side = (float(v) for v in box)
        crop_side = max(2, round(CROP_MARGIN * side))
        x0, y0 = round(cx - crop_side / 2), round(cy - crop_side / 2)
        h, w = image_rgb.shape[:2]
        region = image_rgb[max(0, y0):max(0, y0 + crop_side), max(0, x0):max(0, x0 + crop_side)]
        if region.size == 0:
            return None
        pad = ((max(0, -y0), max(0, y0 + crop_side - h)), (max(0, -x0), max(0, x0 + crop_side - w)), (0, 0))
        self.landmarker_runs += 1
        faces = self.landmarker.detect(np.pad(region, pad))  # black outside the frame, as a letterbox
        best, best_d = None, 0.5 * side
        for face in faces:
            pts = face.points_px + (x0, y0)
            d = float(np.linalg.norm(box_from_points(pts)[:2] - (cx, cy)))
            if d < best_d:
                box_xywh = face.box_xywh + (x0, y0, 0, 0)
                best, best_d = FaceLandmarks(pts, face.points_3d_px + (x0, y0, 0), box_xywh), d
        return best

    def find(self, image_rgb: np.ndarray, min_side_px: float | None = None) -> list[FoundFace]:
        """Every face in ``image_rgb (H, W, 3) uint8`` with a landmark-box side of about ``min_side_px`` or
        more (never below ``config.min_side_px``, the default: the finest tiles cost the most), largest
        first."""
        boxes, scores = self.candidates(image_rgb, min_side_px)
        found: list[FoundFace] = []
        for box, score in zip(boxes[:self.config.max_candidates], scores[:self.config.max_candidates]):
            landmarks = self.landmarks_at(image_rgb, box)
            if landmarks is not None:
                found.append(FoundFace(landmarks, float(score)))
        kept = _nms([f.box for f in found], [f.score for f in found], self.config.nms_iou)
        return sorted((found[k] for k in kept), key=lambda f: -f.box[2])
