"""Write synthetic samples to disk in the ARKitFace layout (one loader serves real ARKitFace and ours)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from perspnet.datasets.arkit import ArkitLayoutWriter
from perspnet.datasets.record import FaceRecord
from perspnet.synth.sampler import SampleGenerator, SynthSample

__all__ = ["sample_rng", "sample_to_record", "write_samples"]


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of sample ``index`` of a run with ``seed``: samples are independent of each other,
    so any subset can be regenerated (or generated in parallel) exactly."""
    return np.random.default_rng([seed, index])


def sample_to_record(sample: SynthSample, img_id: str) -> FaceRecord:
    action = "expression" if sample.meta.get("expression") else "neutral"
    return FaceRecord(image_rgb=sample.image, K=sample.K, R_cam_face=sample.R_cam_face, t_cam_face=sample.t_cam_face,
                      verts_face_m=sample.verts_face_m, subject=sample.identity, action=action, img_id=img_id,
                      ipd_mm=sample.ipd_mm)


def write_samples(out_dir: Path, n: int, seed: int, split: str, generator: SampleGenerator) -> Path:
    """Generate ``n`` samples of ``split`` into ``out_dir`` (ARKitFace layout plus ``index.csv``)."""
    with ArkitLayoutWriter(out_dir) as writer:
        for i in tqdm(range(n), desc=f"samples ({split})", unit="sample"):
            sample = generator.sample(sample_rng(seed, i))
            yaw, pitch, roll = sample.yaw_pitch_roll_deg
            h, w = sample.image.shape[:2]
            writer.write(sample_to_record(sample, f"{seed}_{i:06d}"), extra={
                "split": split, "ipd_mm": round(sample.ipd_mm, 4), "yaw_deg": round(yaw, 3),
                "pitch_deg": round(pitch, 3), "roll_deg": round(roll, 3), "tz_m": round(sample.t_cam_face[2], 5),
                "width": w, "height": h})
    return Path(out_dir)
