"""The streaming face tracker: boxes, PerspNet on batches of frames, identity-constrained PnP, online filter.

:class:`OnlineTracker` takes a clip's frames in order, a batch at a time, and returns one
:class:`FrameResult` per frame. Per batch:

1. Boxes (:mod:`tracker.acquisition`). While a track exists, each frame's box is the last accepted
   frame's shape projected at the pose predicted for that frame's timestamp (constant velocity,
   :func:`tracker.kalman.propagate`, from the online filter's state after the previous batch). A frame
   without a usable predicted box runs the detector (MediaPipe, largest face), every frame until one
   finds a face; later frames of the batch that need a box reuse that detection's box.
   Re-anchoring: a box that only follows the tracked pose drifts, because the network sees the face
   where the crop puts it (it is trained on faces filling the box): a box 0.7x too small gives a pose
   that projects 0.7x too small, and so on (on synthetic clips, 1.3x after 3 s of a still face, 0.66x
   after a fast approach). So when ``reanchor_s`` seconds have passed since the last detection, the
   detector also runs on the first frame of a batch; the face overlapping the predicted box
   (:data:`tracker.acquisition.MIN_IOU`) gives that frame's box, and the batch's other predicted boxes
   are moved and rescaled as the prediction was on that frame.
2. PerspNet on the boxed frames, one batch (:meth:`perspnet.inference.PerspNetPredictor.network`).
3. Per frame, in order: the sampled pixels (undistorted with :func:`perspnet.intrinsics.undistort_points`;
   PnP then runs with K and no distortion) are matched to 3D points on the *frame shape* = identity +
   bounded expression residual (:mod:`tracker.identity`), through the (triangle, barycentric) coordinates
   of each pixel's predicted canonical point on the frame's predicted mesh (:mod:`tracker.surface`). PnP
   warm-starts from the online filter's prediction, with a cold fallback (:mod:`tracker.measure`).
   An accepted pose updates the online filter (:class:`tracker.kalman.SE3KalmanFilter`) and the identity.
4. Re-detection: a frame whose box came from the track or from an earlier detection and that gives no
   accepted pose, or a pose that puts the face away from that box (``max_box_offset``: the face jumped
   out of the box, or partly: a cut, very fast motion), or a crop with much less face in it than the
   track's recent frames (``redetect_mask_drop``: the network can find a face-like region in a crop the
   face has left, and pose it inside the box), or a box whose content looks unlike the last accepted
   frame's (``redetect_min_similarity``, for a model that finds face everywhere), runs the detector on that
   frame (at most ``redetect_per_batch`` times per batch); if it finds a face, that frame and the rest of
   the batch are run again on its box, and the online filter restarts at that frame's pose. A face found
   where an accepted, on-box pose already put it was a false alarm: the frame keeps its pose and the track.

5. Eye corners (only with ``eye_every > 0``; ``track-video --ipd-mm`` sets it): every ``eye_every``-th
   frame with an accepted pose runs the landmarker once more, and the eye corners of the face in its box
   are returned (undistorted) for the clip's metric scale (:mod:`tracker.ipd_scale`).

The online filter only steers boxes and warm starts. Each frame's correspondences are returned
(:class:`Correspondences`) so that the output poses can be solved again against the clip's final
identity (:mod:`tracker.refine`) and then filtered over the whole clip
(:func:`tracker.smoother.filter_track`). A track is lost when the online filter drops it
(no accepted measurement for ``FilterConfig.lost_after_s``) or its predicted box leaves the frame;
lost frames get no pose. Times are stream timestamps in seconds, made strictly increasing for the filter
(a repeated timestamp is nudged by 1 microsecond).
"""
from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from perspnet.face_model import FaceModel
from perspnet.inference import PerspNetPredictor
from perspnet.intrinsics import Intrinsics, undistort_points
from perspnet.landmark_ids import EYE_CORNERS
from perspnet.validate import check_int, check_range
from baseio.video_io import Frame
from tracker.acquisition import (Detection, FaceSearch, box_from_pose, box_in_view, box_similarity, box_thumbnail, boxes_agree,
                                 detect_face)
from tracker.identity import FrameShape, IdentityConfig, IdentityEstimator
from tracker.kalman import PERSPNET_FILTER, FilterConfig, SE3KalmanFilter, propagate
from tracker.measure import Correspondences, FrameResult, MeasureConfig, Measurement, solve_frame
from tracker.surface import MeshIndex, closest_on_mesh

__all__ = ["OnlineConfig", "Correspondences", "FrameResult", "StageTimer", "solve_frame",
           "OnlineTracker", "TrackBatch",
           "FrameMeasurement", "TIME_NUDGE_S"]

TIME_NUDGE_S = 1e-6  # a frame whose timestamp does not increase is placed this much after the previous one
MASK_HISTORY = 15  # accepted frames whose mask fractions set the reference of OnlineConfig.redetect_mask_drop
JUMP_MIN_SIZE = 0.7  # a re-anchoring detection away from the track is the face (it jumped) when this large


@dataclass(frozen=True)
class OnlineConfig:
    """Settings of :class:`OnlineTracker`. Validated on construction.

    Attributes:
        min_face_px: smallest usable face box side, pixels (smaller predicted boxes count as lost).
        min_mask_fraction: frames whose crop PerspNet segments less than this fraction as face get no pose
            (with the lite checkpoint: 0.15-0.38 on a face, by how well the box fits; 0.00-0.06 on a
            cartoon sky with lettering that a stale box was still predicting into).
        reanchor_s: seconds between detector runs that re-anchor a tracked box (step 1); inf: never.
        redetect_per_batch: detector runs per batch at most for frames whose box missed the face (step 4).
        max_box_offset: a pose whose projected face box is off-centre by more than this fraction of the
            box side (or off in size by more than a factor ``1 + 2 max_box_offset``) missed the face.
        redetect_mask_drop: a frame whose crop PerspNet segments as face less than this fraction of the
            median over the last ``MASK_HISTORY`` accepted frames may have lost the face (step 4): a crop
            the face has left is segmented as face far less than one on it, while PnP may still accept a
            pose there.
        redetect_min_similarity: a frame whose box's grey thumbnail correlates less than this with the last
            accepted frame's (:func:`tracker.acquisition.box_similarity`, in [-1, 1]) may have lost the face
            (step 4); independent of the model, whose segmentation may call a faceless crop face.
        identity: the identity estimate and expression residual bound.
        measure: PnP and its warm/cold policy.
        filter: the online filter (noise, ``lost_after_s``); the same settings filter the output.
            Default :data:`tracker.kalman.PERSPNET_FILTER`.
        eye_every: sample the eye corners on every ``eye_every``-th frame (step 5; 0: never). About one
            landmarker run per sample (its cost: docs/benchmarks.md).
    """

    min_face_px: float = 24.0
    min_mask_fraction: float = 0.1
    reanchor_s: float = 0.25
    redetect_per_batch: int = 2
    max_box_offset: float = 0.25
    redetect_mask_drop: float = 0.6
    redetect_min_similarity: float = 0.7
    identity: IdentityConfig = IdentityConfig()
    measure: MeasureConfig = MeasureConfig()
    filter: FilterConfig = PERSPNET_FILTER
    eye_every: int = 0

    def __post_init__(self) -> None:
        check_range("min_face_px", self.min_face_px, 0.0, lo_open=True)
        check_range("min_mask_fraction", self.min_mask_fraction, 0.0, 1.0, hi_open=True)
        check_int("redetect_per_batch", self.redetect_per_batch, 0)
        check_range("max_box_offset", self.max_box_offset, 0.0, lo_open=True)
        check_range("redetect_mask_drop", self.redetect_mask_drop, 0.0, 1.0)
        check_range("redetect_min_similarity", self.redetect_min_similarity, -1.0, 1.0)
        check_range("reanchor_s", self.reanchor_s, 0.0, lo_open=True, allow_inf=True)  # inf: never
        check_int("eye_every", self.eye_every, 0)


@dataclass
class StageTimer:
    """Wall-clock seconds per named stage: ``with timer("pnp"): ...``."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@dataclass
class TrackBatch:
    """One batch of frames of one face in progress (:meth:`OnlineTracker.begin`).

    Attributes:
        frames: the batch's frames, in stream order.
        times: their filter times, seconds (strictly increasing).
        boxes: per frame ``(3,)`` (cx, cy, side) pixels or None; step 4 may change them.
        sources: per frame the box's source (:class:`FrameResult` ``box_source``).
        net: PerspNet's outputs on the boxed frames; ``slot``: frame -> item of ``net``.
        redetections: step-4 detector runs made in this batch.
        missed: a step-4 detector run of this batch found no face; later frames of the batch that look
            wrong in the same way are taken as faceless without running it again.
    """

    frames: list[Frame]
    times: list[float]
    boxes: list[np.ndarray | None]
    sources: list[str]
    net: dict[str, np.ndarray] = field(default_factory=dict)
    slot: dict[int, int] = field(default_factory=dict)
    redetections: int = 0
    missed: bool = False


@dataclass(frozen=True)
class FrameMeasurement:
    """A frame's measurement before it is committed (:meth:`OnlineTracker.measure`); fields as in
    :class:`FrameResult`, ``thumbnail`` the box's :func:`tracker.acquisition.box_thumbnail`."""

    measurement: Measurement | None
    shape: FrameShape | None
    verts_raw: np.ndarray | None
    correspondences: Correspondences | None
    thumbnail: np.ndarray | None


class OnlineTracker:
    """Causal tracking of one face through a clip; see the module docstring.

    Args:
        predictor: a loaded PerspNet.
        intr: the camera, for frames of ``intr.width x intr.height``.
        face_model: the mesh topology (triangles) shared with the checkpoint.
        config: see :class:`OnlineConfig`.
        timer: stage timings are added to it ("detect", "network", "identity", "pnp").
        detector: ``detector(frame, near_box)`` answers the tracker's detector runs (steps 1 and 4) instead
            of its own landmarker (:func:`tracker.acquisition.detect_face`): a manager of several faces
            (:mod:`tracker.faces`) keeps each tracker to its own face with it.
    """

    def __init__(self, predictor: PerspNetPredictor, intr: Intrinsics, face_model: FaceModel,
                 config: OnlineConfig = OnlineConfig(), timer: StageTimer | None = None,
                 detector: Callable[[Frame, np.ndarray | None], Detection] | None = None) -> None:
        self.predictor = predictor
        self.detector = detector
        self.intr = intr
        self.config = config
        self.timer = timer or StageTimer()
        self.mesh = MeshIndex(face_model.triangles, face_model.n_verts)
        self.identity = IdentityEstimator(config.identity)
        self.kf = SE3KalmanFilter(config.filter)
        self.landmarker: FaceSearch | None = None  # created at the first detection
        self.detector_calls = 0
        self.max_faces_seen = 0
        self.frames_with_several_faces = 0
        self.cold_fallbacks = 0
        self.reanchors = 0  # detector runs that re-anchored a tracked box
        self.redetections = 0  # frames whose face was found again by the detector after a miss (step 4)
        self._detected_s = -np.inf  # filter time of the last detector run
        self._time_s: float | None = None  # filter time of the last frame processed
        self._shape: np.ndarray | None = None  # shape of the last accepted frame, projected for the boxes
        self._mask_history: deque[float] = deque(maxlen=MASK_HISTORY)  # mask fractions of accepted frames
        self._thumbnail: np.ndarray | None = None  # box_thumbnail of the last accepted frame

    def close(self) -> None:
        if self.landmarker is not None:
            self.landmarker.close()
            self.landmarker = None

    def __enter__(self) -> OnlineTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _filter_time(self, timestamp_s: float, previous_s: float | None) -> float:
        return timestamp_s if previous_s is None or timestamp_s > previous_s else previous_s + TIME_NUDGE_S

    def _predicted(self, time_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The online filter's constant-velocity pose at ``time_s``, None without a track."""
        s = self.kf.state
        if s is None or self._time_s is None:
            return None
        return propagate(s.R, s.t, s.v, time_s - self._time_s)

    def predicted_pose(self, time_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        """``(R_cam_face, t_cam_face)`` the online filter predicts at ``time_s`` (before that frame is
        committed), None without a track."""
        return self._predicted(time_s)

    def predicted_box(self, time_s: float) -> np.ndarray | None:
        """Box (cx, cy, side) of the last accepted shape at the pose predicted for ``time_s``; None without
        a track."""
        pose = self._predicted(time_s) if self._shape is not None else None
        return None if pose is None else box_from_pose(*pose, self._shape, self.intr)

    def box_at(self, R_cam_face: np.ndarray, t_cam_face: np.ndarray) -> np.ndarray | None:
        """Box (cx, cy, side) of the last accepted shape at the pose ``(R_cam_face, t_cam_face)``; None
        without a shape or when the pose puts it behind the camera."""
        return None if self._shape is None else box_from_pose(R_cam_face, t_cam_face, self._shape, self.intr)

    @property
    def has_shape(self) -> bool:
        """Whether a frame was ever accepted."""
        return self._shape is not None

    def _landmarks(self, image_rgb: np.ndarray, near: np.ndarray | None) -> Detection:
        if self.landmarker is None:
            self.landmarker = FaceSearch()
        return detect_face(self.landmarker, image_rgb, near)

    def _eye_corners(self, frame: Frame, box: np.ndarray, accepted: bool) -> np.ndarray | None:
        """Step 5: the undistorted eye-corner pixels ``(4, 2)`` of the face in ``box`` on a sampled frame."""
        if not accepted or self.config.eye_every == 0 or frame.index % self.config.eye_every:
            return None
        with self.timer("eyes"):
            det = self._landmarks(frame.image_rgb, box)
        return None if det.points_px is None else undistort_points(det.points_px[list(EYE_CORNERS)], self.intr)

    def _detect(self, frame: Frame, time_s: float, near: np.ndarray | None = None) -> Detection:
        with self.timer("detect"):
            det = self._landmarks(frame.image_rgb, near) if self.detector is None else self.detector(frame, near)
        self._detected_s = time_s
        self.detector_calls += 1
        self.max_faces_seen = max(self.max_faces_seen, det.n_faces)
        self.frames_with_several_faces += det.n_faces > 1
        return det

    def _boxes(self, frames: list[Frame], times: list[float]) -> tuple[list[np.ndarray | None], list[str]]:
        """Box and its source per frame (step 1 of the module doc)."""
        w, h, min_px = self.intr.width, self.intr.height, self.config.min_face_px
        shape = self._shape
        boxes: list[np.ndarray | None] = []
        sources: list[str] = []
        detected: np.ndarray | None = None
        shift, scale = np.zeros(2), 1.0  # re-anchoring of this batch's predicted boxes
        for k, (frame, time_s) in enumerate(zip(frames, times)):
            pose = self._predicted(time_s) if shape is not None else None
            box = box_from_pose(*pose, shape, self.intr) if pose is not None else None
            if k == 0 and box_in_view(box, w, h, min_px) and time_s - self._detected_s >= self.config.reanchor_s:
                det = self._detect(frame, time_s, near=box)
                if box_in_view(det.box, w, h, min_px):
                    self.reanchors += 1
                    shift, scale = det.box[:2] - box[:2], det.box[2] / box[2]
                    boxes.append(det.box)
                    sources.append("reanchor")
                    continue
                if box_in_view(det.largest, w, h, min_px) and det.largest[2] >= JUMP_MIN_SIZE * box[2]:
                    # no face where the track predicts it but one as large elsewhere: the face jumped
                    self.redetections += 1
                    detected, shape = det.largest, None  # the batch's other frames reuse this detection
                    boxes.append(detected)
                    sources.append("redetect")
                    continue
            if box is not None:
                box = np.array([*(box[:2] + shift), box[2] * scale])
            if box_in_view(box, w, h, min_px):
                boxes.append(box)
                sources.append("track")
            elif detected is not None:
                boxes.append(detected)
                sources.append("detect-reuse")
            else:
                found = self._detect(frame, time_s).box
                detected = found if box_in_view(found, w, h, min_px) else None
                boxes.append(detected)
                sources.append("none" if detected is None else "detect")
        return boxes, sources

    def _correspondences(self, net: dict[str, np.ndarray], j: int) -> Correspondences:
        """Batch item ``j`` of the network output: pixels undistorted, 3D points as mesh coordinates."""
        tri, bary = closest_on_mesh(net["points_face_m"][j], net["verts_face_m"][j], self.mesh)
        points_px = net["points_px"][j]
        return Correspondences(undistort_points(points_px, self.intr), tri, bary)

    def _network(self, frames: list[Frame], boxes: list[np.ndarray | None], first: int = 0
                 ) -> tuple[dict[str, np.ndarray], dict[int, int]]:
        """PerspNet on the boxed frames from ``first`` on: its outputs and frame -> item of the batch."""
        boxed = [i for i in range(first, len(frames)) if boxes[i] is not None]
        if not boxed:
            return {}, {}
        with self.timer("network"):
            net = self.predictor.network([frames[i].image_rgb for i in boxed], [boxes[i] for i in boxed])
        return net, {i: j for j, i in enumerate(boxed)}

    def _measure(self, net: dict[str, np.ndarray], j: int | None, time_s: float):
        """PnP of batch item ``j`` (step 3): ``(measurement, shape, verts_raw, correspondences)``, all None
        when the frame was not boxed or its crop shows too little face."""
        if j is None or net["mask_fraction"][j] < self.config.min_mask_fraction:
            return None, None, None, None
        verts_raw = net["verts_face_m"][j]
        with self.timer("identity"):
            corr = self._correspondences(net, j)
        with self.timer("pnp"):
            m, shape = solve_frame(corr, verts_raw, self.identity, self.mesh, self.intr.K, self._predicted(time_s),
                                   self.config.measure)
        return m, shape, verts_raw, corr

    def _mask_dropped(self, mask_fraction: float) -> bool:
        """Whether the crop shows much less face than the track's recent accepted frames (step 4)."""
        history = self._mask_history
        return len(history) >= 3 and mask_fraction < self.config.redetect_mask_drop * float(np.median(history))

    def _looks_different(self, thumbnail: np.ndarray | None) -> bool:
        """Whether a box's :func:`box_thumbnail` looks unlike the last accepted frame's (step 4)."""
        return (thumbnail is not None and self._thumbnail is not None
                and box_similarity(thumbnail, self._thumbnail) < self.config.redetect_min_similarity)

    def _off_box(self, m: Measurement, shape: FrameShape, box: np.ndarray) -> bool:
        """Whether the pose puts the face away from the box it was measured in (the crop saw part of it)."""
        seen = box_from_pose(m.pnp.R_cam_face, m.pnp.t_cam_face, shape.verts_face_m, self.intr)
        return not boxes_agree(seen, box, self.config.max_box_offset)

    def begin(self, frames: list[Frame], seed_box: np.ndarray | None = None) -> TrackBatch:
        """Steps 1 of the module doc for the next ``frames``: filter times, boxes and their sources. With
        ``seed_box`` (a detection made by the caller on ``frames[0]``) the first frame uses it and the
        batch's frames without a predicted box reuse it. PerspNet has not run yet (:meth:`run_network`)."""
        times, previous = [], self._time_s
        for frame in frames:
            previous = self._filter_time(frame.timestamp_s, previous)
            times.append(previous)
        if seed_box is None:
            boxes, sources = self._boxes(frames, times)
        else:
            boxes = [np.asarray(seed_box, np.float64)] * len(frames)
            sources = ["detect"] + ["detect-reuse"] * (len(frames) - 1)
        return TrackBatch(frames, times, boxes, sources)

    def boxed(self, batch: TrackBatch) -> list[int]:
        """Frames of ``batch`` that have a box (the items PerspNet runs on, in order)."""
        return [i for i, box in enumerate(batch.boxes) if box is not None]

    def run_network(self, batch: TrackBatch) -> None:
        """Step 2: PerspNet on the batch's boxed frames (a caller batching several faces together sets
        ``batch.net`` and ``batch.slot`` itself)."""
        batch.net, batch.slot = self._network(batch.frames, batch.boxes)

    def measure(self, batch: TrackBatch, i: int) -> FrameMeasurement:
        """Steps 3 and 4 for frame ``i`` of ``batch``: PnP, and the search for a face that left its box
        (which may change the boxes of frames ``i`` and later and run PerspNet on them again)."""
        frame, time_s = batch.frames[i], batch.times[i]
        boxes, sources = batch.boxes, batch.sources
        w, h, min_px = self.intr.width, self.intr.height, self.config.min_face_px
        m, shape, verts_raw, corr = self._measure(batch.net, batch.slot.get(i), time_s)
        thumbnail = None if boxes[i] is None else box_thumbnail(frame.image_rgb, boxes[i])
        on_box = m is not None and m.accepted and not self._off_box(m, shape, boxes[i])
        doubtful = not on_box or self._mask_dropped(batch.net["mask_fraction"][batch.slot[i]])
        suspect = sources[i] in ("track", "detect-reuse") and (doubtful or self._looks_different(thumbnail))
        if suspect and batch.redetections >= self.config.redetect_per_batch:
            if batch.missed and doubtful and m is not None and m.accepted:  # as where the detector saw no face
                m, corr = replace(m, accepted=False), None
        elif suspect:
            # the face may have left a box that was not found on this frame: look for it here (step 4)
            batch.redetections += 1
            found = self._detect(frame, time_s).box
            if box_in_view(found, w, h, min_px) and not (on_box and boxes_agree(found, boxes[i],
                                                                               self.config.max_box_offset)):
                self.redetections += 1
                n = len(batch.frames)
                boxes[i:] = [found] * (n - i)
                sources[i:] = ["redetect"] + ["detect-reuse"] * (n - i - 1)
                batch.net, batch.slot = self._network(batch.frames, boxes, first=i)
                m, shape, verts_raw, corr = self._measure(batch.net, batch.slot.get(i), time_s)
                thumbnail = box_thumbnail(frame.image_rgb, found)
            elif not box_in_view(found, w, h, min_px):
                batch.missed = True
                if doubtful and m is not None and m.accepted:  # the pose misses its box and the detector sees
                    m, corr = replace(m, accepted=False), None  # no face: no pose, now or in the offline pass
        return FrameMeasurement(m, shape, verts_raw, corr, thumbnail)

    def commit(self, batch: TrackBatch, i: int, fm: FrameMeasurement, veto: bool = False) -> FrameResult:
        """Frame ``i``'s measurement into the online filter and the identity; its :class:`FrameResult`.
        ``veto``: the caller found the measurement belongs to another face (it is kept as not accepted)."""
        frame, time_s = batch.frames[i], batch.times[i]
        m = fm.measurement
        if veto and m is not None and m.accepted:
            m = replace(m, accepted=False)
        self.cold_fallbacks += m is not None and m.cold_fallback
        accepted = m is not None and m.accepted
        with self.timer("pnp"):
            if accepted and batch.sources[i] == "redetect":
                self.kf.restart()  # the face was found away from the track: follow it from here
            if accepted:
                self.kf.step(time_s, (m.pnp.R_cam_face, m.pnp.t_cam_face), m.pnp.confidence)
            else:
                self.kf.step(time_s, None)
        self._time_s = time_s
        if accepted:
            with self.timer("identity"):
                self.identity.add(fm.verts_raw, m.pnp.confidence)
            self._shape = fm.shape.verts_face_m
            self._mask_history.append(float(batch.net["mask_fraction"][batch.slot[i]]))
            self._thumbnail = fm.thumbnail
        return FrameResult(frame.index, frame.timestamp_s, time_s, batch.boxes[i], batch.sources[i], m, fm.shape,
                           fm.verts_raw, fm.correspondences, self._eye_corners(frame, batch.boxes[i], accepted))

    def process(self, frames: list[Frame]) -> list[FrameResult]:
        """Track the next ``frames`` of the clip (in stream order); one :class:`FrameResult` each."""
        batch = self.begin(frames)
        self.run_network(batch)
        return [self.commit(batch, i, self.measure(batch, i)) for i in range(len(frames))]
