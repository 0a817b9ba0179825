"""From a clip's online tracks to one filtered :class:`PoseTrack` per face, for :mod:`pipelines.track_video`.

1. Stream pass (:func:`stream_pass`): decode in batches; the online tracker (one face,
   :class:`tracker.online.OnlineTracker`, or every face, :class:`tracker.faces.MultiFaceTracker`) returns
   per frame and track a :class:`tracker.measure.FrameResult`; each track's records go to its own
   :class:`tracker.refine.FrameStore` in the staging folder, small per-frame arrays stay in memory.
2. Faces (:func:`assemble_faces`): tracks without a confirmed run (:func:`confirmed_runs`) are tentative and
   dropped; the others keep their frames from their first to their last confirmed pose and get face ids
   (:func:`tracker.faces.link_tracks`: a face that left and came back is the same face); per face, one identity from all its tracks' shapes, every frame re-solved against it
   (:func:`tracker.refine.refine_poses`), filtered over the face's frames (:func:`tracker.smoother.filter_track`)
   and, with ``ipd_mm``, scaled (:func:`tracker.ipd_scale.ipd_scene_scale`, per face).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perspnet.conventions import MM_PER_M
from perspnet.face_model import FaceModel
from perspnet.intrinsics import Intrinsics
from baseio.threads import prefetched
from baseio.video_io import DecodeReport, Frame, iter_frames
from pipelines.track_outputs import PoseTrack
from tracker.faces import FacesConfig, link_tracks
from tracker.identity import IdentityEstimator
from tracker.ipd_scale import IpdScale, ipd_scene_scale
from tracker.kalman import FilterConfig
from tracker.measure import FrameResult, MeasureConfig
from tracker.online import OnlineTracker, StageTimer
from tracker.refine import FrameStore, refine_poses
from tracker.smoother import filter_track
from tracker.surface import MeshIndex

__all__ = ["TrackRows", "FaceResult", "stream_pass", "confirmed_runs", "assemble_faces", "face_meshes"]


@dataclass
class TrackRows:
    """One online track's stream-pass output: its records on disk and per-frame arrays (lists while streaming).

    Attributes:
        store: the track's :class:`FrameStore`.
        frame, timestamp_s, filter_time_s: per frame of the track, stream index, stream and filter time (s).
        box: per frame ``(3,)`` (cx, cy, side) pixels, nan where none.
        accepted: per frame, the streaming pose was accepted.
    """

    store: FrameStore
    frame: list = field(default_factory=list)
    timestamp_s: list = field(default_factory=list)
    filter_time_s: list = field(default_factory=list)
    box: list = field(default_factory=list)
    accepted: list = field(default_factory=list)

    def add(self, r: FrameResult) -> None:
        self.frame.append(r.index)
        self.timestamp_s.append(r.timestamp_s)
        self.filter_time_s.append(r.filter_time_s)
        self.box.append(r.box if r.box is not None else np.full(3, np.nan))
        self.accepted.append(r.measurement is not None and r.measurement.accepted)
        self.store.append(r)


def stream_pass(video: Path, process: Callable[[list[Frame]], list[tuple[int, FrameResult]]], timer: StageTimer,
                scratch: Path, n_points: int, n_verts: int, batch_size: int, report: DecodeReport,
                n_estimate: int | None, progress: bool) -> tuple[dict[int, TrackRows], np.ndarray, np.ndarray,
                                                                 Counter[str]]:
    """Decode ``video`` in batches of ``batch_size`` and track them with ``process`` (track number, result).

    Returns the tracks (number -> :class:`TrackRows`, stores closed; files ``<scratch>.<number>``), every
    decoded frame's index ``(F,)`` and timestamp ``(F,)`` (s), and the frames per box source.
    """
    tracks: dict[int, TrackRows] = {}
    frame_index, frame_time = [], []
    sources: Counter[str] = Counter()
    frames = prefetched(iter_frames(video, report), batch_size)  # the next batch decodes while this one is tracked
    try:
        with tqdm(total=n_estimate, unit="frame", disable=not progress) as bar:
            while True:
                with timer("decode"):
                    batch = list(islice(frames, batch_size))
                if not batch:
                    break
                frame_index += [f.index for f in batch]
                frame_time += [f.timestamp_s for f in batch]
                for number, r in process(batch):
                    if number not in tracks:
                        tracks[number] = TrackRows(FrameStore(f"{scratch}.{number}", n_points, n_verts))
                    tracks[number].add(r)
                    sources[r.box_source] += 1
                bar.update(len(batch))
    finally:
        frames.close()  # stops the decoding thread now, also when tracking failed
        for t in tracks.values():
            t.store.close()
    return tracks, np.asarray(frame_index, np.int64), np.asarray(frame_time, np.float64), sources


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


@dataclass
class FaceResult:
    """One face of the clip.

    Attributes:
        face_id: its id (0, 1, ... by first appearance).
        tracks: the online track numbers joined into it, in time order.
        track: its rows (the frames of its tracks), filtered; translations after the ``ipd_mm`` scaling.
        estimator: its identity estimator (all its tracks' shapes).
        identity_face_m: ``(n, 3)`` its identity shape times ``scale``, canonical frame, metres; None when
            no frame was confident enough.
        scale: the ``ipd_mm`` factor (1 without).
        ipd_scale: how the factor was found, None without ``ipd_mm`` or identity.
        records: its tracks' :class:`FrameStore` records, in time order (rows of ``track``).
    """

    face_id: int
    tracks: list[int]
    track: PoseTrack
    estimator: IdentityEstimator
    identity_face_m: np.ndarray | None
    scale: float
    ipd_scale: IpdScale | None
    records: list[np.ndarray]


def _pose_track(rows: dict[str, np.ndarray], measurements: list, shape_dev_mm: np.ndarray, min_run_frames: int,
                filter_config: FilterConfig, filter_mode: str, face_id: int) -> PoseTrack:
    """Accepted measurements in confirmed runs (:func:`confirmed_runs`) filtered over the face's frames
    (:func:`filter_track`) into a :class:`PoseTrack`."""
    n = len(rows["frame"])
    ok = confirmed_runs(np.array([m is not None and m.accepted for m in measurements], dtype=bool), min_run_frames)
    R_raw, t_raw = np.full((n, 3, 3), np.nan), np.full((n, 3), np.nan)
    conf, inliers, err = np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
    for k in np.flatnonzero(ok):
        pnp = measurements[k].pnp
        R_raw[k], t_raw[k], conf[k] = pnp.R_cam_face, pnp.t_cam_face, pnp.confidence
        inliers[k], err[k] = pnp.n_inliers, pnp.reproj_err_px
    poses = [(R_raw[k], t_raw[k]) if ok[k] else None for k in range(n)]
    R, t, valid, _ = filter_track(rows["filter_time_s"], poses, np.where(ok, conf, 1.0), filter_config, filter_mode)
    R[~(ok & valid)], t[~(ok & valid)] = np.nan, np.nan  # no pose is invented for a frame without a measurement
    return PoseTrack(rows["frame"], rows["timestamp_s"], ok, conf, inliers, err, R, t, R_raw, t_raw, rows["box"],
                     shape_dev_mm, face_id)


def assemble_faces(tracks: dict[int, TrackRows], trackers: dict[int, OnlineTracker],
                   colours: dict[int, np.ndarray | None] | None, faces_config: FacesConfig, min_run_frames: int,
                   measure: MeasureConfig, filter_config: FilterConfig, filter_mode: str,
                   intr: Intrinsics, face_model: FaceModel, ipd_mm: float | None, timer: StageTimer
                   ) -> list[FaceResult]:
    """Step 2 of the module doc: the faces, by id.

    Args:
        tracks, trackers: the stream pass's tracks and their online trackers, by track number.
        colours: track number -> its mean colour thumbnail (:class:`tracker.faces.FaceTrack`); with them a
            track gets an earlier face's id when it looks like it (:func:`link_tracks`, ``faces_config``);
            None: each confirmed track is its own face.
        min_run_frames: see :class:`pipelines.track_video.TrackConfig`.
        measure, filter_config, filter_mode: PnP policy, filter settings and mode (none, forward, smooth).
        intr: the camera; face_model: the mesh (IPD).
        ipd_mm: the subjects' inter-pupillary distance (mm), applied to every face, or None.
        timer: "refine" and "filter" stage times are added to it.
    """
    kept: dict[int, slice] = {}  # track number -> its rows from its first to its last confirmed frame
    for n, t in tracks.items():
        confirmed = np.flatnonzero(confirmed_runs(np.array(t.accepted), min_run_frames))
        if confirmed.size:
            kept[n] = slice(int(confirmed[0]), int(confirmed[-1]) + 1)
    spans = [(n, tracks[n].frame[rows.start], tracks[n].frame[rows.stop - 1]) for n, rows in kept.items()]
    if colours is not None:
        ids = link_tracks(spans, {n: trackers[n].identity.identity for n, _, _ in spans}, colours,
                          faces_config.reid_max_mm, faces_config.reid_max_colour)
    else:
        ids = {n: k for k, (n, _, _) in enumerate(sorted(spans, key=lambda s: (s[1], s[0])))}
    faces = []
    for face_id in sorted(set(ids.values())):
        numbers = sorted((n for n in ids if ids[n] == face_id), key=lambda n: tracks[n].frame[0])
        estimators = [trackers[n].identity for n in numbers]
        estimator = estimators[0] if len(estimators) == 1 else IdentityEstimator.merged(estimators)
        mesh: MeshIndex = trackers[numbers[0]].mesh
        records = [tracks[n].store.records()[kept[n]] for n in numbers]
        measurements, dev = [], []
        with timer("refine"):
            for rec in records:
                m, d = refine_poses(rec, estimator, mesh, intr.K, measure)
                measurements += m
                dev.append(d)
        rows = {key: np.concatenate([np.asarray(getattr(tracks[n], key)[kept[n]], np.float64) for n in numbers])
                for key in ("timestamp_s", "filter_time_s")}
        rows["frame"] = np.concatenate([np.asarray(tracks[n].frame[kept[n]], np.int64) for n in numbers])
        rows["box"] = np.concatenate([np.asarray(tracks[n].box[kept[n]], np.float64).reshape(-1, 3) for n in numbers])
        with timer("filter"):
            track = _pose_track(rows, measurements, np.concatenate(dev), min_run_frames, filter_config, filter_mode,
                                face_id)
        identity = estimator.identity
        scale, ipd_scale = 1.0, None
        if ipd_mm is not None and identity is not None:
            eye_px = np.concatenate([rec["eye_px"] for rec in records])
            ipd_scale = ipd_scene_scale(ipd_mm / MM_PER_M, identity, eye_px, measurements, intr.K, face_model)
            scale = ipd_scale.scale
        faces.append(FaceResult(face_id, numbers, track.scaled(scale), estimator,
                                None if identity is None else identity * scale, scale, ipd_scale, records))
    return faces


def face_meshes(face: FaceResult, n_verts: int) -> np.ndarray:
    """``(N, n, 3)`` float32 per-frame shapes of ``face`` (identity + bounded residual, canonical frame,
    metres, times its scale), nan for frames without a pose. Memory: N * n * 12 bytes (only with
    --overlay / --save-meshes)."""
    success = face.track.success
    shapes = np.full((len(success), n_verts, 3), np.nan, np.float32)
    k = 0
    for rec in face.records:
        for j in np.flatnonzero(success[k:k + len(rec)]):
            verts = face.estimator.frame_shape(rec[j]["verts_raw"].astype(np.float64)).verts_face_m
            shapes[k + j] = verts * face.scale
        k += len(rec)
    return shapes


def finite(x: float | None) -> float | None:
    """``x`` as a float, None when it is None or not finite (JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(x) else None
