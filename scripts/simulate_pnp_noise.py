"""How noise on the predicted canonical coordinates degrades the PnP pose: a simulation with the canonical mesh.

Per trial: a random pose (depth of the canonical origin uniform in [0.3, 0.9] m, |yaw| <= 60, |pitch| <= 25,
|roll| <= 20 degrees, face centre anywhere that keeps the whole mesh in a 1280x720 image, fx = fy = 1000 px);
256 surface points on visible triangles (facing the camera and not hidden by another triangle), triangles
drawn in proportion to their image area as uniform pixel sampling would, with uniform random barycentrics;
pixels with i.i.d. Gaussian noise of 0.5 px per axis; canonical coordinates with i.i.d. Gaussian noise of
sigma mm per axis; pose by :func:`perspnet.pnp.solve_pose` (EPnP-RANSAC, then LM on the inliers).
The same poses and points serve every noise level. Failed solves are counted and left out of the errors.

Usage: python scripts/simulate_pnp_noise.py [--trials 500] [--noise-mm 0 1 2 4 8] [--reproj-threshold-px 8]
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from perspnet.conventions import MM_PER_M, matrix_from_euler_deg, project_points, transform_points
from perspnet.face_model import FaceModel, load_face_model
from perspnet.metrics import euler_abs_error_deg
from perspnet.pnp import PnPConfig, solve_pose

# The figures claimed for this setup: noise mm -> (MAE_r degrees, tz error %).
CLAIMED = {1.0: (0.7, 0.3), 2.0: (1.9, 0.9), 4.0: (5.9, 2.6), 8.0: (24.0, 17.0)}


@dataclass(frozen=True)
class SimConfig:
    """Scene of the simulation.

    Attributes:
        image_wh: image (width, height), pixels.
        focal_px: fx = fy, pixels; principal point at the image centre.
        depth_m: (min, max) depth of the canonical origin, metres.
        max_abs_ypr_deg: bounds of |yaw|, |pitch|, |roll|, degrees (uniform within).
        n_points: correspondences per trial.
        pixel_noise_px: Gaussian sigma per pixel axis, pixels.
    """

    image_wh: tuple[int, int] = (1280, 720)
    focal_px: float = 1000.0
    depth_m: tuple[float, float] = (0.3, 0.9)
    max_abs_ypr_deg: tuple[float, float, float] = (60.0, 25.0, 20.0)
    n_points: int = 256
    pixel_noise_px: float = 0.5

    @property
    def K(self) -> np.ndarray:
        w, h = self.image_wh
        return np.array([[self.focal_px, 0, (w - 1) / 2], [0, self.focal_px, (h - 1) / 2], [0, 0, 1.0]])


def random_pose(rng: np.random.Generator, face: FaceModel, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """A random ``(R_cam_face (3, 3), t_cam_face (3,) metres)`` with the whole mesh inside the image."""
    w, h = cfg.image_wh
    K_inv = np.linalg.inv(cfg.K)
    while True:
        R = matrix_from_euler_deg(*rng.uniform(-1, 1, 3) * np.array(cfg.max_abs_ypr_deg))
        depth = rng.uniform(*cfg.depth_m)
        t = depth * (K_inv @ np.array([rng.uniform(0, w - 1), rng.uniform(0, h - 1), 1.0]))
        uv = project_points(cfg.K, transform_points(R, t, face.verts_face_m))
        if (uv >= 0).all() and (uv[:, 0] <= w - 1).all() and (uv[:, 1] <= h - 1).all():
            return R, t


def _ray_hits(dirs: np.ndarray, tri_cam: np.ndarray) -> np.ndarray:
    """Moller-Trumbore: ``(M, T)`` parameter ``s`` at which the ray ``s * dirs[m]`` from the camera centre meets
    triangle ``tri_cam[t]`` (``(T, 3, 3)``, camera frame), inf where it misses. With ``dirs`` the points
    themselves, s = 1 at the point, so a hit with s < 1 hides it."""
    v0, e1, e2 = tri_cam[:, 0], tri_cam[:, 1] - tri_cam[:, 0], tri_cam[:, 2] - tri_cam[:, 0]
    p = np.cross(dirs[:, None, :], e2[None])                              # (M, T, 3)
    det = np.einsum("mtk,tk->mt", p, e1)
    origin_to_v0 = -v0                                                     # ray origin (0) minus v0, (T, 3)
    q = np.cross(origin_to_v0, e1)                                         # (T, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / det
        u = np.einsum("mtk,tk->mt", p, origin_to_v0) * inv
        v = np.einsum("tk,mk->mt", q, dirs) * inv
        s = np.einsum("tk,tk->t", q, e2)[None] * inv
    hit = (np.abs(det) > 1e-18) & (u >= 0) & (v >= 0) & (u + v <= 1) & (s > 0)
    return np.where(hit, s, np.inf)


def sample_visible_points(rng: np.random.Generator, face: FaceModel, R: np.ndarray, t: np.ndarray,
                          cfg: SimConfig) -> np.ndarray:
    """``(n_points, 3)`` canonical face points (metres) on the surface parts the camera sees."""
    verts_cam = transform_points(R, t, face.verts_face_m)
    tri_cam = verts_cam[face.triangles]                                   # (T, 3, 3)
    normals = np.cross(tri_cam[:, 1] - tri_cam[:, 0], tri_cam[:, 2] - tri_cam[:, 0])
    front = np.einsum("tk,tk->t", normals, tri_cam.mean(axis=1)) < 0     # normal towards the camera
    tris = face.triangles[front]
    uv = project_points(cfg.K, verts_cam)[tris]                           # (F, 3, 2)
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    area_px = 0.5 * np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
    kept: list[np.ndarray] = []
    n_kept = 0
    while n_kept < cfg.n_points:
        idx = rng.choice(len(tris), size=2 * cfg.n_points, p=area_px / area_px.sum())
        r1, r2 = np.sqrt(rng.random(idx.size)), rng.random(idx.size)
        bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], axis=1)        # uniform on the triangle
        pts_face = np.einsum("mk,mkd->md", bary, face.verts_face_m[tris[idx]])
        s = _ray_hits(transform_points(R, t, pts_face), verts_cam[tris])
        s[np.arange(idx.size), idx] = np.inf                               # a point does not hide itself
        visible = s.min(axis=1) > 1 - 1e-6
        kept.append(pts_face[visible])
        n_kept += int(visible.sum())
    return np.concatenate(kept)[: cfg.n_points]


def run(trials: int, noise_mm: list[float], pnp: PnPConfig, cfg: SimConfig, seed: int) -> list[dict]:
    """One row per noise level: MAE of yaw/pitch/roll and MAE_r (deg), tz error (% of true depth), failures."""
    rng = np.random.default_rng(seed)
    face = load_face_model()
    errs = {s: {"ypr": [], "tz_pct": [], "inl": [], "fail": 0} for s in noise_mm}
    for _ in range(trials):
        R, t = random_pose(rng, face, cfg)
        pts_face = sample_visible_points(rng, face, R, t, cfg)
        uv = project_points(cfg.K, transform_points(R, t, pts_face))
        uv_noisy = uv + rng.normal(0, cfg.pixel_noise_px, uv.shape)
        for sigma in noise_mm:
            pts_noisy = pts_face + rng.normal(0, sigma / MM_PER_M, pts_face.shape)
            res = solve_pose(uv_noisy, pts_noisy, cfg.K, config=pnp)
            e = errs[sigma]
            if not res.success:
                e["fail"] += 1
                continue
            e["ypr"].append(euler_abs_error_deg(res.R_cam_face, R))
            e["tz_pct"].append(100 * abs(res.t_cam_face[2] - t[2]) / t[2])
            e["inl"].append(res.n_inliers / len(uv))
    rows = []
    for sigma in noise_mm:
        e = errs[sigma]
        ypr = np.array(e["ypr"]).reshape(-1, 3)
        rows.append(dict(noise_mm=sigma, yaw=ypr[:, 0].mean(), pitch=ypr[:, 1].mean(), roll=ypr[:, 2].mean(),
                         mae_r=ypr.mean(), tz_pct=np.mean(e["tz_pct"]), tz_pct_median=np.median(e["tz_pct"]),
                         inlier_pct=100 * np.mean(e["inl"]), fails=e["fail"], n=len(e["tz_pct"])))
    return rows


def format_rows(rows: list[dict]) -> str:
    head = (f"{'noise mm':>8}  {'yaw':>6} {'pitch':>6} {'roll':>6} {'MAE_r':>6}  {'tz %':>6} {'tz % med':>8}"
            f"  {'inliers %':>9} {'fails':>5} {'n':>5}  {'claimed MAE_r / tz %':>20}")
    lines = [head, "-" * len(head)]
    for r in rows:
        claim = CLAIMED.get(r["noise_mm"])
        claim_s = f"{claim[0]:.1f} / {claim[1]:.1f}" if claim else "-"
        lines.append(f"{r['noise_mm']:>8.1f}  {r['yaw']:>6.2f} {r['pitch']:>6.2f} {r['roll']:>6.2f} "
                     f"{r['mae_r']:>6.2f}  {r['tz_pct']:>6.2f} {r['tz_pct_median']:>8.2f}  {r['inlier_pct']:>9.1f} "
                     f"{r['fails']:>5d} {r['n']:>5d}  {claim_s:>20}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=500, help="random poses per noise level")
    ap.add_argument("--noise-mm", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0, 8.0],
                    help="sigma of the i.i.d. Gaussian noise per canonical axis, mm")
    ap.add_argument("--reproj-threshold-px", type=float, default=PnPConfig.reproj_threshold_px,
                    help="RANSAC inlier threshold, pixels")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pnp = PnPConfig(reproj_threshold_px=args.reproj_threshold_px)
    cfg = SimConfig()
    rows = run(args.trials, args.noise_mm, pnp, cfg, args.seed)
    print(f"{args.trials} poses, {cfg.n_points} points, {cfg.pixel_noise_px} px pixel noise, "
          f"K fx={cfg.focal_px:g} for {cfg.image_wh[0]}x{cfg.image_wh[1]}, depth {cfg.depth_m} m, "
          f"|yaw,pitch,roll| <= {cfg.max_abs_ypr_deg} deg; {pnp}")
    print(format_rows(rows))


if __name__ == "__main__":
    main()
