"""Evaluate PerspNet (and the baselines) on a test set with the paper's metrics (Tables 2 and 4).

Protocol: each face is cropped by the box around its projected ground-truth mesh, as in the paper's
ARKitFace evaluation; every method gets the same box. BIWI has no mesh: the box is MediaPipe's landmark
box, and only the pose columns are scored (ADD and shape are NaN; BIWI's head origin is not our face
origin, so its translation errors include that fixed offset, see perspnet.datasets.biwi). A method's
failures (no pose) are counted and left out of its means (``failures`` beside ``n``). The IPD-sized
errors need the 468-vertex topology's eye landmarks.

The same code reads our synthetic data, real ARKitFace (ARKitFace layout) and BIWI (``hpdb`` layout).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perspnet.conventions import project_points
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.datasets.record import FaceRecord
from perspnet.face_model import FaceModel, load_face_model
from perspnet.inference import TTA_VIEWS, PerspNetPredictor
from perspnet.validate import check_choice, check_device, check_int
from perspnet.metrics import SampleMetrics, aggregate_metrics, sample_metrics
from perspnet.crop import box_from_points

__all__ = ["EvalConfig", "evaluate"]


@dataclass(frozen=True)
class EvalConfig:
    """What :func:`evaluate` scores (the options of ``perspnet-eval``).

    Attributes:
        data: test folder, ARKitFace layout or BIWI.
        checkpoint: PerspNet checkpoint; None for the shipped one.
        baselines: also MediaPipe + PnP(K) and, with ``direct_checkpoint``, the direct regression.
        direct_checkpoint: direct-regression checkpoint, or None to leave that baseline out.
        limit: the first ``limit`` samples only; None for all.
        batch_size: crops per network batch.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        tta: PerspNet's test-time augmentation, a key of :data:`perspnet.inference.TTA_VIEWS`.
    """

    data: Path
    checkpoint: Path | None = None
    baselines: bool = False
    direct_checkpoint: Path | None = None
    limit: int | None = None
    batch_size: int = 16
    device: str = "auto"
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.limit is not None:
            check_int("limit", self.limit, 1)
        check_int("batch_size", self.batch_size, 1)
        check_device("device", self.device)
        check_choice("tta", self.tta, sorted(TTA_VIEWS))


class _Tally:
    """Per-method sample metrics and failure count."""

    def __init__(self):
        self.samples: list[SampleMetrics] = []
        self.failures = 0

    def add(self, record: FaceRecord, R, t, verts_face, face_model: FaceModel, ok: bool) -> None:
        if not ok:
            self.failures += 1
            return
        if record.verts_face_m is None:  # pose-only ground truth (BIWI): score the pose, not the mesh
            m = sample_metrics(R, t, face_model.verts_face_m, record.R_cam_face, record.t_cam_face,
                               face_model.verts_face_m, face_model)
            m = replace(m, add=float("nan"), shape_mm=float("nan"), add_sized=float("nan"),
                        mae_t_sized=float("nan"))
        else:
            m = sample_metrics(R, t, verts_face, record.R_cam_face, record.t_cam_face, record.verts_face_m,
                               face_model)
        self.samples.append(m)

    def result(self) -> dict:
        return {**aggregate_metrics(self.samples), "failures": self.failures}


def _open_dataset(root: Path):
    """BIWI when ``root`` holds its ``hpdb`` layout, else the ARKitFace layout (ours or the real one)."""
    root = Path(root)
    if (root / "hpdb").is_dir() or any(root.glob("*/rgb.cal")):
        from perspnet.datasets.biwi import BiwiDataset

        return BiwiDataset(root)
    return ArkitLayoutDataset(root)


class _Boxer:
    """Face boxes: around the projected ground-truth mesh, or MediaPipe's landmark box without a mesh."""

    def __init__(self):
        self._landmarker = None

    def __call__(self, record: FaceRecord) -> np.ndarray | None:
        if record.verts_face_m is not None:
            return box_from_points(project_points(record.K, record.verts_cam_m))
        if self._landmarker is None:
            from perspnet.landmarker import FaceLandmarker

            self._landmarker = FaceLandmarker("image")
        faces = self._landmarker.detect(record.image_rgb)
        return box_from_points(faces[0].points_px) if faces else None

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()


def evaluate(cfg: EvalConfig) -> dict[str, dict]:
    """Run the methods over the test set; returns ``{method: metrics object}`` (see perspnet.metrics)."""
    records = _open_dataset(cfg.data)
    face_model = load_face_model()
    n = len(records) if cfg.limit is None else min(cfg.limit, len(records))
    predictor = PerspNetPredictor(cfg.checkpoint, cfg.device, tta=cfg.tta)
    topology = getattr(records, "topology", None)
    if topology is not None and topology.n_verts != predictor.topology.n_verts:
        raise ValueError(f"{cfg.data}: its mesh has {topology.n_verts} vertices ({topology.name}) but the "
                         f"checkpoint predicts {predictor.topology.n_verts} ({predictor.topology.name})")
    if predictor.topology.n_verts != face_model.n_verts:
        raise ValueError(f"the checkpoint's {predictor.topology.name} topology has no MediaPipe eye landmarks; "
                         "evaluation of other topologies needs their landmark ids (not implemented)")
    boxer = _Boxer()
    tallies = {"perspnet": _Tally()}
    mediapipe = direct = None
    if cfg.baselines:
        from perspnet.baselines import MediaPipePnP

        mediapipe = MediaPipePnP(face_model)
        tallies["mediapipe_pnp"] = _Tally()
        if cfg.direct_checkpoint is not None:
            from perspnet.network.direct import DirectRegressor

            direct = DirectRegressor(cfg.direct_checkpoint, cfg.device)
            tallies["direct_regress"] = _Tally()
    mean_shape = face_model.verts_face_m
    for start in tqdm(range(0, n, cfg.batch_size), desc="evaluate", unit="batch"):
        batch = [records[i] for i in range(start, min(start + cfg.batch_size, n))]
        boxes = [boxer(r) for r in batch]
        for r in [r for r, b in zip(batch, boxes) if b is None]:  # no face found: a failure for every method
            for tally in tallies.values():
                tally.failures += 1
        batch, boxes = [r for r, b in zip(batch, boxes) if b is not None], [b for b in boxes if b is not None]
        if not batch:
            continue
        images, Ks = [r.image_rgb for r in batch], [r.K for r in batch]
        for rec, est in zip(batch, predictor.predict(images, boxes, Ks)):
            tallies["perspnet"].add(rec, est.pnp.R_cam_face, est.pnp.t_cam_face, est.verts_face_m, face_model,
                                    est.pnp.success)
        if mediapipe is not None:
            for rec, box in zip(batch, boxes):
                res = mediapipe(rec.image_rgb, box, rec.K, rec.dist)
                ok = res is not None and res.success
                tallies["mediapipe_pnp"].add(rec, res.R_cam_face if ok else None, res.t_cam_face if ok else None,
                                             mean_shape, face_model, ok)
        if direct is not None:
            for rec, (R, t) in zip(batch, direct.predict(images, boxes, Ks)):
                tallies["direct_regress"].add(rec, R, t, mean_shape, face_model, True)
    boxer.close()
    if mediapipe is not None:
        mediapipe.close()
    return {name: tally.result() for name, tally in tallies.items()}
