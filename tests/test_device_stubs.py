"""The PyAV stand-in that the GPU machine's data generation uses (scripts/device_stubs/av) decodes the
data engine's background video exactly as PyAV does."""
import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest

from perspnet.assets import pyfeat_file

STUB = Path(__file__).resolve().parents[1] / "scripts" / "device_stubs" / "av" / "__init__.py"


def _stub():
    spec = importlib.util.spec_from_file_location("av_stub", STUB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stub_frames_equal_pyav_frames():
    path = pyfeat_file("no_face.mp4")
    with av.open(str(path)) as container:
        expected = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with _stub().open(path) as container:
        got = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(got) == len(expected) > 10
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_stub_refuses_what_it_cannot_do(tmp_path):
    stub = _stub()
    with pytest.raises(OSError, match="cannot open"):
        stub.open(tmp_path / "missing.mp4")
    with stub.open(pyfeat_file("no_face.mp4")) as container:
        frame = next(container.decode(video=0))
        with pytest.raises(ValueError, match="rgb24"):
            frame.to_ndarray(format="gray")
