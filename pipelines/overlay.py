"""``overlay.mp4``: each frame with every tracked face's mesh, axes, box and id drawn on it.

A second decoding pass over the video (the filtered poses are known only after the whole clip): per frame with
a pose, the frame's mesh is placed with the filtered pose, projected with K and the lens distortion, and its
triangles facing the camera are drawn as a half-transparent wireframe; the face axes (x red, y green, z blue,
``AXIS_LENGTH_M`` long) start at the canonical origin. The box the network ran on is drawn in yellow, in grey
without a pose. Colours are given as RGB because frames are RGB here (OpenCV's drawing does not care about the
order). Each face's id is written above its box.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from perspnet.intrinsics import Intrinsics
from pipelines.track_outputs import PoseTrack
from baseio.video_io import WRITE_TIME_BASE, DecodeReport, VideoWriter, iter_frames
from tracker.acquisition import project_to_image

__all__ = ["AXIS_LENGTH_M", "OverlayFace", "draw_frame", "write_overlay"]

AXIS_LENGTH_M = 0.05
_MESH_RGB, _BOX_RGB, _NO_POSE_RGB = (235, 235, 235), (255, 220, 0), (150, 150, 150)
_MESH_ALPHA = 0.45
_AXES_RGB = ((255, 0, 0), (0, 255, 0), (0, 80, 255))
_MAX_DRAW_PX = 1e5  # projections beyond this are not drawn


def _drawable_pixels(points_cam_m: np.ndarray, intr: Intrinsics) -> np.ndarray | None:
    """``(N, 2)`` int32 pixels of camera-frame points, or None when one lies less than 1 cm in front of the
    camera or projects absurdly far out (a wild pose): there is nothing sensible to draw."""
    if not np.all(np.isfinite(points_cam_m)) or points_cam_m[:, 2].min() <= 0.01:
        return None
    px = project_to_image(points_cam_m, intr)
    return np.round(px).astype(np.int32) if np.all(np.abs(px) < _MAX_DRAW_PX) else None


def draw_frame(image_rgb: np.ndarray, intr: Intrinsics, triangles: np.ndarray,
               verts_cam_m: np.ndarray | None, R_cam_face: np.ndarray | None, t_cam_face: np.ndarray | None,
               box: np.ndarray | None, label: str, face_label: str = "") -> np.ndarray:
    """A copy of ``image_rgb (H, W, 3) uint8`` with the drawing (see the module docstring).

    Args:
        intr: the camera of the frame.
        triangles: ``(T, 3)`` mesh triangles.
        verts_cam_m: ``(n, 3)`` mesh in the camera frame (metres), or None without a pose.
        R_cam_face, t_cam_face: the pose, for the axes (None without a pose).
        box: ``(3,)`` (cx, cy, side) pixels, or None / nan.
        label: text written at the top left ("" for none).
        face_label: text written above the box ("" for none), e.g. the face id.
    """
    out = image_rgb.copy()
    mesh_px = None if verts_cam_m is None else _drawable_pixels(verts_cam_m, intr)
    has_pose = mesh_px is not None
    if box is not None and np.all(np.isfinite(box)):
        cx, cy, side = box
        p0, p1 = (round(cx - side / 2), round(cy - side / 2)), (round(cx + side / 2), round(cy + side / 2))
        cv2.rectangle(out, p0, p1, _BOX_RGB if has_pose else _NO_POSE_RGB, 1, cv2.LINE_AA)
        if face_label:
            cv2.putText(out, face_label, (p0[0], p0[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        _BOX_RGB if has_pose else _NO_POSE_RGB, 1, cv2.LINE_AA)
    if has_pose:
        corners = verts_cam_m[triangles]  # (T, 3, 3)
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        front = np.einsum("ti,ti->t", normals, corners.mean(axis=1)) < 0  # facing the camera centre
        polys = mesh_px[triangles[front]].reshape(-1, 3, 1, 2)
        wire = out.copy()
        cv2.polylines(wire, list(polys), True, _MESH_RGB, 1, cv2.LINE_AA)
        out = cv2.addWeighted(wire, _MESH_ALPHA, out, 1.0 - _MESH_ALPHA, 0.0)
        ends = t_cam_face + AXIS_LENGTH_M * np.vstack([np.zeros(3), R_cam_face.T])  # origin, then x y z tips
        axes = _drawable_pixels(ends, intr)
        for k, colour in enumerate(_AXES_RGB if axes is not None else ()):
            cv2.line(out, tuple(map(int, axes[0])), tuple(map(int, axes[k + 1])), colour, 2, cv2.LINE_AA)
    if label:
        cv2.putText(out, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


@dataclass(frozen=True)
class OverlayFace:
    """One face to draw: its ``face_id``, its ``track`` (its own frames), ``shapes_face_m (N, n, 3)`` per-frame
    shapes (canonical frame, metres) or None to draw ``identity_face_m (n, 3)`` on every frame."""

    face_id: int
    track: PoseTrack
    shapes_face_m: np.ndarray | None
    identity_face_m: np.ndarray | None


def write_overlay(video: str | os.PathLike[str], path: str | os.PathLike[str], faces: list[OverlayFace],
                  triangles: np.ndarray, intr: Intrinsics, fps: float | None, frame_index: np.ndarray,
                  no_pose_text: str = "no pose") -> int:
    """Decode ``video`` again and write the overlay to ``path`` (H.264 via :class:`VideoWriter`, atomic).

    Args:
        faces: the faces to draw (matched to the frames by index).
        triangles: ``(T, 3)`` mesh triangles.
        intr: the camera.
        fps: nominal rate of the output; frames keep their stream timestamps (shifted to start at >= 0).
        frame_index: ``(F,)`` the frames to write (every decoded frame of the first pass).
        no_pose_text: written after the time on frames where no face has a pose (e.g. that the clip has no face).

    Returns the number of frames written.
    """
    wanted = {int(f) for f in frame_index}
    rows = [{int(f): k for k, f in enumerate(face.track.frame)} for face in faces]
    rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(30)
    offset, last = None, -1.0
    with VideoWriter(path, intr.width, intr.height, rate) as writer:
        for frame in iter_frames(video, DecodeReport()):  # decode errors were reported by the first pass
            if frame.index not in wanted:
                continue
            offset = min(frame.timestamp_s, 0.0) if offset is None else offset
            image, posed = frame.image_rgb, 0
            for face, face_rows in zip(faces, rows):
                k = face_rows.get(frame.index)
                if k is None:
                    continue
                track, verts, R, t = face.track, None, None, None
                shape = face.shapes_face_m[k] if face.shapes_face_m is not None else face.identity_face_m
                if track.success[k] and shape is not None and np.isfinite(track.t[k]).all():
                    R, t = track.R[k], track.t[k]
                    verts = np.asarray(shape, np.float64) @ R.T + t
                    posed += 1
                image = draw_frame(image, intr, triangles, verts, R, t, track.box[k], "", f"face {face.face_id}")
            label = f"{frame.index}  {frame.timestamp_s:.3f} s" + ("" if posed else f"  {no_pose_text}")
            image = draw_frame(image, intr, triangles, None, None, None, None, label)
            time_s = max(frame.timestamp_s - offset, last + float(WRITE_TIME_BASE))
            writer.write(image, time_s)
            last = time_s
    return writer.frames_written
