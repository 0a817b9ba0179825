"""MediaPipe Face Landmarker (``face_landmarker.task``), wrapped to return pixels in our conventions.

:class:`FaceBoxDetector` runs the bundle's own face detector alone (BlazeFace short-range, the first
stage of the landmarker): boxes and scores only, a few times cheaper than the landmarker, for searching
many tiles of a large frame (:mod:`perspnet.face_search`).

MediaPipe gives normalised landmarks (x / W, y / H, z scaled like x, z growing away from the camera).
We return them as pixels and a pixel-unit 3D shape whose axes match the camera frame (x right, y down,
z forward): a weak-perspective reconstruction, good for registering the canonical mesh.
"""
from __future__ import annotations

import os
import sys
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from perspnet.face_model import find_face_landmarker_task

__all__ = ["FaceLandmarks", "FaceLandmarker", "FaceBoxDetector", "DETECTOR_INPUT_PX"]

N_MESH_LANDMARKS = 468  # the bundle outputs 478: the mesh's 468 then 10 iris points, which we drop
DETECTOR_ENTRY = "face_detector.tflite"  # the landmarker bundle's first stage
DETECTOR_INPUT_PX = 128  # side of the square image BlazeFace short-range sees (letterboxed)


@contextmanager
def _native_stderr_silenced():
    """Send what native code writes to stderr (file descriptor 2) to /dev/null for the duration.

    MediaPipe's graph set-up logs several INFO / WARNING lines straight to fd 2 (no Python logging to
    configure); they would bury our one-line messages. Its failures still raise Python exceptions.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@dataclass(frozen=True)
class FaceLandmarks:
    """One detected face.

    Attributes:
        points_px: ``(468, 2)`` landmark pixels (u right, v down), same ids as the canonical mesh.
        points_3d_px: ``(468, 3)`` weak-perspective 3D landmarks in pixel units (x right, y down, z away
            from the camera, relative to the head centre).
        box_xywh: ``(4,)`` tight box of the landmarks in pixels (x, y, width, height).
    """

    points_px: np.ndarray
    points_3d_px: np.ndarray
    box_xywh: np.ndarray

    @property
    def size_px(self) -> float:
        """Face size: the larger side of the landmark box, pixels."""
        return float(max(self.box_xywh[2], self.box_xywh[3]))


class FaceLandmarker:
    """MediaPipe Face Landmarker in IMAGE or VIDEO mode.

    Args:
        mode: ``"image"`` (each call independent) or ``"video"`` (tracks across calls; timestamps must grow).
        max_faces: faces to return at most, largest first.
        bundle: path of ``face_landmarker.task``; found automatically when None.
        min_confidence: detection and presence confidence threshold.
    """

    def __init__(self, mode: str = "image", max_faces: int = 1, bundle=None, min_confidence: float = 0.5):
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        if mode not in ("image", "video"):
            raise ValueError(f"mode must be 'image' or 'video', not {mode!r}")
        running = vision.RunningMode.IMAGE if mode == "image" else vision.RunningMode.VIDEO
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(find_face_landmarker_task(bundle))),
            running_mode=running, num_faces=max_faces, min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence, min_tracking_confidence=min_confidence)
        self._mode = mode
        with _native_stderr_silenced():  # set-up chatter; detection itself logs nothing
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._last_ms = -1

    def close(self) -> None:
        with _native_stderr_silenced():  # tear-down logs an INFO line straight to fd 2
            self._landmarker.close()

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, image_rgb: np.ndarray, timestamp_s: float | None = None) -> list[FaceLandmarks]:
        """Landmarks of the faces in ``image_rgb`` ``(H, W, 3) uint8``, largest face first.

        In VIDEO mode ``timestamp_s`` is required; it is made strictly increasing in whole milliseconds.
        """
        import mediapipe as mp

        h, w = image_rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image_rgb))
        if self._mode == "video":
            if timestamp_s is None:
                raise ValueError("VIDEO mode needs timestamp_s")
            ms = max(int(round(timestamp_s * 1000.0)), self._last_ms + 1)
            self._last_ms = ms
            result = self._landmarker.detect_for_video(image, ms)
        else:
            result = self._landmarker.detect(image)
        faces = []
        for lms in result.face_landmarks:
            xyz = np.array([(p.x, p.y, p.z) for p in lms[:N_MESH_LANDMARKS]], np.float64)
            pts = xyz[:, :2] * (w, h)
            pts3 = np.column_stack([pts, xyz[:, 2] * w])
            lo, hi = pts.min(0), pts.max(0)
            faces.append(FaceLandmarks(pts, pts3, np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])))
        faces.sort(key=lambda f: -f.size_px)
        return faces


class FaceBoxDetector:
    """The bundle's face detector alone (BlazeFace short-range, IMAGE mode): face boxes without landmarks.

    It sees the image letterboxed to ``DETECTOR_INPUT_PX`` squared, so it finds only faces that fill a
    good part of the image (short-range: selfie distance); :mod:`perspnet.face_search` tiles large frames
    to bring smaller faces into its range.

    Args:
        bundle: path of ``face_landmarker.task``; found automatically when None.
        min_confidence: detection score threshold.
    """

    def __init__(self, bundle=None, min_confidence: float = 0.5):
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        path = find_face_landmarker_task(bundle)
        try:
            with zipfile.ZipFile(path) as z:
                model = z.read(DETECTOR_ENTRY)
        except (zipfile.BadZipFile, KeyError) as e:
            raise ValueError(f"{path}: no {DETECTOR_ENTRY} inside the face model bundle ({e})") from e
        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_buffer=model),
                                             min_detection_confidence=min_confidence)
        with _native_stderr_silenced():
            self._detector = vision.FaceDetector.create_from_options(options)
        self._first = True

    def close(self) -> None:
        with _native_stderr_silenced():  # tear-down logs an INFO line straight to fd 2
            self._detector.close()

    def __enter__(self) -> "FaceBoxDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces in ``image_rgb (H, W, 3) uint8``: boxes ``(N, 4)`` float (x, y, width, height) pixels and
        scores ``(N,)`` in [0, 1]."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image_rgb))
        if self._first:  # the first run logs a line about re-aligning its input buffer straight to fd 2
            with _native_stderr_silenced():
                found = self._detector.detect(image).detections
            self._first = False
        else:
            found = self._detector.detect(image).detections
        boxes = np.array([(d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width,
                           d.bounding_box.height) for d in found], np.float64).reshape(-1, 4)
        scores = np.array([d.categories[0].score for d in found], np.float64)
        return boxes, scores
