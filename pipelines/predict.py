"""Single images, the paper's setting: every face's metric 6DoF pose and 3D shape from a photo and its camera K.

Per image: the faces are found (:class:`perspnet.face_search.FaceSearch`: all faces, small ones included,
largest first, numbered ``face_id`` 0, 1, ...), each is cropped around its landmark box and run through
PerspNet, and PnP with K (and the lens distortion) gives its pose (:class:`perspnet.inference.PerspNetPredictor`).
Without K.json the default field of view is assumed, with a warning, as ``track-video`` does
(:func:`pipelines.track_video.camera_for_video`); a K.json calibrated at another size of the same aspect ratio
is scaled to each image.

Outputs in ``out_dir``, per image ``<stem>`` (input file name without its extension):

* ``<stem>.csv``: ``poses.csv``'s columns (docs/outputs.md), one row per face in ``face_id`` order, ``frame``
  0 and ``timestamp_s`` empty; the pose columns and their ``raw_`` twins hold the same PnP pose (nothing to
  filter in one image); ``shape_dev_mm`` empty. An image without a face has one row with an empty ``face_id``
  and ``success`` 0.
* ``<stem>_overlay.png``: the image with each face's mesh, axes, box and id drawn (:func:`pipelines.overlay.draw_frame`).
* ``<stem>_face<id>.obj``: each posed face's predicted shape, canonical face frame, metres
  (``X_cam = R_cam_face @ X + t_cam_face`` with the CSV's pose).

Every input is checked (readable image, usable K for its size, distinct stems) before any work; the outputs
are written into a staged folder published at the end (:func:`pipelines.track_outputs.staged_folder`), so
a failed run leaves nothing half-written.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from baseio.atomic import OutputError
from perspnet.intrinsics import Intrinsics
from perspnet.validate import check_choice, check_device
from pipelines.overlay import draw_frame
from pipelines.track_outputs import PoseTrack, check_output_folder, staged_folder, write_obj, write_poses_csv

__all__ = ["IMAGE_SUFFIXES", "PredictConfig", "ImageResult", "PredictError", "find_images", "predict_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class PredictError(ValueError):
    """Unusable input (one line naming the file): missing, not an image, no images in a folder, two inputs
    with the same name."""


@dataclass(frozen=True)
class PredictConfig:
    """What :func:`predict_images` does.

    Attributes:
        inputs: image files and folders (a folder contributes its images, :data:`IMAGE_SUFFIXES`, not its
            subfolders).
        out_dir: output folder.
        intrinsics: K.json, or None for the default field of view.
        checkpoint: PerspNet checkpoint; None for the shipped one.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        tta: test-time augmentation (:data:`perspnet.inference.TTA_VIEWS`).
    """

    inputs: tuple[Path, ...]
    out_dir: Path
    intrinsics: Path | None = None
    checkpoint: Path | None = None
    device: str = "auto"
    tta: str = "none"

    def __post_init__(self) -> None:
        from perspnet.inference import TTA_VIEWS

        object.__setattr__(self, "inputs", tuple(Path(p) for p in self.inputs))
        for name in ("out_dir", "intrinsics", "checkpoint"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if not self.inputs:
            raise ValueError("inputs must name at least one image or folder, got none")
        check_device("device", self.device)
        check_choice("tta", self.tta, sorted(TTA_VIEWS))


@dataclass
class ImageResult:
    """One image's outcome: its path, the camera used, the faces found and how many got a pose, the files
    written (final paths)."""

    image: Path
    camera: Intrinsics
    faces: int
    posed: int
    files: list[Path] = field(default_factory=list)


def find_images(inputs: tuple[Path, ...]) -> list[Path]:
    """The image files named by ``inputs`` (files as given, folders' images sorted by name).

    Raises:
        PredictError: a path is missing, a folder holds no image, or two images share a stem (their outputs
            would collide).
    """
    images: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise PredictError(f"{path}: no images in this folder ({' '.join(IMAGE_SUFFIXES)})")
            images += found
        elif path.is_file():
            images.append(path)
        else:
            raise PredictError(f"{path}: no such file or folder")
    stems: dict[str, Path] = {}
    for image in images:
        if image.stem in stems:
            raise PredictError(f"{image}: same name as {stems[image.stem]}; their outputs would collide")
        stems[image.stem] = image
    return images


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the header, upright (EXIF orientation applied, as OpenCV decodes it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            width, height = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientations that turn by 90 degrees
                width, height = height, width
    except (UnidentifiedImageError, OSError) as err:
        raise PredictError(f"{path}: not a readable image ({type(err).__name__})") from None
    return width, height


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR at the IO edge, EXIF orientation applied
    if bgr is None:
        raise PredictError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _face_rows(estimates: list, boxes: list[np.ndarray]) -> list[PoseTrack]:
    """One single-row :class:`PoseTrack` per face (filtered = raw pose)."""
    rows = []
    for face_id, (est, box) in enumerate(zip(estimates, boxes)):
        ok = bool(est.pnp.success)
        R = est.pnp.R_cam_face[None] if ok else np.full((1, 3, 3), np.nan)
        t = est.pnp.t_cam_face[None] if ok else np.full((1, 3), np.nan)
        rows.append(PoseTrack(np.zeros(1, np.int64), np.full(1, np.nan), np.array([ok]),
                              np.array([est.pnp.confidence if ok else 0.0]),
                              np.array([est.pnp.n_inliers if ok else np.nan], float),
                              np.array([est.pnp.reproj_err_px if ok else np.nan]), R, t, R, t,
                              np.asarray(box, float)[None], np.full(1, np.nan), face_id))
    return rows


def predict_images(config: PredictConfig, notify: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
                   ) -> list[ImageResult]:
    """Find, predict and write every face of every image (module docstring); ``notify`` gets each warning
    and each image's "no face" line.

    Raises:
        PredictError, IntrinsicsError, CheckpointError, FaceModelNotFound: unusable input; nothing written.
        OutputError: an output could not be written; nothing published.
    """
    from perspnet.face_search import FaceSearch
    from perspnet.inference import PerspNetPredictor
    from pipelines.track_video import camera_for_video

    images = find_images(config.inputs)
    cameras: list[Intrinsics] = []
    notes: list[str] = []  # shown once every input has passed
    for image in images:  # every input checked before any work
        intr, image_notes = camera_for_video(config.intrinsics, *_image_size(image))
        cameras.append(intr)
        for note in image_notes:
            text = note.replace("the video is", f"{image.name} is")
            if config.intrinsics is not None or not notes:  # the default-FOV warning once
                notes.append(text)
    check_output_folder(config.out_dir)
    for note in notes:
        notify(note)
    predictor = PerspNetPredictor(config.checkpoint, config.device, tta=config.tta)
    triangles = predictor.topology.triangles
    results: list[ImageResult] = []
    with staged_folder(config.out_dir) as stage, FaceSearch() as search:
        for image, intr in zip(images, cameras):
            rgb = _read_rgb(image)
            if rgb.shape[:2] != (intr.height, intr.width):
                raise PredictError(f"{image}: decoded as {rgb.shape[1]}x{rgb.shape[0]}, its header says "
                                   f"{intr.width}x{intr.height}")
            boxes = [face.box for face in search.find(rgb)]
            dist = np.asarray(intr.dist) if intr.dist is not None else None
            estimates = predictor.predict([rgb] * len(boxes), boxes, [intr.K] * len(boxes), dist=dist) if boxes else []
            rows = _face_rows(estimates, boxes) or [PoseTrack.empty(np.zeros(1, np.int64), np.full(1, np.nan))]
            names = [f"{image.stem}.csv", f"{image.stem}_overlay.png"]
            write_poses_csv(stage / names[0], rows)
            overlay = rgb
            for face_id, (est, box) in enumerate(zip(estimates, boxes)):
                ok = bool(est.pnp.success)
                R, t = est.pnp.R_cam_face, est.pnp.t_cam_face
                verts_cam = est.verts_face_m @ R.T + t if ok else None
                overlay = draw_frame(overlay, intr, triangles, verts_cam, R if ok else None, t if ok else None, box,
                                     "", str(face_id))
                if ok:
                    names.append(f"{image.stem}_face{face_id}.obj")
                    write_obj(stage / names[-1], est.verts_face_m, triangles,
                              f"perspnet-predict {image.name} face {face_id}: canonical face frame, metres")
            if not cv2.imwrite(str(stage / names[1]), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)):
                raise OutputError(f"cannot write {config.out_dir / names[1]}")
            posed = sum(bool(e.pnp.success) for e in estimates)
            if not boxes:
                notify(f"{image}: no face found")
            elif not posed:
                notify(f"{image}: {len(boxes)} face(s) found, none with a pose (PnP failed)")
            results.append(ImageResult(image, intr, len(boxes), posed, [config.out_dir / n for n in names]))
    return results
