"""Baselines evaluated beside PerspNet on the same test set.

* ``mediapipe_pnp``: MediaPipe Face Landmarker's 468 landmarks + the canonical mean mesh (an average
  adult face, IPD 63 mm) + PnP with the true K. Shape = the mean mesh for every face.
* ``direct_regress``: the paper's "Direct 6DoF regress" ablation (:mod:`perspnet.network.direct`).
"""
from __future__ import annotations

import numpy as np

from perspnet.face_model import FaceModel
from perspnet.landmarker import FaceLandmarker
from perspnet.pnp import PnPConfig, PnPResult, solve_pose
from perspnet.crop import crop_affine, warp_crop

__all__ = ["MediaPipePnP"]

DETECT_CROP_SIZE = 384  # the landmarker sees the face box region at this size (its detector is short-range)


class MediaPipePnP:
    """MediaPipe landmarks + canonical mesh + PnP(K). Given the same face box as the other methods, the
    landmarker runs on a square crop around it, so small faces in large frames are found too."""

    def __init__(self, face_model: FaceModel, pnp: PnPConfig = PnPConfig()):
        self.face_model = face_model
        self.pnp = pnp
        self.landmarker = FaceLandmarker("image")

    def close(self) -> None:
        self.landmarker.close()

    def __call__(self, image_rgb: np.ndarray, box: np.ndarray, K: np.ndarray, dist=None) -> PnPResult | None:
        """Pose of the face in ``box`` ``(cx, cy, side)``; None when the landmarker finds no face."""
        A = crop_affine(np.asarray(box, float), DETECT_CROP_SIZE, 2.0)
        faces = self.landmarker.detect(warp_crop(image_rgb, A, DETECT_CROP_SIZE))
        if not faces:
            return None
        A_inv = np.linalg.inv(np.vstack([A, [0, 0, 1]]))
        points_px = faces[0].points_px @ A_inv[:2, :2].T + A_inv[:2, 2]
        return solve_pose(points_px, self.face_model.verts_face_m, K, dist=dist, config=self.pnp)
