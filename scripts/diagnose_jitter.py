"""Where the raw per-frame pose noise of the tracker comes from, on a real clip.

Tracks ``--frames`` frames of a video (the streaming tracker: boxes, identity), then measures every frame
again as the refine pass does (the clip's final identity, warm from the streaming pose) and compares:

* ``raw track``: the frame-to-frame noise of those measurements (RMS second difference over frames).
* Per frame, holding everything else fixed, the pose's spread when one source varies, as the second
  difference that much independent noise per frame would give (spread x sqrt(6)):
  (a) ``RANSAC draws``: the same correspondences solved again, and in shuffled orders (other draws);
  (b) ``pixel sampling``: other pixels of the same predicted mask (the evenly spaced ranks moved by a
  fraction of their step);
  (c) ``crop shift`` / ``crop scale``: the tracker's box moved by 1 pixel, or scaled by 1%, and its actual
  frame-to-frame motion in the track (second difference of its centre, px, and of its log side, %);
  (d) ``fixed crop``: the frame-to-frame noise with the crop held still (one box per window of
  ``--window`` frames, the median of the track's), so only the image and the network vary (and the
  head's true motion, which ``mediapipe`` shows on the same frames).
* With ``--mediapipe poses.csv`` (``mediapipe-track`` of the same clip and K): its jitter on the same frames.

Figures: tz in mm, |t| the norm of the translation's second difference in mm, rotation the angle of the
rotation's second difference (``log(R_{f+1} R_f^T) - log(R_f R_{f-1}^T)``) in degrees.

Usage: python scripts/diagnose_jitter.py VIDEO --intrinsics K.json [--frames 120] [--start 0]
                                          [--mediapipe DIR/poses.csv] [--window 15] [--n-points 1024]
"""
from __future__ import annotations

import argparse
from itertools import islice
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from baseio.video_io import iter_frames
from perspnet.conventions import MM_PER_M, matrix_from_quat_wxyz, rotation_angle_deg
from perspnet.face_model import load_face_model
from perspnet.inference import SAMPLED_POINTS, PerspNetPredictor, crop_pixels_to_image
from perspnet.intrinsics import load_intrinsics, undistort_points
from perspnet.network.config import COORD_SCALE
from perspnet.pnp import solve_pose
from tracker.measure import Correspondences, MeasureConfig, solve_frame
from tracker.online import OnlineTracker
from tracker.surface import closest_on_mesh

SQRT6 = np.sqrt(6.0)  # second difference of white noise of sd s has RMS s sqrt(6)
CROP_SHIFT_PX = 1.0
CROP_SCALE = 0.01
SAMPLING_PHASES = (0.25, 0.5, 0.75)  # of the step between the evenly spaced ranks
RANSAC_ORDERS = 3


def second_diff(t_m: np.ndarray, R: np.ndarray) -> tuple[float, float, float]:
    """RMS second difference over consecutive frames ``(N, 3)`` metres, ``(N, 3, 3)``: tz mm, |t| mm, rotation deg."""
    d2t = np.diff(t_m, n=2, axis=0) * MM_PER_M
    valid = np.isfinite(R).all(axis=(1, 2))
    R = np.where(valid[:, None, None], R, np.eye(3))
    step = Rotation.from_matrix(R[1:] @ np.transpose(R[:-1], (0, 2, 1))).as_rotvec()
    d2r = np.degrees(np.linalg.norm(np.diff(step, axis=0), axis=1))
    ok = np.isfinite(d2t).all(1) & valid[2:] & valid[1:-1] & valid[:-2]
    rms = lambda x: float(np.sqrt(np.mean(x[ok] ** 2)))  # noqa: E731
    return rms(d2t[:, 2]), rms(np.linalg.norm(d2t, axis=1)), rms(d2r)


def spread(poses: list[list[tuple[np.ndarray, np.ndarray]]]) -> tuple[float, float, float]:
    """Per frame a list of poses of variants (the first the reference): RMS over frames of the sd of tz
    (mm), of the translation's sd norm (mm) and of the angle to the reference (deg), each x sqrt(6)."""
    sz, st, sr = [], [], []
    for variants in poses:
        t = np.array([p[1] for p in variants]) * MM_PER_M
        sz.append(t[:, 2].var(ddof=1))
        st.append(t.var(axis=0, ddof=1).sum())
        sr.append(np.mean([rotation_angle_deg(variants[0][0], p[0]) ** 2 for p in variants[1:]]))
    return tuple(float(np.sqrt(np.mean(v)) * SQRT6) for v in (sz, st, sr))


def network_items(predictor: PerspNetPredictor, image: np.ndarray, boxes: list[np.ndarray],
                  phases: tuple[float, ...] = (0.0,)) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(points_px, points_face_m, verts_face_m)`` for each box on ``image`` and each sampling phase (box
    after box): the evenly spaced ranks of the predicted mask's pixels moved by ``phase`` of their step."""
    if phases == (0.0,):
        net = predictor.network([image] * len(boxes), boxes)
        return list(zip(net["points_px"], net["points_face_m"], net["verts_face_m"]))
    import torch

    cfg, size = predictor.config, predictor.config.input_size
    affines = predictor._view_affines(boxes, predictor.views[0])
    from perspnet.crop import warp_crop

    crops = np.stack([warp_crop(image, A, size) for A in affines])
    with torch.no_grad():
        dense = predictor.model.encode(cfg.normalize_images(torch.from_numpy(crops).to(predictor.device)))
        mask = dense["seg_logits"].argmax(1).bool().reshape(len(boxes), -1).cpu()
        out = []
        for phase in phases:
            choose = []
            for b in range(len(boxes)):
                idx = mask[b].nonzero().squeeze(1)
                step = (idx.numel() - 1) / (predictor.n_points - 1)
                ranks = torch.linspace(0, idx.numel() - 1, predictor.n_points) + phase * step
                ranks = ranks.clamp(max=idx.numel() - 1)
                choose.append(idx[ranks.round().long()])
            choose = torch.stack(choose).to(predictor.device)
            res = predictor.model.correspond(dense, choose)
            pts = res["points_corr"].cpu().numpy().astype(np.float64) / COORD_SCALE
            verts = res["verts_hat"].cpu().numpy().astype(np.float64) / COORD_SCALE
            out.append([(crop_pixels_to_image(c, A, size), p, v)
                        for c, A, p, v in zip(choose.cpu().numpy(), affines, pts, verts)])
    return [out[k][b] for b in range(len(boxes)) for k in range(len(phases))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--intrinsics", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--window", type=int, default=15, help="frames sharing one fixed crop in (d)")
    ap.add_argument("--mediapipe", type=Path, default=None, help="mediapipe-track's poses.csv of the clip")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--n-points", type=int, default=SAMPLED_POINTS, help="pixels sampled per face")
    args = ap.parse_args()

    intr = load_intrinsics(args.intrinsics)
    predictor = PerspNetPredictor(args.checkpoint, "cpu", n_points=args.n_points)
    face_model = load_face_model()
    frames = list(islice(iter_frames(args.video), args.start, args.start + args.frames))
    with OnlineTracker(predictor, intr, face_model) as tracker:
        results = []
        for k in tqdm(range(0, len(frames), 8), desc="track", leave=False):
            results += tracker.process(frames[k:k + 8])
    tracker.identity.refresh()
    cfg = MeasureConfig()
    keep = [i for i, r in enumerate(results) if r.measurement is not None and r.measurement.accepted]
    if len(keep) < 3:
        raise SystemExit(f"{args.video}: fewer than 3 frames with a pose in frames {args.start}..")

    def solve(item, prior):
        points_px, points_face, verts = item
        tri, bary = closest_on_mesh(points_face, verts, tracker.mesh)
        corr = Correspondences(undistort_points(points_px, intr), tri, bary)
        m, shape = solve_frame(corr, verts, tracker.identity, tracker.mesh, intr.K, prior, cfg)
        return m.pnp, shape, corr

    n = len(frames)
    raw = np.full((n, 3), np.nan), np.full((n, 3, 3), np.nan)
    sources: dict[str, list] = {k: [] for k in ("ransac", "sampling", "shift", "scale")}
    same_twice = 0.0
    for i in tqdm(keep, desc="sources", leave=False):
        r = results[i]
        prior = (r.measurement.pnp.R_cam_face, r.measurement.pnp.t_cam_face)
        box = r.box
        boxes = [box] + [box + d for d in ([CROP_SHIFT_PX, 0, 0], [-CROP_SHIFT_PX, 0, 0], [0, CROP_SHIFT_PX, 0],
                                            [0, -CROP_SHIFT_PX, 0])]
        boxes += [box * [1, 1, 1 + CROP_SCALE], box * [1, 1, 1 - CROP_SCALE]]
        items = network_items(predictor, frames[i].image_rgb, boxes)
        ref, shape, corr = solve(items[0], prior)
        if not ref.success:
            continue
        raw[0][i], raw[1][i] = ref.t_cam_face, ref.R_cam_face
        pose = (ref.R_cam_face, ref.t_cam_face)
        sols = [solve(it, prior)[0] for it in items[1:]]
        sources["shift"].append([pose] + [(p.R_cam_face, p.t_cam_face) for p in sols[:4] if p.success])
        sources["scale"].append([pose] + [(p.R_cam_face, p.t_cam_face) for p in sols[4:] if p.success])
        points_face = shape.verts_face_m[tracker.mesh.triangles[corr.tri]]
        points_face = np.einsum("mk,mkc->mc", corr.bary, points_face)
        again = solve_pose(corr.points_px, points_face, intr.K, prior=prior, config=cfg.pnp)
        same_twice = max(same_twice, float(np.abs(again.t_cam_face - ref.t_cam_face).max()))
        rng = np.random.default_rng(i)
        variants = [pose]
        for _ in range(RANSAC_ORDERS):
            order = rng.permutation(len(points_face))
            p = solve_pose(corr.points_px[order], points_face[order], intr.K, prior=prior, config=cfg.pnp)
            if p.success:
                variants.append((p.R_cam_face, p.t_cam_face))
        sources["ransac"].append(variants)
        phased = network_items(predictor, frames[i].image_rgb, [box], (0.0, *SAMPLING_PHASES))
        sols = [solve(it, prior)[0] for it in phased[1:]]
        sources["sampling"].append([pose] + [(p.R_cam_face, p.t_cam_face) for p in sols if p.success])

    # (d) the crop held still over windows of frames
    fixed = np.full((n, 3), np.nan), np.full((n, 3, 3), np.nan)
    for w0 in range(0, n, args.window):
        idx = [i for i in keep if w0 <= i < w0 + args.window and np.isfinite(raw[0][i]).all()]
        if not idx:
            continue
        box = np.median(np.stack([results[i].box for i in idx]), axis=0)
        for i in idx:
            item = network_items(predictor, frames[i].image_rgb, [box])[0]
            p = solve(item, (raw[1][i], raw[0][i]))[0]
            if p.success:
                fixed[0][i], fixed[1][i] = p.t_cam_face, p.R_cam_face
    fixed_d2 = np.nanmean([second_diff(fixed[0][w:w + args.window], fixed[1][w:w + args.window])
                           for w in range(0, n, args.window) if np.isfinite(fixed[0][w:w + args.window]).sum() > 6],
                          axis=0)

    boxes = np.array([r.box if r.box is not None else [np.nan] * 3 for r in results], dtype=float)
    box_d2 = np.diff(boxes, n=2, axis=0)
    centre_px = float(np.sqrt(np.nanmean(np.sum(box_d2[:, :2] ** 2, axis=1))))
    scale_pct = float(np.sqrt(np.nanmean(np.diff(np.log(boxes[:, 2]), n=2) ** 2)) * 100)

    rows = [("raw track (tracker's boxes)", second_diff(*raw))]
    rows.append((f"(a) RANSAC draws (same frame twice: max |dt| {same_twice * MM_PER_M:.3g} mm; "
                 f"{RANSAC_ORDERS} shuffled orders)", spread(sources["ransac"])))
    rows.append((f"(b) pixel sampling (ranks moved by {SAMPLING_PHASES} step)", spread(sources["sampling"])))
    rows.append((f"(c) crop shift {CROP_SHIFT_PX:g} px (track's box centre moves {centre_px:.2f} px rms 2nd diff)",
                 spread(sources["shift"])))
    rows.append((f"(c) crop scale {CROP_SCALE:.0%} (track's box side moves {scale_pct:.2f}% rms 2nd diff)",
                 spread(sources["scale"])))
    rows.append((f"(d) fixed crop per {args.window} frames (image + network + true motion)", tuple(fixed_d2)))
    if args.mediapipe is not None:
        import pandas as pd

        mp = pd.read_csv(args.mediapipe)
        mp = mp[(mp["frame"] >= frames[0].index) & (mp["frame"] <= frames[-1].index)]
        ok = mp["success"].to_numpy(bool)
        t = np.where(ok[:, None], mp[["tx", "ty", "tz"]].to_numpy(float), np.nan)
        q = mp[["qw", "qx", "qy", "qz"]].to_numpy(float)
        R = np.full((len(mp), 3, 3), np.nan)
        R[ok] = matrix_from_quat_wxyz(q[ok])
        rows.append(("MediaPipe + PnP(K), same frames", second_diff(t, R)))
    print(f"{args.video.name}: frames {frames[0].index}-{frames[-1].index}, {len(keep)} with a pose; "
          f"figures are RMS second differences (sources: spread x sqrt(6))")
    print(f"| source | tz mm | abs(t) mm | rotation deg |\n|---|---|---|---|")
    for name, (tz, tn, rot) in rows:
        print(f"| {name} | {tz:.2f} | {tn:.2f} | {rot:.2f} |")


if __name__ == "__main__":
    main()
