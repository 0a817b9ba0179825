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
from pathlib import Path

import numpy as np
import torch

from perspnet.conventions import MM_PER_M
from perspnet.face_model import load_face_model
from perspnet.inference import PerspNetPredictor
from perspnet.validate import check_choice, check_device, check_int, check_range
from perspnet.intrinsics import (DEFAULT_HFOV_DEG, Intrinsics, IntrinsicsError, default_intrinsics, for_video,
                                 load_intrinsics, plausibility_warnings)
from baseio.atomic import save_npz_atomic, write_json_atomic
from pipelines.overlay import OverlayFace, write_overlay
from pipelines.track_faces import FaceResult, assemble_faces, face_meshes, finite, stream_pass
from pipelines.track_outputs import (PoseTrack, check_output_folder, jitter_summary, plot_stability, staged_folder,
                                     write_obj, write_poses_csv)
from baseio.video_io import DecodeReport, probe_video
from tracker.faces import FacesConfig, MultiFaceTracker
from tracker.ipd_scale import IPD_EYE_EVERY, MAX_EYE_YAW_DEG, MIN_EYE_FRAMES
from tracker.online import OnlineConfig, OnlineTracker, StageTimer
from tracker.smoother import MODES

__all__ = ["OUTPUT_FILES", "STATUSES", "TrackError", "TrackConfig", "TrackResult", "camera_for_video", "track_video"]

OUTPUT_FILES = ("poses.csv", "identity.obj", "identity.npz", "meshes.npz", "overlay.mp4", "stability.png",
                "summary.json")
STAGES = ("decode", "detect", "eyes", "network", "identity", "pnp", "refine", "filter", "write")
# summary["status"]: some face has a pose; no face was ever found; faces were found but every pose was dropped
STATUSES = ("ok", "no_face", "no_pose")
STATUS_TEXT = {"no_face": "no face found in this clip", "no_pose": "a face was found, but no pose was kept"}
LOW_COVERAGE = 0.2  # a face with a pose on fewer than this fraction of the frames gets a note
_SCRATCH = "frames.scratch"  # per-track records (tracker.refine.FrameStore) in the staging folder, removed


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
        faces: "all" (every face, each with its own id: :mod:`tracker.faces`), "largest" (one face: the
            largest when the track starts, as single-face tracking always did) or N (at most N faces at a time).
        tracker: settings of the online tracker, identity, PnP and filter (each face's).
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
    faces: str | int = "all"
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
        if isinstance(self.faces, str) and self.faces.isdigit():
            object.__setattr__(self, "faces", int(self.faces))
        if not (self.faces in ("all", "largest") or (isinstance(self.faces, int) and self.faces >= 1)):
            raise ValueError(f"faces must be all, largest or a number >= 1, got {self.faces!r}")

    @property
    def faces_config(self) -> FacesConfig:
        """The several-faces settings for ``faces`` ("all" or N)."""
        return FacesConfig(max_faces=self.faces if isinstance(self.faces, int) else None)

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.video.parent / f"{self.video.stem}_track"


@dataclass(frozen=True)
class TrackResult:
    """What :func:`track_video` wrote and found.

    Attributes:
        out_dir: the output folder.
        files: output name -> path, for the files written.
        track: face 0's results on every decoded frame (no pose on frames without it, or on all frames when no
            face was found; translations after the ``ipd_mm`` scaling).
        identity_face_m: ``(n, 3)`` face 0's shape, canonical frame, metres; None without confident frames.
        summary: the content of ``summary.json``.
        faces: face id -> that face's results on its own frames (the rows of ``poses.csv``).
    """

    out_dir: Path
    files: dict[str, Path]
    track: PoseTrack
    identity_face_m: np.ndarray | None
    summary: dict
    faces: dict[int, PoseTrack] = field(default_factory=dict)


def _stderr_note(message: str) -> None:
    print(f"track-video: {message}", file=sys.stderr)


def camera_for_video(intrinsics: Path | None, width: int, height: int) -> tuple[Intrinsics, list[str]]:
    """The camera for ``width x height`` frames and the notes to show: from K.json (scaled to the video
    when it is the calibrated image resized) with a warning per implausible value
    (:func:`perspnet.intrinsics.plausibility_warnings`), or the default field of view with a warning.

    Raises:
        IntrinsicsError: unreadable or invalid K.json, or one that cannot be scaled to the video.
    """
    if intrinsics is None:
        intr = default_intrinsics(width, height)
        return intr, [f"warning: no --intrinsics given: assuming the default {DEFAULT_HFOV_DEG:g} degree horizontal "
                      f"field of view (fx = {intr.fx:.1f} px); translations, depth above all, are only as good as "
                      "this guess"]
    try:
        calibrated = load_intrinsics(intrinsics)
        intr, message = for_video(calibrated, width, height)
    except IntrinsicsError as e:
        message = str(e)
        raise IntrinsicsError(message if str(intrinsics) in message else f"{intrinsics}: {message}") from None
    warnings = [f"warning: {intrinsics}: {w}" for w in plausibility_warnings(calibrated)]
    return intr, warnings + ([] if message is None else [f"note: {message}"])


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
    with staged_folder(config.out_dir, OUTPUT_FILES + _per_face_files(config.out_dir)) as stage:
        online = config.tracker
        if config.ipd_mm is not None and online.eye_every == 0:
            online = replace(online, eye_every=IPD_EYE_EVERY)
        if config.faces == "largest":
            engine = OnlineTracker(predictor, intr, face_model, online, timer)
            process = lambda batch: [(0, r) for r in engine.process(batch)]  # noqa: E731
        else:
            engine = MultiFaceTracker(predictor, intr, face_model, online, config.faces_config, timer)
            process = engine.process
        with engine:
            tracks, frame_index, frame_time, box_sources = stream_pass(
                config.video, process, timer, stage / _SCRATCH, predictor.n_points, face_model.n_verts,
                config.batch_size, report, info.n_frames_estimate, config.progress)
            single = isinstance(engine, OnlineTracker)
            trackers = {0: engine} if single else {t.number: t.tracker for t in engine.tracks}
            colours = None if single else {t.number: t.colour for t in engine.tracks}
        faces = assemble_faces(tracks, trackers, colours, config.faces_config, config.min_run_frames,
                               config.tracker.measure, config.tracker.filter, config.filter,
                               intr, face_model, config.ipd_mm, timer)
        for face in faces:
            _face_notes(config, face, notes, notify)
        status, status_notes = _clip_status(tracks, faces, frame_index, engine.detector_calls, config.min_run_frames)
        for note in status_notes:
            notes.append(note)
            notify(note)
        if config.ipd_mm is not None and not any(f.identity_face_m is not None for f in faces):
            notes.append("warning: --ipd-mm not applied: no frame had a confident pose, so there is no identity")
            notify(notes[-1])
        stats = _tracker_stats(engine, trackers)
        if config.faces == "largest" and stats["max_faces_seen"] > 1:
            notes.append(f"note: several faces seen (up to {stats['max_faces_seen']}, on "
                         f"{engine.frames_with_several_faces} of {engine.detector_calls} detector runs): "
                         "tracked the largest")
            notify(notes[-1])
        elif isinstance(config.faces, int) and stats["max_faces_seen"] > config.faces:
            notes.append(f"note: up to {stats['max_faces_seen']} faces seen on a frame: tracked at most "
                         f"{config.faces} at a time (--faces {config.faces})")
            notify(notes[-1])
        if not report.ok:
            notes.append(f"warning: {config.video}: {report.summary()}")
            notify(notes[-1])

        covered = np.zeros(len(frame_index), bool)
        for face in faces:
            covered[np.searchsorted(frame_index, face.track.frame)] = True
        no_face = PoseTrack.empty(frame_index[~covered], frame_time[~covered])
        face0 = faces[0] if faces else None
        track = face0.track.on_frames(frame_index, frame_time) if face0 else PoseTrack.empty(frame_index, frame_time)
        files: dict[str, Path] = {}
        with timer("write"):
            write_poses_csv(stage / "poses.csv", [f.track for f in faces] + [no_face])
            files["poses.csv"] = config.out_dir / "poses.csv"
            for face in faces:
                files.update(_write_identity(stage, config, face, face_model))
            overlay_faces = []
            for face in faces:
                shapes = face_meshes(face, face_model.n_verts) if config.overlay or config.save_meshes else None
                if config.save_meshes:
                    files.update(_write_meshes(stage, config, face, shapes, face_model))
                if config.overlay:
                    overlay_faces.append(OverlayFace(face.face_id, face.track, shapes, face.identity_face_m))
                del shapes
            if config.overlay:
                write_overlay(config.video, stage / "overlay.mp4", overlay_faces, face_model.triangles, intr,
                              info.avg_fps, frame_index, STATUS_TEXT.get(status, "no pose"))
                files["overlay.mp4"] = config.out_dir / "overlay.mp4"
            del overlay_faces
            for face in faces:
                face.records.clear()
            for t in tracks.values():
                t.store.path.unlink()
            n_with_pose = int(_frames_with_pose(faces, frame_index).sum())
            plot_stability(stage / "stability.png",  # on every frame: a face's line breaks where it is not seen
                           {f.face_id: f.track.on_frames(frame_index, frame_time) for f in faces},
                           f"{config.video.name}: {len(faces)} face(s), {n_with_pose} / {len(frame_index)} frames "
                           f"with a pose, filter {config.filter}" if status == "ok" else
                           f"{config.video.name}: {STATUS_TEXT[status]} ({len(frame_index)} frames)")
            files["stability.png"] = config.out_dir / "stability.png"
            jitter = jitter_summary(stage / "poses.csv", "perspnet", str(files["poses.csv"]),
                                    config.filter != "none")
        total_s = time.perf_counter() - start
        summary = {"status": status, **_summary(config, info, intr, faces, frame_index, stats, box_sources, face_model,
                                                timer.seconds, total_s, jitter, notes, report, predictor)}
        write_json_atomic(stage / "summary.json", summary)
        files["summary.json"] = config.out_dir / "summary.json"
    return TrackResult(config.out_dir, files, track, None if face0 is None else face0.identity_face_m, summary,
                       {f.face_id: f.track for f in faces})


def _longest_run(accepted: list[bool]) -> int:
    """Length of the longest run of consecutive True in ``accepted``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(accepted, np.int8), [0]])))
    return int(np.max(edges[1::2] - edges[::2])) if edges.size else 0


def _clip_status(tracks: dict, faces: list[FaceResult], frame_index: np.ndarray, detector_calls: int,
                 min_run_frames: int) -> tuple[str, list[str]]:
    """The clip's ``summary["status"]`` (:data:`STATUSES`) and the warnings and notes that say why: a clip without
    a pose says whether no face was found or every pose was dropped (and why); a face with a pose on fewer than
    :data:`LOW_COVERAGE` of the frames gets a note."""
    n = len(frame_index)
    posed = [(face.face_id, int(face.track.success.sum())) for face in faces]
    if any(k for _, k in posed):
        return "ok", [f"note: face {face_id} has a pose on only {k} of {n} frames ({100 * k / n:.0f}%)"
                      for face_id, k in posed if k < LOW_COVERAGE * n]
    boxed = [t for t in tracks.values() if np.isfinite(np.asarray(t.box, float).reshape(-1, 3)).all(axis=1).any()]
    if not boxed:
        return "no_face", [f"warning: no face found in any of the {n} frames (the detector ran {detector_calls} "
                           "times): nothing was tracked"]
    run = max(_longest_run(t.accepted) for t in boxed)
    why = (f"its longest run of frames with an accepted pose is {run}, fewer than --min-run-frames {min_run_frames}"
           if run else "no frame gave an accepted pose")
    return "no_pose", [f"warning: a face was found but no pose was kept: {why}"]


def _per_face_files(out_dir: Path) -> tuple[str, ...]:
    """Per-face outputs (``identity_<id>.obj`` ...) an earlier run left in ``out_dir``: removed unless rewritten."""
    if not out_dir.is_dir():
        return ()
    return tuple(sorted(p.name for pattern in ("identity_*.obj", "identity_*.npz", "meshes_*.npz")
                        for p in out_dir.glob(pattern)))


def _face_notes(config: TrackConfig, face: FaceResult, notes: list[str], notify: Callable[[str], None]) -> None:
    if face.ipd_scale is not None and face.ipd_scale.method == "size":
        notes.append(f"warning: --ipd-mm (face {face.face_id}): eye corners found on {face.ipd_scale.eye_frames} "
                     f"usable frames (at least {MIN_EYE_FRAMES} within {MAX_EYE_YAW_DEG:g} degrees of frontal are "
                     "needed); the size comes from the shape's eye region instead, which is less sure")
        notify(notes[-1])


def _write_identity(stage: Path, config: TrackConfig, face: FaceResult, face_model) -> dict[str, Path]:
    """``identity_<id>.obj`` / ``.npz`` of a face (and ``identity.obj`` / ``.npz`` for face 0)."""
    identity = face.identity_face_m
    if identity is None:
        return {}
    names = [f"identity_{face.face_id}"] + (["identity"] if face.face_id == 0 else [])
    ipd_mm = float(face_model.ipd_m(identity)) * MM_PER_M
    comment = (f"identity shape of face {face.face_id} in {config.video.name}: canonical face frame (x right, y "
               f"down, z into the head), metres; IPD {ipd_mm:.2f} mm")
    files = {}
    for name in names:
        write_obj(stage / f"{name}.obj", identity, face_model.triangles, comment)
        save_npz_atomic(stage / f"{name}.npz", {
            "verts_face_m": identity, "triangles": face_model.triangles, "ipd_mm": np.float64(ipd_mm),
            "scale": np.float64(face.scale), "frames_used": np.int64(face.estimator.n_accepted)})
        files.update({f"{name}{ext}": config.out_dir / f"{name}{ext}" for ext in (".obj", ".npz")})
    return files


def _write_meshes(stage: Path, config: TrackConfig, face: FaceResult, shapes: np.ndarray,
                  face_model) -> dict[str, Path]:
    """``meshes_<id>.npz`` of a face (and ``meshes.npz`` for face 0): per-frame camera-space meshes."""
    track = face.track
    verts_cam = (np.einsum("nij,nvj->nvi", track.R, shapes) + track.t[:, None, :]).astype(np.float32)
    names = [f"meshes_{face.face_id}.npz"] + (["meshes.npz"] if face.face_id == 0 else [])
    for name in names:
        save_npz_atomic(stage / name, {
            "verts_cam_m": verts_cam, "triangles": face_model.triangles, "frame": track.frame,
            "timestamp_s": track.timestamp_s, "valid": np.isfinite(track.t).all(axis=1)})
    return {name: config.out_dir / name for name in names}


def _frames_with_pose(faces: list[FaceResult], frame_index: np.ndarray) -> np.ndarray:
    """``(F,)`` bool: some face has a pose on the frame."""
    ok = np.zeros(len(frame_index), bool)
    for face in faces:
        ok[np.searchsorted(frame_index, face.track.frame[face.track.success])] = True
    return ok


def _tracker_stats(engine: OnlineTracker | MultiFaceTracker, trackers: dict[int, OnlineTracker]) -> dict[str, int]:
    """Detector runs, faces seen at most on a frame, and the online trackers' counts, all faces together."""
    return {"detector_calls": engine.detector_calls, "max_faces_seen": engine.max_faces_seen,
            **{key: sum(getattr(t, key) for t in trackers.values())
               for key in ("cold_fallbacks", "reanchors", "redetections")},
            "duplicates": getattr(engine, "duplicates", 0)}


def _face_summary(face: FaceResult, face_model) -> dict:
    """One entry of ``summary["faces"]``."""
    track, identity = face.track, face.identity_face_m
    frames = track.frame[track.success]
    notes = []
    if len(face.tracks) > 1:
        notes.append(f"found again {len(face.tracks) - 1} time(s) after being lost (its shape and colouring matched)")
    return {"face_id": face.face_id, "frames_tracked": int(track.success.sum()),
            "first_frame": int(frames[0]) if frames.size else None,
            "last_frame": int(frames[-1]) if frames.size else None,
            "ipd_mm": None if identity is None else round(float(face_model.ipd_m(identity)) * MM_PER_M, 4),
            "tracks": len(face.tracks), "notes": notes}


def _summary(config: TrackConfig, info, intr: Intrinsics, faces: list[FaceResult], frame_index: np.ndarray,
             stats: dict[str, int], box_sources: Counter[str], face_model, seconds: dict, total_s: float, jitter: dict,
             notes: list[str], report: DecodeReport, predictor) -> dict:
    """``summary.json``: ``frames``, ``frames_with_pose`` (frames where some face has a pose), ``detection_rate``
    (their ratio), ``detector_calls``, ``box_sources`` (face-frames per box source), ``cold_fallbacks``,
    ``reanchors``, ``redetections``, ``processing_fps`` (frames per second of the whole call), ``total_seconds``,
    ``stage_seconds`` and ``stage_ms_per_frame`` (:data:`STAGES`), settings, ``camera`` (the K used),
    ``video_info``, ``identity`` (face 0's: IPD, size IPD, frames used, and with ``--ipd-mm`` the scale applied,
    how it was found and from how many frames, :class:`tracker.ipd_scale.IpdScale`), ``shape_dev_mm`` (face 0's
    median, p95), ``faces`` (per face: id, frames tracked, first and last frame with a pose, IPD, tracks joined,
    notes), ``jitter`` (:func:`pipelines.track_outputs.jitter_summary`) and ``notes``. No NaN: null."""
    n = len(frame_index)
    stages = {s: seconds.get(s, 0.0) for s in STAGES}
    with_pose = _frames_with_pose(faces, frame_index)
    face0 = faces[0] if faces else None
    identity = None if face0 is None else face0.identity_face_m
    ipd_scale = None if face0 is None else face0.ipd_scale
    dev = np.zeros(0) if face0 is None else face0.track.shape_dev_mm[face0.track.success]
    return {
        "video": str(config.video), "out_dir": str(config.out_dir),
        "frames": n, "frames_with_pose": int(with_pose.sum()),
        "detection_rate": finite(with_pose.mean()) if n else 0.0,
        "detector_calls": stats["detector_calls"], "box_sources": dict(box_sources),
        "cold_fallbacks": stats["cold_fallbacks"], "reanchors": stats["reanchors"],
        "redetections": stats["redetections"],
        "processing_fps": finite(n / total_s) if total_s > 0 else None,
        "total_seconds": round(total_s, 4),
        "stage_seconds": {s: round(v, 4) for s, v in stages.items()},
        "stage_ms_per_frame": {s: round(1000.0 * v / max(n, 1), 3) for s, v in stages.items()},
        "filter": config.filter, "batch_size": config.batch_size, "faces_option": str(config.faces),
        "device": str(predictor.device), "checkpoint": str(config.checkpoint) if config.checkpoint else "shipped",
        "camera": {"source": str(config.intrinsics) if config.intrinsics else f"default {DEFAULT_HFOV_DEG:g} deg FOV",
                   **intr.to_dict()},
        "video_info": {"width": info.width, "height": info.height, "avg_fps": finite(info.avg_fps or math.nan),
                       "rotation_deg": info.rotation_deg, "codec": info.codec, "decode": report.summary()},
        "identity": None if identity is None else {
            "ipd_mm": round(float(face_model.ipd_m(identity)) * MM_PER_M, 4),
            "size_ipd_mm": round(face_model.size_ipd_m(identity) * MM_PER_M, 4),
            "ipd_mm_requested": config.ipd_mm, "scale_applied": 1.0 if ipd_scale is None else ipd_scale.scale,
            "ipd_method": None if ipd_scale is None else ipd_scale.method,
            "ipd_size_factor": None if ipd_scale is None else ipd_scale.size_factor,
            "ipd_eye_frames": None if ipd_scale is None else ipd_scale.eye_frames,
            "frames_used": face0.estimator.n_accepted, "samples_kept": face0.estimator.n_samples,
            "max_residual_mm": config.tracker.identity.max_residual_mm},
        "shape_dev_mm": None if dev.size == 0 else {"median": finite(np.median(dev)),
                                                    "p95": finite(np.percentile(dev, 95))},
        "faces": [_face_summary(face, face_model) for face in faces],
        "jitter": jitter,
        "notes": notes,
    }
