"""Identity metrics of a multi-face track against ground truth: matches per frame, id switches and IDF1.

Each frame's tracked faces (id, box) are matched one to one with its true faces (id, box) by box overlap
(Hungarian on IoU, pairs under ``min_iou`` never match). Then, as in the CLEAR-MOT and IDF1 papers
(Bernardin and Stiefelhagen 2008; Ristani et al. 2016):

* an id switch is a true face matched to a tracked id other than the one it was last matched to;
* IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN) under the one-to-one mapping of tracked ids to true ids that
  maximises IDTP, the face-frames where a tracked id sits on its mapped true face (IDFP: tracked
  face-frames off their mapped face, IDFN: true face-frames missed by their mapped id).

Boxes are ``(cx, cy, side)`` pixels (:mod:`tracker.acquisition`).
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from perspnet.conventions import matrix_from_quat_wxyz
from perspnet.intrinsics import load_intrinsics
from tracker.acquisition import box_from_pose, box_iou

__all__ = ["IdMetrics", "id_metrics", "true_boxes", "tracked_boxes", "MIN_IOU_MATCH"]

MIN_IOU_MATCH = 0.3  # a tracked box on a true face overlaps it at least this much (a box of the neighbour less)


@dataclass(frozen=True)
class IdMetrics:
    """Identity metrics of a clip (module docstring).

    Attributes:
        matches: face-frames where a tracked face was matched to a true one.
        true_faces: true face-frames; tracked_faces: tracked face-frames.
        id_switches: see the module docstring.
        idf1: in [0, 1] (nan without faces).
        mapping: tracked id -> the true id it is mapped to (IDF1's mapping).
        per_true_id: true id -> tracked ids it was matched to, with their frame counts.
    """

    matches: int
    true_faces: int
    tracked_faces: int
    id_switches: int
    idf1: float
    mapping: dict[int, int]
    per_true_id: dict[int, dict[int, int]]


def _match(tracked: list[tuple[int, np.ndarray]], true: list[tuple[int, np.ndarray]], min_iou: float
           ) -> list[tuple[int, int]]:
    """(tracked id, true id) pairs of one frame."""
    if not tracked or not true:
        return []
    iou = np.array([[box_iou(a, b) for _, b in true] for _, a in tracked])
    rows, cols = linear_sum_assignment(-iou)
    return [(tracked[r][0], true[c][0]) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]


def id_metrics(tracked: dict[int, list[tuple[int, np.ndarray]]], true: dict[int, list[tuple[int, np.ndarray]]],
               min_iou: float = MIN_IOU_MATCH) -> IdMetrics:
    """Metrics of ``tracked`` (frame -> [(id, box)]) against ``true`` (the same for the true faces)."""
    last: dict[int, int] = {}
    switches = 0
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    n_tracked = sum(len(v) for v in tracked.values())
    n_true = sum(len(v) for v in true.values())
    n_matches = 0
    for frame in sorted(set(tracked) | set(true)):
        for tid, gid in _match(tracked.get(frame, []), true.get(frame, []), min_iou):
            n_matches += 1
            pairs[(tid, gid)] += 1
            switches += gid in last and last[gid] != tid
            last[gid] = tid
    tids = sorted({t for t, _ in pairs})
    gids = sorted({g for _, g in pairs})
    mapping: dict[int, int] = {}
    idtp = 0
    if tids and gids:
        counts = np.array([[pairs.get((t, g), 0) for g in gids] for t in tids])
        rows, cols = linear_sum_assignment(-counts)
        mapping = {tids[r]: gids[c] for r, c in zip(rows, cols) if counts[r, c] > 0}
        idtp = int(sum(counts[r, c] for r, c in zip(rows, cols)))
    idf1 = 2 * idtp / (n_tracked + n_true) if n_tracked + n_true else float("nan")
    per_true: dict[int, dict[int, int]] = defaultdict(dict)
    for (t, g), c in pairs.items():
        per_true[g][t] = c
    return IdMetrics(n_matches, n_true, n_tracked, int(switches), float(idf1), mapping, dict(per_true))


def true_boxes(clip: Path) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Ground-truth boxes of a rendered clip folder (``perspnet-synth clip``): frame -> ``[(true face id, box
    (3,) (cx, cy, side) pixels of its true mesh projected with K)]``, from ``gt.csv``, ``K.json`` and
    ``identity_<id>.json``."""
    intr = load_intrinsics(clip / "K.json")
    gt = pd.read_csv(clip / "gt.csv")
    verts = {f: np.array(json.loads((clip / f"identity_{f}.json").read_text())["verts_face_m"])
             for f in gt.face_id.unique()}
    out: dict[int, list] = {}
    for r in gt.itertuples():
        R = matrix_from_quat_wxyz(np.array([[r.qw, r.qx, r.qy, r.qz]]))[0]
        out.setdefault(r.frame, []).append((r.face_id, box_from_pose(R, np.array([r.tx, r.ty, r.tz]),
                                                                     verts[r.face_id], intr)))
    return out


def tracked_boxes(poses_csv: Path) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Tracked boxes of a ``track-video`` ``poses.csv``: frame -> ``[(face_id, box (3,) (cx, cy, side)
    pixels)]`` of its rows with a pose."""
    df = pd.read_csv(poses_csv)
    df = df[df.success == 1]
    out: dict[int, list] = {}
    for r in df.itertuples():
        out.setdefault(r.frame, []).append((int(r.face_id), np.array([r.box_x + r.box_w / 2, r.box_y + r.box_h / 2,
                                                                      r.box_w])))
    return out
