"""Single-image PerspNet inference: crop by a face box, batched forward, PnP-RANSAC with the true K.

For each face: the network predicts the canonical shape (UV map -> vertices X_hat), the face mask, and
for m pixels spread over the predicted mask their canonical 3D points X_corr = M @ X_hat. Those pixels,
mapped back to full-image coordinates, and X_corr form 2D-3D correspondences for PnP with the camera's
own K (and distortion), which gives rotation and metric translation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from perspnet.checkpoint import load_checkpoint
from perspnet.conventions import transform_points
from perspnet.network.config import COORD_SCALE
from perspnet.network.fold import fold_batchnorm
from perspnet.network.model import spread_choose_from_mask
from perspnet.pnp import MIN_POINTS, PnPConfig, PnPResult, solve_pose_batch
from perspnet.validate import check_int
from perspnet.crop import crop_affine, turn_crop_affine, warp_crop

__all__ = ["CropView", "FaceEstimate", "PerspNetPredictor", "SAMPLED_POINTS", "TTA_VIEWS", "crop_pixels_to_image",
           "pick_device"]


@dataclass
class FaceEstimate:
    """One face's estimate. Frames and units as in :mod:`perspnet.conventions`.

    Attributes:
        pnp: the pose solver's result (``success``, ``R_cam_face``, ``t_cam_face`` metres, inliers,
            reprojection error px, confidence in [0, 1]).
        verts_face_m: ``(n, 3)`` predicted canonical shape, metres.
        points_px: ``(m, 2)`` full-image pixels of the sampled face pixels.
        points_face_m: ``(m, 3)`` their predicted canonical 3D points, metres.
        box: ``(3,)`` the face box used (centre x, centre y, side), pixels.
        mask_fraction: fraction of the crop the network segmented as face.
    """

    pnp: PnPResult
    verts_face_m: np.ndarray
    points_px: np.ndarray
    points_face_m: np.ndarray
    box: np.ndarray
    mask_fraction: float

    @property
    def verts_cam_m(self) -> np.ndarray:
        return transform_points(self.pnp.R_cam_face, self.pnp.t_cam_face, self.verts_face_m)


def crop_pixels_to_image(choose: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """Full-image pixel coordinates ``(m, 2)`` (x, y) of flat crop pixel indices ``choose (m,)``
    (``row * size + col``) under the crop affine ``(2, 3)`` (full image -> crop pixels)."""
    rows, cols = np.divmod(choose, size)
    A_inv = np.linalg.inv(np.vstack([affine, [0.0, 0.0, 1.0]]))
    return np.column_stack([cols, rows]).astype(np.float64) @ A_inv[:2, :2].T + A_inv[:2, 2]


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class CropView:
    """One view of a face for test-time augmentation: the crop mirrored left-right (``flip``), turned about
    its centre by ``turn_deg`` (counter-clockwise on screen, :func:`perspnet.training_data.turn_crop_affine`),
    and of a face box ``box_scale`` times the side. A mirrored view's pixels map back by column
    ``size - 1 - c`` and its canonical points by ``x -> -x`` (the canonical face frame's x axis runs across
    the face); every view's pixels map back to the full image through its own crop affine."""

    flip: bool = False
    turn_deg: float = 0.0
    box_scale: float = 1.0


_TURNED_AND_SCALED = ((0.0, 1.0), (-10.0, 1.0), (10.0, 1.0), (-5.0, 1.0), (5.0, 1.0), (0.0, 0.9), (0.0, 1.1))
TTA_VIEWS: dict[str, tuple[CropView, ...]] = {
    "none": (CropView(),),
    "flip": (CropView(), CropView(flip=True)),
    "turn": tuple(CropView(flip, turn) for turn in (0.0, -10.0, 10.0) for flip in (False, True)),
    "full": tuple(CropView(flip, turn, scale) for turn, scale in _TURNED_AND_SCALED for flip in (False, True)),
}
"""Test-time augmentation presets (the plain view first): all views' correspondences join one PnP."""


SAMPLED_POINTS = 1024
"""Pixels sampled per face and view at inference (:attr:`PerspNetPredictor.n_points`). Each pixel's
correspondence depends on the other chosen pixels only through their mean feature (the correspondence head's
global context, a mean over pixels spread evenly over the mask: much the same for 256 or 1024 of them), so
more pixels than the checkpoint was trained with (``ModelConfig.n_points``, 256 for the lite model) can be
used: their errors are partly independent and average out in PnP, and which pixels happen to be chosen
matters less, so the pose changes less from one frame of a video to the next (docs/benchmarks.md, "Raw
measurement noise")."""


class PerspNetPredictor:
    """A loaded PerspNet checkpoint plus the PnP solver.

    Args:
        checkpoint: path of a checkpoint; the shipped one when None.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        pnp: PnP-RANSAC settings.
        tta: test-time augmentation, a key of :data:`TTA_VIEWS` (``"none"``, ``"flip"``: also the mirrored
            crop, ``"turn"``: 6 views, the plain and mirrored crop turned by 0 and +-10 degrees, ``"full"``:
            14 views, those turned by 0, +-5, +-10 degrees and scaled by 0.9 and 1.1) or a tuple of
            :class:`CropView`: ``m`` correspondences per view, all in one PnP, for as many times the network
            time. For single images (the tracker keeps one view). Figures: docs/experiments.md, "Test
            time".
        n_points: pixels sampled per face and view, spread evenly over the predicted face mask
            (:data:`SAMPLED_POINTS`; the checkpoint's ``config.n_points`` for the sampling it was trained with).
    """

    def __init__(self, checkpoint=None, device: str = "auto", pnp: PnPConfig = PnPConfig(),
                 tta: str | tuple[CropView, ...] = "none", n_points: int = SAMPLED_POINTS):
        self.n_points = check_int("n_points", n_points, lo=MIN_POINTS)
        self.device = pick_device(device)
        self.model, self.topology, self.crop, _ = load_checkpoint(checkpoint, self.device)
        self.config = self.model.config
        blank = torch.zeros(1, 3, self.config.input_size, self.config.input_size, device=self.device)
        fold_batchnorm(self.model, lambda: self.model.encode(blank))  # inference only: one pass less per layer
        self.pnp = pnp
        if isinstance(tta, str) and tta not in TTA_VIEWS:
            raise ValueError(f"tta must be one of {sorted(TTA_VIEWS)} or a tuple of CropView, got {tta!r}")
        self.views = TTA_VIEWS[tta] if isinstance(tta, str) else tuple(tta)
        if not self.views:
            raise ValueError("tta: at least one view")

    def _view_affines(self, boxes: list[np.ndarray], view: CropView) -> np.ndarray:
        size = self.config.input_size
        return np.stack([turn_crop_affine(crop_affine(np.asarray(b, float) * [1.0, 1.0, view.box_scale], size,
                                                      self.crop.margin), size, view.turn_deg) for b in boxes])

    @torch.no_grad()
    def network(self, images: list[np.ndarray], boxes: list[np.ndarray], keep_corr_prob: bool = False,
                keep_masks: bool = False) -> dict[str, np.ndarray]:
        """Run the network on the faces in ``boxes`` ``(cx, cy, side)`` of ``images`` ``(H, W, 3) uint8``.

        Returns numpy arrays, with ``V`` views (:attr:`views`): ``points_px (B, V m, 2)`` full-image pixels
        and ``points_face_m (B, V m, 3)`` their predicted canonical points (view after view, the plain view
        first); of the first view: ``affine (B, 2, 3)`` (full image -> crop), ``choose (B, m)`` (crop pixel
        index ``row * size + col`` of the first ``m`` points), ``verts_face_m (B, n, 3)``,
        ``mask_fraction (B,)``. ``keep_corr_prob`` adds the correspondence matrices ``corr_prob (B, m, n)``
        (``points_face_m = corr_prob @ verts_face_m``; one view only); ``keep_masks`` the predicted face
        masks ``mask (B, S, S) bool`` (crop pixels, first view).
        """
        if keep_corr_prob and len(self.views) > 1:
            raise ValueError("keep_corr_prob: other views' matrices index other crops or mirrored vertices; use tta='none'")
        size, b = self.config.input_size, len(boxes)
        affines = [self._view_affines(boxes, view) for view in self.views]
        crops = []
        for view, view_affines in zip(self.views, affines):
            view_crops = np.stack([warp_crop(img, A, size) for img, A in zip(images, view_affines)])
            crops.append(view_crops[:, :, ::-1] if view.flip else view_crops)
        x = self.config.normalize_images(torch.from_numpy(np.ascontiguousarray(np.concatenate(crops))).to(self.device))
        dense = self.model.encode(x)
        mask = dense["seg_logits"].argmax(1).bool()
        choose = spread_choose_from_mask(mask.cpu(), self.n_points).to(self.device)
        out = self.model.correspond(dense, choose)
        choose = choose.cpu().numpy()
        points = out["points_corr"].cpu().numpy().astype(np.float64) / COORD_SCALE
        points_px, points_face = [], []
        for v, (view, view_affines) in enumerate(zip(self.views, affines)):
            view_choose, view_points = choose[v * b:(v + 1) * b], points[v * b:(v + 1) * b]
            if view.flip:  # the mirrored crop's pixels and canonical points back to the original's
                rows, cols = np.divmod(view_choose, size)
                view_choose = rows * size + (size - 1 - cols)
                view_points = view_points * np.array([-1.0, 1.0, 1.0])
            points_px.append(np.stack([crop_pixels_to_image(c, A, size) for c, A in zip(view_choose, view_affines)]))
            points_face.append(view_points)
        result = {"affine": affines[0], "choose": choose[:b], "points_px": np.concatenate(points_px, axis=1),
                  "points_face_m": np.concatenate(points_face, axis=1),
                  "verts_face_m": out["verts_hat"][:b].cpu().numpy().astype(np.float64) / COORD_SCALE,
                  "mask_fraction": mask[:b].float().mean((1, 2)).cpu().numpy()}
        if keep_masks:
            result["mask"] = mask[:b].cpu().numpy()
        if keep_corr_prob:
            result["corr_prob"] = out["corr_prob"].cpu().numpy().astype(np.float64)
        return result

    def predict(self, images: list[np.ndarray], boxes: list[np.ndarray], Ks: list[np.ndarray],
                dist: np.ndarray | None = None, priors: list | None = None) -> list[FaceEstimate]:
        """Estimate shape and pose for each (image, box, K); ``dist``: shared OpenCV distortion coefficients;
        ``priors``: optional ``(R, t)`` warm starts, one per face (or None)."""
        net = self.network(images, boxes)
        points_px = list(net["points_px"])
        results = solve_pose_batch(points_px, list(net["points_face_m"]), np.stack(Ks), dist=dist, priors=priors,
                                   config=self.pnp)
        return [FaceEstimate(pnp=r, verts_face_m=net["verts_face_m"][i], points_px=points_px[i],
                             points_face_m=net["points_face_m"][i], box=np.asarray(boxes[i], float),
                             mask_fraction=float(net["mask_fraction"][i])) for i, r in enumerate(results)]
