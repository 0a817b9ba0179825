"""Where PerspNet's rotation error comes from, on a test set (ours or ARKitFace layout).

Per face, one network pass (ground-truth face box, as perspnet-eval) and three PnPs that differ only in
the canonical points given for the sampled pixels:

* ``network``: ``X_corr = M @ X_hat``, what the method uses;
* ``true shape``: ``M @ V_gt``, the network's correspondence matrix with the true mesh: the error left is M's
  (which pixel is which point of the face);
* ``mean shape``: ``M @ V_mean``, the canonical mean face in place of the predicted one.

Then, for the method's own poses: the error rotation in the face frame, ``R_gt^T R_pred`` as an axis-angle
vector (degrees; face axes x across, y down, z out of the face), per subject its mean (a bias) and the mean
distance of the samples from that mean (a spread); and MAE_r by |yaw| and by the face's roll in the image
(the angle of its x axis, projected at the face's origin, from the image's rows).

``--ramp G --ramp-towards up|down|left|right`` first multiplies each image by a brightness ramp across the
face's crop, ``1 + G`` on the named side to ``1 - G`` on the other (the lighting a photographed texture may
carry): how far the biases move says how much the network reads pose from shading.

Usage: python scripts/diagnose_rotation.py --data data/synth_test [--checkpoint CKPT] [--limit 400]
       [--ramp 0.3 --ramp-towards up]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from perspnet.conventions import euler_deg_from_matrix, project_points
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.face_model import load_face_model
from perspnet.inference import PerspNetPredictor
from perspnet.metrics import sample_metrics
from perspnet.pnp import solve_pose_batch
from perspnet.crop import box_from_points

YAW_BINS_DEG = (0, 15, 30, 45, 90)
IMAGE_ROLL_BINS_DEG = (0, 15, 30, 90)
RAMP_DIRECTIONS = {"up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}  # image x, y


def ramp_image(image_rgb: np.ndarray, box: np.ndarray, half_side_px: float, strength: float,
               towards: tuple[float, float]) -> np.ndarray:
    """``image_rgb (H, W, 3) uint8`` times ``1 + strength * (d . (p - c)) / half_side_px`` (``c`` the box
    centre, ``d`` the unit direction ``towards``, pixels), clipped to the crop's square and to [0, 255]."""
    h, w = image_rgb.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    along = (towards[0] * (xs - box[0]) + towards[1] * (ys - box[1])) / half_side_px
    gain = 1 + strength * np.clip(along, -1, 1)
    return np.clip(image_rgb * gain[:, :, None], 0, 255).astype(np.uint8)


def image_roll_deg(K: np.ndarray, R_cam_face: np.ndarray, t_cam_face: np.ndarray) -> float:
    """Unsigned angle (degrees, 0-90) between the image's rows and the face's x axis (camera frame, metres)
    as projected at the face's origin: 0 for an upright or upside-down face, 90 for one lying on its side."""
    ends = project_points(K, np.stack([t_cam_face, t_cam_face + 0.05 * R_cam_face[:, 0]]))
    dx, dy = ends[1] - ends[0]
    angle = abs(np.degrees(np.arctan2(dy, dx)))
    return float(min(angle, 180 - angle))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--ramp", type=float, default=0.0, help="brightness ramp strength G (default: none)")
    ap.add_argument("--ramp-towards", choices=sorted(RAMP_DIRECTIONS), default="up", help="the ramp's bright side")
    args = ap.parse_args()
    records = ArkitLayoutDataset(args.data)
    face_model = load_face_model()
    predictor = PerspNetPredictor(args.checkpoint, "cpu")
    n = len(records) if args.limit is None else min(args.limit, len(records))
    errors = {"network": [], "true shape": [], "mean shape": []}  # (mae_r, mae_t) per sample
    subjects, err_vec_deg, yaw_gt, roll_image, mae_r = [], [], [], [], []
    for start in tqdm(range(0, n, args.batch_size), desc="diagnose", unit="batch"):
        batch = [records[i] for i in range(start, min(start + args.batch_size, n))]
        boxes = [box_from_points(project_points(r.K, r.verts_cam_m)) for r in batch]
        images = [r.image_rgb for r in batch]
        if args.ramp:
            half_side = [b[2] * predictor.crop.margin / 2 for b in boxes]
            images = [ramp_image(im, b, hs, args.ramp, RAMP_DIRECTIONS[args.ramp_towards])
                      for im, b, hs in zip(images, boxes, half_side)]
        net = predictor.network(images, boxes, keep_corr_prob=True)
        pixels = list(net["points_px"])
        Ks = np.stack([r.K for r in batch])
        shapes = {"network": net["verts_face_m"], "true shape": np.stack([r.verts_face_m for r in batch]),
                  "mean shape": np.repeat(face_model.verts_face_m[None], len(batch), axis=0)}
        for name, verts in shapes.items():
            points = np.einsum("bmn,bnk->bmk", net["corr_prob"], verts)
            for r, v, res in zip(batch, verts, solve_pose_batch(pixels, list(points), Ks, config=predictor.pnp)):
                m = sample_metrics(res.R_cam_face, res.t_cam_face, v, r.R_cam_face, r.t_cam_face, r.verts_face_m,
                                   face_model)
                errors[name].append((m.mae_r, m.mae_t))
                if name == "network":
                    subjects.append(r.subject)
                    err_vec_deg.append(np.degrees(cv2.Rodrigues(r.R_cam_face.T @ res.R_cam_face)[0].ravel()))
                    yaw_gt.append(euler_deg_from_matrix(r.R_cam_face)[0])
                    roll_image.append(image_roll_deg(r.K, r.R_cam_face, r.t_cam_face))
                    mae_r.append(m.mae_r)
    print(f"\n{n} samples of {args.data}; points given to PnP for the network's pixels:")
    for name, e in errors.items():
        e = np.asarray(e)
        print(f"  {name:11s} MAE_r {e[:, 0].mean():5.2f} deg   MAE_t {e[:, 1].mean():6.2f} mm")
    subjects, err_vec_deg = np.asarray(subjects), np.asarray(err_vec_deg)
    print("\nerror rotation in the face frame (axis-angle, degrees), per subject:")
    print(f"  {'subject':34s} {'n':>4s}  {'mean (bias) x y z':>22s}  |bias|  spread  MAE_r")
    for s in np.unique(subjects):
        v = err_vec_deg[subjects == s]
        bias = v.mean(axis=0)
        spread = np.linalg.norm(v - bias, axis=1).mean()
        print(f"  {s:34s} {len(v):4d}  {bias[0]:6.2f} {bias[1]:6.2f} {bias[2]:6.2f}  {np.linalg.norm(bias):6.2f}"
              f"  {spread:6.2f}  {np.mean(np.asarray(mae_r)[subjects == s]):5.2f}")
    mae_r = np.asarray(mae_r)
    for title, angle, bins in (("true |yaw|", np.abs(yaw_gt), YAW_BINS_DEG),
                               ("the face's roll in the image", np.asarray(roll_image), IMAGE_ROLL_BINS_DEG)):
        print(f"\nMAE_r by {title}:")
        for lo, hi in zip(bins[:-1], bins[1:]):
            sel = (angle >= lo) & (angle < hi if hi < bins[-1] else angle <= hi)
            if sel.any():
                print(f"  {lo:2d}-{hi:2d} deg: {mae_r[sel].mean():5.2f} ({sel.sum()} samples)")
    print(f"\nper-sample MAE_r: median {np.median(mae_r):.2f}, 95th percentile {np.percentile(mae_r, 95):.2f}")


if __name__ == "__main__":
    main()
