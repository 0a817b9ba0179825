"""Several faces at once: one :class:`tracker.online.OnlineTracker` per face, one detector and one PerspNet
batch for all of them, and a persistent face id per person.

:class:`MultiFaceTracker` takes the clip's frames a batch at a time, like a single-face tracker, and
returns ``(track number, FrameResult)`` pairs: one per frame for every track alive in that frame.

Per batch:

1. Tracks whose online filter dropped them (no accepted pose for ``FilterConfig.lost_after_s``, or a
   predicted box out of view) stop. A face hidden for a moment (behind another) is taken up again by its
   own track when a face no track claims appears where the track's last motion would have brought it,
   within :data:`HIDDEN_MAX_S` (:meth:`FaceTrack.coasted_box`, step 3); a face that comes back later
   starts a new track, and :func:`link_tracks` gives it its old id afterwards.
2. Claims: each live track's box predicted for each frame of the batch (its last accepted shape at the
   pose its online filter predicts).
3. Search for new faces, when no face is tracked (on every frame until one is found, as the single-face
   tracker does) or ``search_s`` after the last search (on the batch's first frame): each detected face
   that no claimed box covers takes up a lost track (above) or starts a new one there (largest first, up to
   ``max_faces`` live tracks).
4. Each track plans its boxes (:meth:`OnlineTracker.begin`). Its detector runs (re-anchoring, a face that
   left its box) are answered from one detector run per frame (cached), and only with a face that is
   nearer its own box than any other track's (:meth:`MultiFaceTracker._detector_for`): a track never takes
   a face another track is following, which is what keeps ids through a crossing.
5. PerspNet runs once on every track's crops of the batch together.
6. Per frame, every track measures (PnP, :meth:`OnlineTracker.measure`); two accepted poses that put their
   faces in the same place (boxes overlapping by ``DUPLICATE_IOU``) are one face measured twice, as when
   one face passes in front of another and the hidden one's box sees the front face: the measurement is
   kept by the track whose predicted position it is nearer (relative to depth), the other track coasts
   on its prediction (:meth:`OnlineTracker.commit` with ``veto``). A track whose predicted face lies mostly
   behind a nearer track's predicted face (``HIDDEN_COVER``) coasts too, whatever it measures, until its
   filter drops it and step 3 takes it up again where its motion leads (what the crop of a hidden face
   sees is the other face or the background: poses there would keep a wrong track alive).

Ids (:func:`link_tracks`, after the clip): tracks are taken in order of their first frame; a track joins
an earlier person none of whose tracks overlaps it in time when its identity shape is within
``reid_max_mm`` of that person's first track's (similarity-aligned RMS vertex distance,
:func:`shape_distance_mm`) and its colouring within ``reid_max_colour`` (mean :func:`colour_thumbnail` of
the accepted frames, :func:`colour_distance`), the nearest such person; otherwise it is a new person.
Persons are numbered 0, 1, 2 ... by first frame (faces first seen on the same frame: larger first).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from perspnet.alignment import fit_similarity
from perspnet.conventions import MM_PER_M
from perspnet.face_model import FaceModel
from perspnet.inference import PerspNetPredictor
from perspnet.intrinsics import Intrinsics
from baseio.video_io import Frame
from perspnet.crop import box_from_points
from tracker.acquisition import MIN_IOU, NEAR_MIN_SIDE, Detection, FaceSearch, box_from_pose, box_in_view, box_iou
from tracker.measure import FrameResult
from tracker.online import JUMP_MIN_SIZE, FrameMeasurement, OnlineConfig, OnlineTracker, StageTimer, TrackBatch

__all__ = ["FacesConfig", "FaceTrack", "MultiFaceTracker", "link_tracks", "shape_distance_mm", "colour_thumbnail",
           "colour_distance", "COLOUR_PX", "DUPLICATE_IOU",
           "MAX_TRACKED_FACES"]

COLOUR_PX = 8  # side of the colour thumbnails that tell faces apart by appearance
DUPLICATE_IOU = 0.5  # two tracks' posed faces overlapping this much are one face measured twice
HIDDEN_COVER = 0.5  # a face whose box is this much inside a nearer face's box is hidden behind it
HIDDEN_MAX_S = 2.0  # a lost track is taken up again by a face where its motion would have brought it, this long
COAST_FRAMES = 10  # accepted positions a hidden face's straight path is fitted to
MAX_TRACKED_FACES = 16  # faces tracked at the same time at most with max_faces None


@dataclass(frozen=True)
class FacesConfig:
    """Settings of :class:`MultiFaceTracker` and :func:`link_tracks`. Validated on construction.

    Attributes:
        max_faces: faces tracked at the same time at most (the largest new ones first); None: every face
            found (up to :data:`MAX_TRACKED_FACES`).
        search_s: seconds between searches of the whole frame for new faces while some face is tracked (a
            search costs a few times a tracked frame: :mod:`perspnet.face_search`); a face that comes into
            view is found within about this time.
        reid_max_mm, reid_max_colour: a track whose identity shape is within ``reid_max_mm`` of an earlier
            person's (mm, :func:`shape_distance_mm`) and whose colouring is within ``reid_max_colour`` of
            theirs (:func:`colour_distance`), and that does not overlap that person's tracks in time, gets
            that person's id. The predicted shapes of different people are alike (they lean to an average
            face, and a small face's shape is noisy), so the colouring does most of the telling apart.
    """

    max_faces: int | None = None
    search_s: float = 0.5
    reid_max_mm: float = 1.0
    reid_max_colour: float = 0.19

    def __post_init__(self) -> None:
        if self.max_faces is not None and not (isinstance(self.max_faces, int) and self.max_faces >= 1):
            raise ValueError(f"max_faces must be an integer >= 1 or None, got {self.max_faces!r}")
        if not self.search_s > 0:
            raise ValueError(f"search_s must be > 0, got {self.search_s!r}")
        for name in ("reid_max_mm", "reid_max_colour"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")



@dataclass
class FaceTrack:
    """One face followed from a detection until its online filter lost it.

    Attributes:
        number: order of creation, 0, 1, ... (not the face id: see :func:`link_tracks`).
        tracker: its single-face tracker (identity, filter, boxes).
        first_frame, last_frame: stream indices of its first and last frame.
        alive: still followed.
        colour_sum, colour_frames: sum of :func:`colour_thumbnail` over its accepted frames, and their count.
        recent: its last accepted poses, ``(filter time, R, t)``.
        hidden: it went behind a nearer face; its measurements are vetoed until step 3 takes it up again.
    """

    number: int
    tracker: OnlineTracker
    first_frame: int
    last_frame: int
    alive: bool = True
    colour_sum: np.ndarray = field(default_factory=lambda: np.zeros((COLOUR_PX, COLOUR_PX, 3)))
    colour_frames: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=COAST_FRAMES))  # (time_s, R, t) accepted
    hidden: bool = False

    def coasted_box(self, time_s: float) -> np.ndarray | None:
        """Where a track lost from view (hidden behind another face) would be at ``time_s``: its last
        accepted shape turned as last seen, moved on along the straight line fitted to its last
        ``COAST_FRAMES`` accepted positions (the filter's velocity is too noisy to extrapolate for a
        second), the box widened by ``1 + dt`` (dt seconds since) for the growing doubt; None when it was
        lost more than :data:`HIDDEN_MAX_S` ago or has too short a history."""
        if len(self.recent) < 3 or not self.tracker.has_shape:
            return None
        times = np.array([r[0] for r in self.recent])
        dt = time_s - times[-1]
        if not 0 < dt <= HIDDEN_MAX_S:
            return None
        t_m = np.stack([r[2] for r in self.recent])
        slope, offset = np.polyfit(times - times[-1], t_m, 1)
        box = self.tracker.box_at(self.recent[-1][1], offset + slope * dt)
        return None if box is None else np.array([box[0], box[1], box[2] * (1.0 + dt)])

    @property
    def colour(self) -> np.ndarray | None:
        """The mean :func:`colour_thumbnail` of its accepted frames, None without any."""
        return self.colour_sum / self.colour_frames if self.colour_frames else None


@dataclass
class _Pending:
    """A track's part of the batch in progress: its batch starts at the batch's frame ``offset``."""

    track: FaceTrack
    offset: int
    batch: TrackBatch | None = None
    seed_box: np.ndarray | None = None


def _covered_fraction(box: np.ndarray, cover: np.ndarray) -> float:
    """Fraction of square ``box`` (cx, cy, side) inside square ``cover``."""
    lo = np.maximum(box[:2] - box[2] / 2, cover[:2] - cover[2] / 2)
    hi = np.minimum(box[:2] + box[2] / 2, cover[:2] + cover[2] / 2)
    return float(np.prod(np.clip(hi - lo, 0.0, None))) / float(box[2] ** 2)


def _covers(box: np.ndarray, claim: np.ndarray) -> bool:
    """A detected ``box`` is the face of ``claim`` (both (cx, cy, side)): overlapping by ``MIN_IOU`` or
    centred inside it (the rule :func:`tracker.acquisition.detect_face` uses near a tracked box)."""
    return box_iou(box, claim) >= MIN_IOU or bool(np.all(np.abs(box[:2] - claim[:2]) < claim[2] / 2))


class MultiFaceTracker:
    """Causal tracking of every face of a clip; see the module docstring.

    Args:
        predictor: a loaded PerspNet.
        intr: the camera.
        face_model: the mesh topology.
        online: settings of each face's :class:`OnlineTracker`.
        config: see :class:`FacesConfig`.
        timer: stage timings ("detect", "network", "identity", "pnp") of all faces together.
    """

    def __init__(self, predictor: PerspNetPredictor, intr: Intrinsics, face_model: FaceModel,
                 online: OnlineConfig = OnlineConfig(), config: FacesConfig = FacesConfig(),
                 timer: StageTimer | None = None) -> None:
        self.predictor, self.intr, self.face_model = predictor, intr, face_model
        self.online, self.config = online, config
        self.timer = timer or StageTimer()
        self.tracks: list[FaceTrack] = []
        self.search: FaceSearch | None = None  # created at the first search
        self.detector_calls = 0
        self.max_faces_seen = 0
        self.duplicates = 0  # measurements given to the other of two tracks that measured one face
        self.resumed = 0  # lost tracks taken up again where their motion led (a face that was hidden)
        # frame index -> (smallest face side searched for, (box, points) of each face found)
        self._faces: dict[int, tuple[float, list[tuple[np.ndarray, np.ndarray]]]] = {}
        self._claims: dict[int, dict[int, np.ndarray]] = {}  # frame index -> track number -> claimed box
        self._searched_s = -math.inf

    def close(self) -> None:
        if self.search is not None:
            self.search.close()
            self.search = None
        for track in self.tracks:
            track.tracker.close()

    def __enter__(self) -> MultiFaceTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def alive(self) -> list[FaceTrack]:
        return [t for t in self.tracks if t.alive]

    def _face_search(self) -> FaceSearch:
        if self.search is None:
            self.search = FaceSearch()
        return self.search

    def _detected(self, frame: Frame, min_side_px: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(box (3,), points_px (468, 2))`` of every face of at least ``min_side_px`` (0: as small as the
        search goes) found on ``frame``, largest first; the search runs once per frame however many tracks
        ask (again only when a smaller face is asked for than was searched)."""
        cached = self._faces.get(frame.index)
        if cached is None or cached[0] > min_side_px:
            with self.timer("detect"):
                faces = self._face_search().find(frame.image_rgb, min_side_px or None)
            self.detector_calls += 1
            self.max_faces_seen = max(self.max_faces_seen, len(faces))
            cached = self._faces[frame.index] = (min_side_px, [(f.box, f.landmarks.points_px) for f in faces])
        return cached[1]

    def _detector_for(self, number: int):
        """The detector of track ``number``'s :class:`OnlineTracker`: among the faces found on the frame,
        the one that overlaps ``near`` (its own box, or else its claimed box) most, unless another track's
        claimed box overlaps that face more; a track that never had a pose and has no box takes the
        largest face no track claims. ``Detection.largest`` stays None: a tracked face never jumps onto
        another face here."""
        def detect(frame: Frame, near: np.ndarray | None) -> Detection:
            claims = self._claims.get(frame.index, {})
            others = [box for k, box in claims.items() if k != number]
            own = near if near is not None else claims.get(number)
            if own is not None:  # first the landmarker at the box alone (no tile search), as detect_face does
                with self.timer("detect"):
                    at_box = self._face_search().landmarks_at(frame.image_rgb, own)
                self.detector_calls += 1
                if at_box is not None:
                    box = box_from_points(at_box.points_px)
                    iou = box_iou(box, own)
                    if _covers(box, own) and not any(box_iou(box, other) > iou for other in others):
                        return Detection(box, 1, None, at_box.points_px)
            faces = self._detected(frame, 0.0 if own is None else NEAR_MIN_SIDE * float(own[2]))
            candidates = []
            for j, (box, _) in enumerate(faces):
                if own is not None:
                    iou = box_iou(box, own)
                    if _covers(box, own) and not any(box_iou(box, other) > iou for other in others):
                        candidates.append((iou, j))
                elif not self.tracks[number].tracker.has_shape and not any(_covers(box, o) for o in others):
                    candidates.append((box[2], j))
            if not candidates and near is None and own is not None:
                # the check after a measurement that missed its face: a cut moved the face away, so follow
                # it to a face as large that no other track claims (as one tracked face does)
                candidates = [(box[2], j) for j, (box, _) in enumerate(faces) if box[2] >= JUMP_MIN_SIZE * own[2]
                              and not any(_covers(box, o) for o in others)]
            if not candidates:
                return Detection(None, len(faces))
            box, points = faces[max(candidates)[1]]
            return Detection(box, len(faces), None, points)
        return detect

    def _claim_boxes(self, frames: list[Frame]) -> None:
        """Step 2: each live track's predicted box per frame of the batch."""
        self._claims = {frame.index: {} for frame in frames}
        w, h, min_px = self.intr.width, self.intr.height, self.online.min_face_px
        for track in self.alive:
            for frame in frames:
                box = track.tracker.predicted_box(frame.timestamp_s)
                if box_in_view(box, w, h, min_px):
                    self._claims[frame.index][track.number] = box

    def _new_track(self, frame: Frame) -> FaceTrack:
        number = len(self.tracks)
        tracker = OnlineTracker(self.predictor, self.intr, self.face_model, self.online, self.timer,
                                detector=self._detector_for(number))
        track = FaceTrack(number, tracker, frame.index, frame.index)
        self.tracks.append(track)
        return track

    def _search(self, frames: list[Frame], pending: list[_Pending]) -> None:
        """Step 3: new tracks for faces that no track claims."""
        limit = self.config.max_faces or MAX_TRACKED_FACES
        searching = frames if not pending else frames[:1]
        if pending and frames[0].timestamp_s - self._searched_s < self.config.search_s:
            return
        for k, frame in enumerate(searching):
            if len(pending) >= limit:
                return
            self._searched_s = frame.timestamp_s
            claims = self._claims[frame.index]
            w, h, min_px = self.intr.width, self.intr.height, self.online.min_face_px
            free = [box for box, _ in self._detected(frame)
                    if box_in_view(box, w, h, min_px) and not any(_covers(box, c) for c in claims.values())]
            hidden = [(t, t.coasted_box(frame.timestamp_s)) for t in self.tracks if not t.alive]
            for box in sorted(free, key=lambda b: -b[2])[:limit - len(pending)]:
                back = [(box_iou(box, c), t.number) for t, c in hidden if c is not None and _covers(box, c)
                        and not t.alive]
                if back:  # the face of a track lost a moment ago, where its motion would have taken it
                    track = self.tracks[max(back)[1]]
                    track.alive, track.hidden = True, False
                    self.resumed += 1
                else:
                    track = self._new_track(frame)
                pending.append(_Pending(track, k, seed_box=box))
                for later in frames[k:]:
                    self._claims[later.index][track.number] = box
            if pending:
                return

    def process(self, frames: list[Frame]) -> list[tuple[int, FrameResult]]:
        """Track the next ``frames`` (stream order): ``(track number, result)`` for each frame of each track
        alive in it, frame by frame."""
        self._faces = {}
        for track in self.alive:
            if track.tracker.kf.state is None:
                track.alive = False  # step 1: lost (step 3 may take it up again)
        self._claim_boxes(frames)
        pending = [_Pending(track, 0) for track in self.alive]
        self._search(frames, pending)
        for p in pending:
            p.batch = p.track.tracker.begin(frames[p.offset:], p.seed_box)
        self._network([p for p in pending])
        out: list[tuple[int, FrameResult]] = []
        for i in range(len(frames)):
            here = [p for p in pending if p.offset <= i]
            measured = [p.track.tracker.measure(p.batch, i - p.offset) for p in here]
            vetoed = self._duplicates(here, measured, i)
            for k, (p, fm) in enumerate(zip(here, measured)):
                result = p.track.tracker.commit(p.batch, i - p.offset, fm, veto=k in vetoed)
                if result.measurement is not None and result.measurement.accepted:
                    p.track.colour_sum += colour_thumbnail(frames[i].image_rgb, result.box)
                    p.track.colour_frames += 1
                    pnp = result.measurement.pnp
                    p.track.recent.append((result.filter_time_s, pnp.R_cam_face, pnp.t_cam_face))
                p.track.last_frame = frames[i].index
                out.append((p.track.number, result))
        return out

    def _network(self, pending: list[_Pending]) -> None:
        """Step 5: one PerspNet run on the crops of every track of the batch."""
        items = [(p, i) for p in pending for i in p.track.tracker.boxed(p.batch)]
        if not items:
            return
        with self.timer("network"):
            net = self.predictor.network([p.batch.frames[i].image_rgb for p, i in items],
                                         [p.batch.boxes[i] for p, i in items])
        for p in pending:
            rows = [j for j, (q, _) in enumerate(items) if q is p]
            p.batch.net = {key: value[rows] for key, value in net.items()}
            p.batch.slot = {i: j for j, (_, i) in enumerate(items[r] for r in rows)}

    def _duplicates(self, here: list[_Pending], measured: list[FrameMeasurement], i: int) -> set[int]:
        """Step 6: positions in ``here`` whose accepted measurement is another track's face."""
        posed = {}
        for k, (p, fm) in enumerate(zip(here, measured)):
            m = fm.measurement
            if m is not None and m.accepted:
                box = box_from_pose(m.pnp.R_cam_face, m.pnp.t_cam_face, fm.shape.verts_face_m, self.intr)
                if box is not None:
                    posed[k] = box
        vetoed: set[int] = set()
        keys = sorted(posed)
        for a_pos, a in enumerate(keys):
            for b in keys[a_pos + 1:]:
                if a in vetoed or b in vetoed or box_iou(posed[a], posed[b]) < DUPLICATE_IOU:
                    continue
                vetoed.add(max((self._surprise(here[k], measured[k], i), here[k].track.number, k)
                               for k in (a, b))[2])
                self.duplicates += 1
        return vetoed | self._hidden(here, i)

    def _hidden(self, here: list[_Pending], i: int) -> set[int]:
        """Positions in ``here`` of tracks whose predicted face lies mostly (``HIDDEN_COVER``) behind a nearer
        track's predicted face on frame ``i``: their crop shows the other face, so they coast."""
        predicted = {}
        for k, p in enumerate(here):
            pose = p.track.tracker.predicted_pose(p.batch.times[i - p.offset])
            box = None if pose is None else p.track.tracker.box_at(*pose)
            if box is not None:
                predicted[k] = (float(pose[1][2]), box)
        hidden = set()
        for k, (depth, box) in predicted.items():
            for j, (other_depth, other) in predicted.items():
                if j != k and other_depth < depth and _covered_fraction(box, other) >= HIDDEN_COVER:
                    hidden.add(k)
        for k, p in enumerate(here):
            if k in hidden:
                p.track.hidden = True
            elif p.track.hidden:
                hidden.add(k)  # once hidden, it coasts until its filter drops it and step 3 takes it up again
        return hidden

    def _surprise(self, p: _Pending, fm: FrameMeasurement, i: int) -> float:
        """How far a measured translation is from the track's predicted one, relative to the predicted
        depth (inf without a prediction: a track with a history keeps the face against a new one)."""
        pred = p.track.tracker.predicted_pose(p.batch.times[i - p.offset])
        if pred is None:
            return math.inf
        t_pred = pred[1]
        return float(np.linalg.norm(fm.measurement.pnp.t_cam_face - t_pred) / max(abs(t_pred[2]), 1e-6))


def colour_thumbnail(image_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``(COLOUR_PX, COLOUR_PX, 3)`` float RGB thumbnail of the middle half of ``box`` (cx, cy, side; the face
    without the background around it) in ``image_rgb (H, W, 3) uint8``, area-averaged, each pixel divided by
    the thumbnail's mean grey level (so a brighter or darker frame of one face looks alike)."""
    h, w = image_rgb.shape[:2]
    cx, cy, side = box
    x0, x1 = (int(np.clip(round(c), 0, w)) for c in (cx - side / 4, cx + side / 4))
    y0, y1 = (int(np.clip(round(c), 0, h)) for c in (cy - side / 4, cy + side / 4))
    if x1 <= x0 or y1 <= y0:
        return np.ones((COLOUR_PX, COLOUR_PX, 3))
    small = cv2.resize(image_rgb[y0:y1, x0:x1], (COLOUR_PX, COLOUR_PX), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float64)
    return small / max(float(small.mean()), 1.0)


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two :func:`colour_thumbnail` s (or their means): 0 alike; about 0.1 between frames of
    one face, more between faces of different colouring."""
    return float(np.sqrt(np.mean((a - b) ** 2)))


def shape_distance_mm(a_face_m: np.ndarray, b_face_m: np.ndarray) -> float:
    """RMS vertex distance, mm, between ``a (n, 3)`` similarity-aligned onto ``b (n, 3)`` (metres): how
    different two identity shapes are, whatever their placement, orientation and size."""
    s, R, t = fit_similarity(a_face_m, b_face_m)
    aligned = s * np.asarray(a_face_m, np.float64) @ R.T + t
    return float(np.sqrt(((aligned - b_face_m) ** 2).sum(axis=1).mean()) * MM_PER_M)


@dataclass
class _Person:
    last_frame: int = -1
    shape: np.ndarray | None = None
    colour: np.ndarray | None = None


def link_tracks(spans: list[tuple[int, int, int]], shapes: dict[int, np.ndarray | None],
                colours: dict[int, np.ndarray | None], reid_max_mm: float, reid_max_colour: float) -> dict[int, int]:
    """Face ids of tracks (module docstring).

    Args:
        spans: ``(track number, first frame, last frame)`` of the tracks to name (tentative tracks left out).
        shapes: track number -> its identity shape ``(n, 3)`` metres (None: never confident).
        colours: track number -> its mean :func:`colour_thumbnail` (None: no accepted frame).
        reid_max_mm, reid_max_colour: see :class:`FacesConfig`.

    Returns:
        track number -> face id (0, 1, ... in order of first frame).
    """
    persons: list[_Person] = []
    ids: dict[int, int] = {}
    for number, first, last in sorted(spans, key=lambda s: (s[1], s[0])):
        shape, colour = shapes.get(number), colours.get(number)
        best, best_score = None, 2.0
        for k, person in enumerate(persons):
            if person.last_frame >= first or shape is None or person.shape is None:
                continue
            mm = shape_distance_mm(shape, person.shape)
            apart = 0.0 if colour is None or person.colour is None else colour_distance(colour, person.colour)
            score = mm / max(reid_max_mm, 1e-9) + apart / max(reid_max_colour, 1e-9)
            if mm <= reid_max_mm and apart <= reid_max_colour and score < best_score:
                best, best_score = k, score
        if best is None:
            persons.append(_Person(shape=shape, colour=colour))
            best = len(persons) - 1
        persons[best].last_frame = max(persons[best].last_frame, last)
        ids[number] = best
    return ids
