"""Write synthetic samples to disk in the ARKitFace layout (one loader serves real ARKitFace and ours)."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perspnet.datasets.arkit import ArkitLayoutWriter, encode_jpeg
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


def write_samples(out_dir: Path, n: int, seed: int, split: str, generator: SampleGenerator, workers: int = 1) -> Path:
    """Generate ``n`` samples of ``split`` into ``out_dir`` (ARKitFace layout plus ``index.csv``).

    ``workers`` > 1 draws and JPEG-encodes samples in that many forked processes; each sample has its own
    random stream (:func:`sample_rng`), so the files are the same as with one."""
    with ArkitLayoutWriter(out_dir) as writer, tqdm(total=n, desc=f"samples ({split})", unit="sample") as bar:
        if workers <= 1:
            _worker_init(generator, seed, split)
            for record, extra, jpg in map(_encoded_sample, range(n)):
                writer.write(record, extra, jpg)
                bar.update(1)
        else:
            with mp.get_context("fork").Pool(workers, _worker_init, (generator, seed, split)) as pool:
                for record, extra, jpg in pool.imap(_encoded_sample, range(n), chunksize=4):
                    writer.write(record, extra, jpg)
                    bar.update(1)
    return Path(out_dir)


_WORKER: dict = {}  # the generator, seed and split of this process's samples (set by _worker_init)


def _worker_init(generator: SampleGenerator, seed: int, split: str) -> None:
    _WORKER.update(generator=generator, seed=seed, split=split)


def _encoded_sample(i: int) -> tuple[FaceRecord, dict, bytes]:
    """Sample ``i`` of the run as (record, its index.csv columns, its JPEG bytes)."""
    seed = _WORKER["seed"]
    sample = _WORKER["generator"].sample(sample_rng(seed, i))
    yaw, pitch, roll = sample.yaw_pitch_roll_deg
    h, w = sample.image.shape[:2]
    extra = {"split": _WORKER["split"], "ipd_mm": round(sample.ipd_mm, 4),
             "yaw_deg": round(yaw, 3), "pitch_deg": round(pitch, 3), "roll_deg": round(roll, 3),
             "tz_m": round(sample.t_cam_face[2], 5), "width": w, "height": h}
    return sample_to_record(sample, f"{seed}_{i:06d}"), extra, encode_jpeg(sample.image)
