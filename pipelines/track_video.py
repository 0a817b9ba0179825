"""Track a face video: metric 6DoF pose per frame and one identity shape per clip (``track-video``).

    result = track_video(TrackConfig(video=Path("clip.mp4"), intrinsics=Path("K.json")))

Steps: probe the video and check every input (video, K.json, checkpoint) before anything is written;
decode in batches of ``batch_size`` frames (one batch of images in memory at a time; per frame only a
few numbers are kept); track online (:mod:`tracker.online`: detector / predicted boxes, PerspNet,
identity-constrained PnP with K); filter the measured poses over the clip
(:func:`tracker.smoother.filter_track`, default the offline RTS smoother); write the outputs.

Camera: K.json is scaled to the video's size when the video is the calibrated image resized (a note is
printed); without intrinsics a default field of view (:data:`perspnet.intrinsics.DEFAULT_HFOV_DEG`) is
assumed, with a warning, and metric translation is only as good as that guess. Lens distortion is
removed from the sampled pixels before PnP (PnP then runs with K and no distortion); boxes and the
overlay are projected with the distortion back into the decoded image.

Size (``ipd_mm``): a single camera cannot tell a small near face from a large far one; the scale comes
from the predicted canonical shape, in metres. Given the subject's true inter-pupillary distance
``ipd_mm``, the identity and every translation, raw and filtered, are multiplied by one factor ``s``
(:func:`tracker.ipd_scale.ipd_scene_scale`: the depth of the eyes set by the landmarker's eye corners,
sampled on every :data:`tracker.ipd_scale.IPD_EYE_EVERY`-th frame, and the IPD): the whole scene ``X_cam = s (R X + t)`` is scaled about the camera centre, so
the images are unchanged and the rotations stay the same. It is applied after filtering, so it changes
units only (exactly ``s``).

Outputs in ``config.out_dir`` (default ``<video folder>/<video stem>_track/``), published together
(:func:`pipelines.track_outputs.staged_folder`): ``poses.csv`` (:mod:`pipelines.track_outputs`),
``identity.obj`` and ``identity.npz`` (the clip's shape, canonical frame, metres; absent when no frame
had a confident pose), ``stability.png``, ``summary.json``, and on request ``meshes.npz`` (per-frame
camera-space meshes, ``verts_cam_m (N, n, 3)`` float32 metres, nan without a pose) and ``overlay.mp4``.
"""
from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from perspnet.conventions import MM_PER_M
from perspnet.face_model import load_face_model
from perspnet.inference import PerspNetPredictor
from perspnet.validate import check_choice, check_device, check_int, check_range
from perspnet.intrinsics import (DEFAULT_HFOV_DEG, Intrinsics, IntrinsicsError, default_intrinsics, for_video,
                                 load_intrinsics)
from baseio.atomic import save_npz_atomic, write_json_atomic
from pipelines.overlay import write_overlay
from pipelines.track_outputs import (PoseTrack, check_output_folder, jitter_summary, plot_stability, staged_folder,
                                     write_obj, write_poses_csv)
from baseio.video_io import DecodeReport, iter_frames, probe_video
from tracker.identity import IdentityEstimator
from tracker.ipd_scale import IPD_EYE_EVERY, MAX_EYE_YAW_DEG, MIN_EYE_FRAMES, IpdScale, ipd_scene_scale
from tracker.online import OnlineConfig, OnlineTracker, StageTimer
from tracker.refine import FrameStore, refine_poses
from tracker.smoother import MODES, filter_track

__all__ = ["OUTPUT_FILES", "TrackError", "TrackConfig", "TrackResult", "camera_for_video", "track_video"]

OUTPUT_FILES = ("poses.csv", "identity.obj", "identity.npz", "meshes.npz", "overlay.mp4", "stability.png",
                "summary.json")
STAGES = ("decode", "detect", "eyes", "network", "identity", "pnp", "refine", "filter", "write")
_SCRATCH = "frames.scratch"  # per-frame records (tracker.refine.FrameStore) in the staging folder, removed


class TrackError(ValueError):
    """An input the tracker cannot use (besides video, intrinsics and checkpoint errors); one line."""


@dataclass(frozen=True)
class TrackConfig:
    """What :func:`track_video` does. Validated on construction.

    Attributes:
        video: input video file.
        intrinsics: K.json (:mod:`perspnet.intrinsics`); None assumes the default field of view.
        out: output folder; None means ``<video folder>/<video stem>_track``.
        checkpoint: PerspNet checkpoint; None means the shipped one.
        device: "auto", "cpu", "cuda" or "cuda:N".
        batch_size: frames decoded and run through the network together. Memory grows with it, and so
            does the time over which a batch's boxes are extrapolated from the tracked motion (8 frames:
            0.27 s at 30 fps; see :mod:`tracker.online`).
        filter: "none", "forward" or "smooth" (:func:`tracker.smoother.filter_track`).
        ipd_mm: the subject's inter-pupillary distance in millimetres to fix the size (module doc), or None.
        overlay: also write ``overlay.mp4`` (a second decoding pass).
        save_meshes: also write ``meshes.npz``.
        progress: show a progress bar on stderr.
        min_run_frames: a pose is kept only in a run of at least this many consecutive accepted frames; shorter
            runs are tentative tracks never confirmed (as multi-object trackers confirm theirs), such as a
            detection on a face-like thing that the network took for a face for a frame or two. 1 keeps all.
        tracker: settings of the online tracker, identity, PnP and filter.
    """

    video: Path
    intrinsics: Path | None = None
    out: Path | None = None
    checkpoint: Path | None = None
    device: str = "auto"
    batch_size: int = 8
    filter: str = "smooth"
    ipd_mm: float | None = None
    overlay: bool = False
    save_meshes: bool = False
    progress: bool = False
    min_run_frames: int = 3
    tracker: OnlineConfig = field(default_factory=OnlineConfig)

    def __post_init__(self) -> None:
        for name in ("video", "intrinsics", "out", "checkpoint"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        check_int("batch_size", self.batch_size, 1)
        check_choice("filter", self.filter, MODES)
        if self.ipd_mm is not None:
            check_range("ipd_mm", self.ipd_mm, 30.0, 100.0)  # a human inter-pupillary distance, mm
        check_device("device", self.device)
        check_int("min_run_frames", self.min_run_frames, 1)

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.video.parent / f"{self.video.stem}_track"


@dataclass(frozen=True)
class TrackResult:
    """What :func:`track_video` wrote and found.

    Attributes:
        out_dir: the output folder.
        files: output name -> path, for the files written.
        track: the per-frame results (translations after the ``ipd_mm`` scaling).
        identity_face_m: ``(n, 3)`` the clip's shape, canonical frame, metres; None without confident frames.
        summary: the content of ``summary.json``.
    """

    out_dir: Path
    files: dict[str, Path]
    track: PoseTrack
    identity_face_m: np.ndarray | None
    summary: dict


def _stderr_note(message: str) -> None:
    print(f"track-video: {message}", file=sys.stderr)


def camera_for_video(intrinsics: Path | None, width: int, height: int) -> tuple[Intrinsics, list[str]]:
    """The camera for ``width x height`` frames and the notes to show: from K.json (scaled to the video
    when it is the calibrated image resized), or the default field of view with a warning.

    Raises:
        IntrinsicsError: unreadable or invalid K.json, or one that cannot be scaled to the video.
    """
    if intrinsics is None:
        intr = default_intrinsics(width, height)
        return intr, [f"warning: no --intrinsics given: assuming the default {DEFAULT_HFOV_DEG:g} degree horizontal "
                      f"field of view (fx = {intr.fx:.1f} px); translations, depth above all, are only as good as "
                      "this guess"]
    try:
        intr, message = for_video(load_intrinsics(intrinsics), width, height)
    except IntrinsicsError as e:
        message = str(e)
        raise IntrinsicsError(message if str(intrinsics) in message else f"{intrinsics}: {message}") from None
    return intr, [] if message is None else [f"note: {message}"]


def _stream_pass(config: TrackConfig, tracker: OnlineTracker, store: FrameStore, report: DecodeReport,
                 n_estimate: int | None) -> tuple[dict[str, np.ndarray], Counter[str]]:
    """Decode in batches and track online; records go to ``store``, small per-frame arrays are returned:
    ``frame``, ``timestamp_s``, ``filter_time_s`` ``(N,)`` and ``box (N, 3)`` (nan where none)."""
    rows: dict[str, list] = {"frame": [], "timestamp_s": [], "filter_time_s": [], "box": []}
    sources: Counter[str] = Counter()
    frames = iter_frames(config.video, report)
    with tqdm(total=n_estimate, unit="frame", disable=not config.progress) as bar:
        while True:
            with tracker.timer("decode"):
                batch = list(islice(frames, config.batch_size))
            if not batch:
                break
            for r in tracker.process(batch):
                rows["frame"].append(r.index)
                rows["timestamp_s"].append(r.timestamp_s)
                rows["filter_time_s"].append(r.filter_time_s)
                rows["box"].append(r.box if r.box is not None else np.full(3, np.nan))
                sources[r.box_source] += 1
                store.append(r)
            bar.update(len(batch))
    arrays = {k: np.asarray(v, dtype=np.int64 if k == "frame" else np.float64) for k, v in rows.items()}
    arrays["box"] = arrays["box"].reshape(-1, 3)
    return arrays, sources


def confirmed_runs(accepted: np.ndarray, min_run_frames: int) -> np.ndarray:
    """``accepted (N,)`` bool with the runs of consecutive True shorter than ``min_run_frames`` set False.

    >>> confirmed_runs(np.array([1, 0, 1, 1, 1, 0, 1, 1], bool), 3).astype(int).tolist()
    [0, 0, 1, 1, 1, 0, 0, 0]
    """
    accepted = np.asarray(accepted, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], accepted.astype(np.int8), [0]])))
    confirmed = accepted.copy()
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start < min_run_frames:
            confirmed[start:stop] = False
    return confirmed


def _pose_track(rows: dict[str, np.ndarray], measurements: list, shape_dev_mm: np.ndarray,
                config: TrackConfig) -> PoseTrack:
    """Accepted measurements in confirmed runs (:func:`confirmed_runs`) filtered over the clip
    (:func:`filter_track`) into a :class:`PoseTrack`."""
    n = len(rows["frame"])
    ok = confirmed_runs(np.array([m is not None and m.accepted for m in measurements], dtype=bool),
                        config.min_run_frames)
    R_raw, t_raw = np.full((n, 3, 3), np.nan), np.full((n, 3), np.nan)
    conf, inliers, err = np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
    for k in np.flatnonzero(ok):
        pnp = measurements[k].pnp
        R_raw[k], t_raw[k], conf[k] = pnp.R_cam_face, pnp.t_cam_face, pnp.confidence
        inliers[k], err[k] = pnp.n_inliers, pnp.reproj_err_px
    poses = [(R_raw[k], t_raw[k]) if ok[k] else None for k in range(n)]
    R, t, valid, _ = filter_track(rows["filter_time_s"], poses, np.where(ok, conf, 1.0), config.tracker.filter,
                                  config.filter)
    R[~(ok & valid)], t[~(ok & valid)] = np.nan, np.nan  # no pose is invented for a frame without a measurement
    return PoseTrack(rows["frame"], rows["timestamp_s"], ok, conf, inliers, err, R, t, R_raw, t_raw, rows["box"],
                     shape_dev_mm)


def _meshes(records: np.ndarray, track: PoseTrack, identity: IdentityEstimator, scale: float,
            n_verts: int) -> np.ndarray:
    """``(N, n, 3)`` float32 per-frame shapes (identity + bounded residual, canonical frame, metres, times
    ``scale``), nan for frames without a pose. Memory: N * n * 12 bytes (only with --overlay/--save-meshes)."""
    shapes = np.full((len(records), n_verts, 3), np.nan, np.float32)
    for k in np.flatnonzero(track.success):
        shapes[k] = identity.frame_shape(records[k]["verts_raw"].astype(np.float64)).verts_face_m * scale
    return shapes


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def track_video(config: TrackConfig, notify: Callable[[str], None] | None = _stderr_note,
                predictor: PerspNetPredictor | None = None) -> TrackResult:
    """Track the face in ``config.video`` and write the outputs (module docstring).

    Args:
        config: see :class:`TrackConfig`.
        notify: called with each note or warning as it arises (K scaled, default FOV, several faces,
            decode errors); None for silence. The notes are also in ``summary["notes"]``.
        predictor: an already loaded model of ``config.checkpoint`` on ``config.device`` (batch workers
            load one and reuse it for every clip); loaded here when None.

    Raises:
        VideoError, IntrinsicsError, CheckpointError, FaceModelNotFound, TrackError: an input cannot be
            used; raised before any output is written.
        OutputError: an output could not be written (the output folder is left as it was).
    """
    notify = notify or (lambda message: None)
    start = time.perf_counter()
    info = probe_video(config.video)
    intr, notes = camera_for_video(config.intrinsics, info.width, info.height)
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise TrackError(f"--device {config.device}: no CUDA device is available (use cpu or auto)")
    check_output_folder(config.out_dir)
    predictor = predictor or PerspNetPredictor(config.checkpoint, config.device)
    face_model = load_face_model()
    if predictor.topology.n_verts != face_model.n_verts:
        raise TrackError(f"{config.checkpoint}: the checkpoint's mesh has {predictor.topology.n_verts} vertices, "
                         f"the face model {face_model.n_verts}")
    for note in notes:
        notify(note)

    timer, report = StageTimer(), DecodeReport()
    with staged_folder(config.out_dir, OUTPUT_FILES) as stage:
        store = FrameStore(stage / _SCRATCH, predictor.config.n_points, face_model.n_verts)
        online = config.tracker
        if config.ipd_mm is not None and online.eye_every == 0:
            online = replace(online, eye_every=IPD_EYE_EVERY)
        with OnlineTracker(predictor, intr, face_model, online, timer) as tracker:
            try:
                rows, box_sources = _stream_pass(config, tracker, store, report, info.n_frames_estimate)
            finally:
                store.close()
        records = store.records()
        with timer("refine"):
            measurements, shape_dev = refine_poses(records, tracker.identity, tracker.mesh, intr.K,
                                                   config.tracker.measure)
        with timer("filter"):
            track = _pose_track(rows, measurements, shape_dev, config)
        identity = tracker.identity.identity
        scale, ipd_scale = 1.0, None
        if config.ipd_mm is not None and identity is not None:
            ipd_scale = ipd_scene_scale(config.ipd_mm / MM_PER_M, identity, records["eye_px"], measurements, intr.K,
                                        face_model)
            scale = ipd_scale.scale
            if ipd_scale.method == "size":
                notes.append(f"warning: --ipd-mm: eye corners found on {ipd_scale.eye_frames} usable frames (at least "
                             f"{MIN_EYE_FRAMES} within {MAX_EYE_YAW_DEG:g} degrees of frontal are needed); the size comes "
                             "from the shape's eye region instead, which is less sure")
                notify(notes[-1])
        elif config.ipd_mm is not None:
            notes.append("warning: --ipd-mm not applied: no frame had a confident pose, so there is no identity")
            notify(notes[-1])
        track = track.scaled(scale)
        identity_out = None if identity is None else identity * scale
        if tracker.max_faces_seen > 1:
            notes.append(f"note: several faces seen (up to {tracker.max_faces_seen}, on "
                         f"{tracker.frames_with_several_faces} of {tracker.detector_calls} detector runs): "
                         "tracked the largest")
            notify(notes[-1])
        if not report.ok:
            notes.append(f"warning: {config.video}: {report.summary()}")
            notify(notes[-1])

        files: dict[str, Path] = {}
        with timer("write"):
            write_poses_csv(stage / "poses.csv", track)
            files["poses.csv"] = config.out_dir / "poses.csv"
            if identity_out is not None:
                comment = (f"identity shape of {config.video.name}: canonical face frame (x right, y down, z into "
                           f"the head), metres; IPD {float(face_model.ipd_m(identity_out)) * MM_PER_M:.2f} mm")
                write_obj(stage / "identity.obj", identity_out, face_model.triangles, comment)
                save_npz_atomic(stage / "identity.npz", {
                    "verts_face_m": identity_out, "triangles": face_model.triangles,
                    "ipd_mm": np.float64(face_model.ipd_m(identity_out) * MM_PER_M), "scale": np.float64(scale),
                    "frames_used": np.int64(tracker.identity.n_accepted)})
                files.update({k: config.out_dir / k for k in ("identity.obj", "identity.npz")})
            shapes = None
            if config.overlay or config.save_meshes:
                shapes = _meshes(records, track, tracker.identity, scale, face_model.n_verts)
            if config.save_meshes:
                verts_cam = np.einsum("nij,nvj->nvi", track.R, shapes) + track.t[:, None, :]
                save_npz_atomic(stage / "meshes.npz", {
                    "verts_cam_m": verts_cam.astype(np.float32), "triangles": face_model.triangles,
                    "frame": track.frame, "timestamp_s": track.timestamp_s, "valid": np.isfinite(track.t).all(axis=1)})
                files["meshes.npz"] = config.out_dir / "meshes.npz"
            if config.overlay:
                write_overlay(config.video, stage / "overlay.mp4", track, shapes, identity_out,
                              face_model.triangles, intr, info.avg_fps)
                files["overlay.mp4"] = config.out_dir / "overlay.mp4"
            del records, shapes
            store.path.unlink()
            plot_stability(stage / "stability.png", track, f"{config.video.name}: {int(track.success.sum())} / "
                           f"{len(track.frame)} frames with a pose, filter {config.filter}")
            files["stability.png"] = config.out_dir / "stability.png"
            jitter = jitter_summary(stage / "poses.csv", "perspnet", str(files["poses.csv"]),
                                    config.filter != "none")
        total_s = time.perf_counter() - start
        summary = _summary(config, info, intr, track, tracker, box_sources, identity_out, ipd_scale,
                           face_model, timer.seconds, total_s, jitter, notes, report, predictor)
        write_json_atomic(stage / "summary.json", summary)
        files["summary.json"] = config.out_dir / "summary.json"
    return TrackResult(config.out_dir, files, track, identity_out, summary)


def _summary(config: TrackConfig, info, intr: Intrinsics, track: PoseTrack, tracker: OnlineTracker,
             box_sources: Counter[str], identity: np.ndarray | None, ipd_scale: IpdScale | None, face_model,
             seconds: dict,
             total_s: float, jitter: dict, notes: list[str], report: DecodeReport, predictor) -> dict:
    """``summary.json``: ``frames``, ``frames_with_pose``, ``detection_rate`` (their ratio), ``detector_calls``,
    ``box_sources`` (frames per box source), ``cold_fallbacks``, ``reanchors``, ``redetections``,
    ``processing_fps`` (frames per second of the whole call), ``total_seconds``, ``stage_seconds`` and ``stage_ms_per_frame``
    (:data:`STAGES`), settings, ``camera`` (the K used), ``video_info``, ``identity`` (IPD, size IPD, frames used,
    and with ``--ipd-mm`` the scale applied, how it was found and from how many frames, :class:`tracker.ipd_scale.IpdScale`), ``shape_dev_mm`` (median, p95), ``jitter``
    (:func:`pipelines.track_outputs.jitter_summary`) and ``notes``. No NaN: null."""
    n = len(track.frame)
    stages = {s: seconds.get(s, 0.0) for s in STAGES}
    dev = track.shape_dev_mm[track.success]
    return {
        "video": str(config.video), "out_dir": str(config.out_dir),
        "frames": n, "frames_with_pose": int(track.success.sum()),
        "detection_rate": _finite(track.success.mean()) if n else 0.0,
        "detector_calls": tracker.detector_calls, "box_sources": dict(box_sources),
        "cold_fallbacks": tracker.cold_fallbacks, "reanchors": tracker.reanchors,
        "redetections": tracker.redetections,
        "processing_fps": _finite(n / total_s) if total_s > 0 else None,
        "total_seconds": round(total_s, 4),
        "stage_seconds": {s: round(v, 4) for s, v in stages.items()},
        "stage_ms_per_frame": {s: round(1000.0 * v / max(n, 1), 3) for s, v in stages.items()},
        "filter": config.filter, "batch_size": config.batch_size,
        "device": str(predictor.device), "checkpoint": str(config.checkpoint) if config.checkpoint else "shipped",
        "camera": {"source": str(config.intrinsics) if config.intrinsics else f"default {DEFAULT_HFOV_DEG:g} deg FOV",
                   **intr.to_dict()},
        "video_info": {"width": info.width, "height": info.height, "avg_fps": _finite(info.avg_fps or math.nan),
                       "rotation_deg": info.rotation_deg, "codec": info.codec, "decode": report.summary()},
        "identity": None if identity is None else {
            "ipd_mm": round(float(face_model.ipd_m(identity)) * MM_PER_M, 4),
            "size_ipd_mm": round(face_model.size_ipd_m(identity) * MM_PER_M, 4),
            "ipd_mm_requested": config.ipd_mm, "scale_applied": 1.0 if ipd_scale is None else ipd_scale.scale,
            "ipd_method": None if ipd_scale is None else ipd_scale.method,
            "ipd_size_factor": None if ipd_scale is None else ipd_scale.size_factor,
            "ipd_eye_frames": None if ipd_scale is None else ipd_scale.eye_frames,
            "frames_used": tracker.identity.n_accepted, "samples_kept": tracker.identity.n_samples,
            "max_residual_mm": config.tracker.identity.max_residual_mm},
        "shape_dev_mm": None if dev.size == 0 else {"median": _finite(np.median(dev)),
                                                    "p95": _finite(np.percentile(dev, 95))},
        "jitter": jitter,
        "notes": notes,
    }
