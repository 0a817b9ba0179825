"""Shared fixtures: the real face model, the face bank (built once into the cache) and generators."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def face_model():
    from perspnet.face_model import load_face_model

    return load_face_model()


@pytest.fixture(scope="session")
def bank():
    from perspnet.synth.bank import default_bank

    return default_bank()


@pytest.fixture(scope="session")
def train_generator(bank, face_model):
    from perspnet.synth.sampler import SampleGenerator

    return SampleGenerator(bank, "train", face_model=face_model)


@pytest.fixture(scope="session")
def test_generator(bank, face_model):
    from perspnet.synth.sampler import SampleGenerator

    return SampleGenerator(bank, "test", face_model=face_model)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A random proper rotation (uniform on SO(3))."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
