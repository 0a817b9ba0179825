"""Shared fixtures: the real face model, the face bank (built once into the cache), generators, and a tiny
PerspNet checkpoint trained on a few synthetic samples (``TINY`` config)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from perspnet.network.config import lite

TINY = replace(lite(), input_size=64, uv_size=32, n_points=64)


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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, train_generator):
    from perspnet.synth.dataset_writer import write_samples

    root = tmp_path_factory.mktemp("tiny")
    write_samples(root, 8, seed=21, split="train", generator=train_generator)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data, tmp_path_factory):
    """A checkpoint of the ``TINY`` model after 2 training steps: real weights, meaningless predictions."""
    from perspnet.train import TrainConfig, train

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("perspnet.network.config.lite", lambda: TINY)
        return train(TrainConfig(data=tiny_data, out=tmp_path_factory.mktemp("r"), iterations=2, batch_size=2,
                                 workers=0))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A random proper rotation (uniform on SO(3))."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
