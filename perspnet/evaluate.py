"""Evaluate PerspNet (and the baselines) on a test set with the paper's metrics (Tables 2 and 4).

Protocol: each face is cropped by the box around its projected ground-truth mesh, as in the paper's
ARKitFace evaluation; every method gets the same box. A method's failures (no pose) are counted and
left out of its means (``failures`` beside ``n``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perspnet.conventions import project_points
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.datasets.record import FaceRecord
from perspnet.face_model import FaceModel, load_face_model
from perspnet.inference import PerspNetPredictor
from perspnet.metrics import SampleMetrics, aggregate_metrics, sample_metrics
from perspnet.training_data import box_from_points

__all__ = ["EvalConfig", "evaluate"]


@dataclass(frozen=True)
class EvalConfig:
    data: Path
    checkpoint: Path | None = None
    baselines: bool = False
    direct_checkpoint: Path | None = None
    limit: int | None = None
    batch_size: int = 16
    device: str = "auto"


class _Tally:
    """Per-method sample metrics and failure count."""

    def __init__(self):
        self.samples: list[SampleMetrics] = []
        self.failures = 0

    def add(self, record: FaceRecord, R, t, verts_face, face_model: FaceModel, ok: bool) -> None:
        if not ok:
            self.failures += 1
            return
        self.samples.append(sample_metrics(R, t, verts_face, record.R_cam_face, record.t_cam_face,
                                           record.verts_face_m, face_model))

    def result(self) -> dict:
        return {**aggregate_metrics(self.samples), "failures": self.failures}


def _box(record: FaceRecord) -> np.ndarray:
    return box_from_points(project_points(record.K, record.verts_cam_m))


def evaluate(cfg: EvalConfig) -> dict[str, dict]:
    """Run the methods over the test set; returns ``{method: metrics object}`` (see perspnet.metrics)."""
    records = ArkitLayoutDataset(cfg.data)
    if records.topology.n_verts != 468:
        raise ValueError(f"{cfg.data}: evaluation needs the 468-vertex topology of the shipped model "
                         f"(got {records.topology.name}, {records.topology.n_verts} vertices)")
    face_model = load_face_model()
    n = len(records) if cfg.limit is None else min(cfg.limit, len(records))
    predictor = PerspNetPredictor(cfg.checkpoint, cfg.device)
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
        images, boxes, Ks = [r.image_rgb for r in batch], [_box(r) for r in batch], [r.K for r in batch]
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
    if mediapipe is not None:
        mediapipe.close()
    return {name: tally.result() for name, tally in tallies.items()}
