"""baseio.video_io: write clips with VideoWriter (or raw PyAV where metadata is needed), read them back."""
from __future__ import annotations

import re

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from baseio.atomic import OutputError
from baseio.video_io import (
    WRITE_TIME_BASE,
    DecodeReport,
    Frame,
    VideoError,
    VideoWriter,
    iter_frames,
    probe_video,
)

TICK = float(WRITE_TIME_BASE)  # [s]
W, H = 64, 48


def gradient(n: int, width: int = W, height: int = H) -> np.ndarray:
    """Frame n of a moving gradient, ``(height, width, 3) uint8`` RGB with distinct channels."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    r = (4 * x + 8 * n) % 256
    g = np.broadcast_to(4 * y, (height, width))
    b = np.full((height, width), 60)
    return np.stack(np.broadcast_arrays(r, g, b), axis=-1).astype(np.uint8)


def marked(width: int = W, height: int = H) -> np.ndarray:
    """Dark frame with a bright block at the stored top-left corner (12 rows x 16 columns)."""
    image = np.full((height, width, 3), 20, np.uint8)
    image[:12, :16] = 235
    return image


def read_all(path: Path) -> list[Frame]:
    return list(iter_frames(path))


def write_clip(path: Path, n: int = 10, fps: Fraction = Fraction(30)) -> list[np.ndarray]:
    images = [gradient(i) for i in range(n)]
    with VideoWriter(path, W, H, fps) as writer:
        for image in images:
            writer.write(image)
    return images


def write_raw(path: Path, images: list[np.ndarray], *, display_matrix: list[int] | None = None,
              tags: dict[str, str] | None = None, pix_fmt: str = "yuv420p",
              options: dict[str, str] | None = None, fmt: str | None = None,
              codec: str = "libx264") -> None:
    """Write with PyAV directly, for what VideoWriter deliberately does not do (metadata, formats)."""
    height, width = images[0].shape[:2]
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if display_matrix is not None:
            stream.set_display_matrix(display_matrix)
        stream.metadata.update(tags or {})
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


class TestWriteRead:
    @pytest.mark.parametrize("fps", [Fraction(30), Fraction(30000, 1001)])
    def test_round_trip(self, tmp_path: Path, fps: Fraction) -> None:
        path = tmp_path / "clip.mp4"
        images = write_clip(path, n=10, fps=fps)
        info = probe_video(path)
        assert (info.width, info.height, info.rotation_deg) == (W, H, 0)
        assert info.n_frames_estimate == 10
        assert info.avg_fps == pytest.approx(float(fps))
        assert info.duration_s == pytest.approx(10 / float(fps), abs=1e-3)  # edit lists count ms
        assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")

        frames = read_all(path)
        assert [f.index for f in frames] == list(range(10))
        for n, (frame, image) in enumerate(zip(frames, images)):
            assert frame.image_rgb.shape == (H, W, 3) and frame.image_rgb.dtype == np.uint8
            assert frame.timestamp_s == pytest.approx(n / float(fps), abs=TICK)
            diff = np.abs(frame.image_rgb.astype(int) - image.astype(int))
            assert diff.mean() < 4.0, f"frame {n} differs by {diff.mean():.1f} on average"
        assert all(b.timestamp_s > a.timestamp_s for a, b in zip(frames, frames[1:]))

    def test_channels_stay_rgb(self, tmp_path: Path) -> None:
        red = np.zeros((H, W, 3), np.uint8)
        red[..., 0] = 220
        with VideoWriter(tmp_path / "red.mp4", W, H) as writer:
            writer.write(red)
        (frame,) = read_all(tmp_path / "red.mp4")
        r, g, b = frame.image_rgb.reshape(-1, 3).mean(axis=0)
        assert r > 180 and g < 40 and b < 40

    def test_variable_frame_rate_timestamps(self, tmp_path: Path) -> None:
        times = [0.0, 0.01, 0.05, 0.2, 0.21, 0.5, 0.5334, 1.25, 1.26, 2.0]
        path = tmp_path / "vfr.mp4"
        with VideoWriter(path, W, H, Fraction(30)) as writer:
            for n, t in enumerate(times):
                writer.write(gradient(n), timestamp_s=t)
        frames = read_all(path)
        assert len(frames) == len(times)
        np.testing.assert_allclose([f.timestamp_s for f in frames], times, rtol=0, atol=TICK)
        # and the pictures are the ones written at those times
        for n, frame in enumerate(frames):
            assert np.abs(frame.image_rgb.astype(int) - gradient(n).astype(int)).mean() < 4.0

    def test_odd_size_is_padded_right_and_bottom(self, tmp_path: Path) -> None:
        image = gradient(0, width=63, height=47)
        path = tmp_path / "odd.mp4"
        with VideoWriter(path, 63, 47) as writer:
            assert (writer.encoded_width, writer.encoded_height) == (64, 48)
            writer.write(image)
        (frame,) = read_all(path)
        assert frame.image_rgb.shape == (48, 64, 3)
        got = frame.image_rgb.astype(int)
        assert np.abs(got[:47, :63] - image).mean() < 4.0
        assert np.abs(got[:47, 63] - image[:, 62]).mean() < 6.0  # repeated last column
        assert np.abs(got[47, :63] - image[46]).mean() < 6.0  # repeated last row

    def test_mpeg4_encoder(self, tmp_path: Path) -> None:
        path = tmp_path / "m4.mp4"
        with VideoWriter(path, W, H, Fraction(25), codec="mpeg4") as writer:
            for n in range(5):
                writer.write(gradient(n))
        assert probe_video(path).codec == "mpeg4"
        frames = read_all(path)
        assert [round(f.timestamp_s / 0.04) for f in frames] == [0, 1, 2, 3, 4]
        assert np.abs(frames[2].image_rgb.astype(int) - gradient(2).astype(int)).mean() < 8.0

    def test_mov_container(self, tmp_path: Path) -> None:
        with VideoWriter(tmp_path / "clip.mov", W, H) as writer:
            writer.write(gradient(0))
        assert len(read_all(tmp_path / "clip.mov")) == 1


class TestWriterErrors:
    def test_exception_in_block_leaves_no_file(self, tmp_path: Path) -> None:
        with pytest.raises(RuntimeError, match="stop"):
            with VideoWriter(tmp_path / "clip.mp4", W, H) as writer:
                writer.write(gradient(0))
                raise RuntimeError("stop")
        assert list(tmp_path.iterdir()) == []

    def test_failure_keeps_existing_video(self, tmp_path: Path) -> None:
        path = tmp_path / "clip.mp4"
        write_clip(path, n=3)
        before = path.read_bytes()
        with pytest.raises(ValueError):
            with VideoWriter(path, W, H) as writer:
                writer.write(gradient(0))
                writer.write(np.zeros((H, W), np.uint8))  # wrong shape
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]

    def test_no_frames_is_output_error_and_no_file(self, tmp_path: Path) -> None:
        with pytest.raises(OutputError, match="no frames"):
            with VideoWriter(tmp_path / "clip.mp4", W, H):
                pass
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("bad", [np.zeros((H, W, 3), np.float32), np.zeros((W, H, 3), np.uint8),
                                     np.zeros((H, W, 4), np.uint8)])
    def test_wrong_frame_rejected(self, tmp_path: Path, bad: np.ndarray) -> None:
        with pytest.raises(ValueError, match=r"\(48, 64, 3\) uint8"):
            with VideoWriter(tmp_path / "clip.mp4", W, H) as writer:
                writer.write(bad)

    @pytest.mark.parametrize("times", [[0.0, 0.0], [0.1, 0.05], [0.0, 0.1 + TICK / 4, 0.1], [-1.0],
                                       [float("nan")]])
    def test_bad_timestamps_rejected(self, tmp_path: Path, times: list[float]) -> None:
        with pytest.raises(ValueError, match="timestamp"):
            with VideoWriter(tmp_path / "clip.mp4", W, H) as writer:
                for n, t in enumerate(times):
                    writer.write(gradient(n), timestamp_s=t)
        assert list(tmp_path.iterdir()) == []

    def test_bad_suffix(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match=".avi"):
            VideoWriter(tmp_path / "clip.avi", W, H)

    def test_missing_folder(self, tmp_path: Path) -> None:
        with pytest.raises(OutputError, match="does not exist"):
            with VideoWriter(tmp_path / "missing" / "clip.mp4", W, H):
                pass


# QuickTime/FFmpeg display matrices (16.16 fixed point, 2.30 for the last column), as phones write
# them: the stored picture is rotated clockwise by the given angle for display.
DISPLAY_MATRIX_CW = {
    90: [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30],
    180: [-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30],
    270: [0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30],
}


class TestRotation:
    @pytest.mark.parametrize("cw", [90, 180, 270])
    def test_display_matrix_makes_frames_upright(self, tmp_path: Path, cw: int) -> None:
        path = tmp_path / f"rot{cw}.mp4"
        write_raw(path, [marked()] * 3, display_matrix=DISPLAY_MATRIX_CW[cw])
        info = probe_video(path)
        assert info.rotation_deg == cw
        assert (info.width, info.height) == ((H, W) if cw in (90, 270) else (W, H))
        expected = np.rot90(marked(), k=-cw // 90)  # clockwise
        for frame in read_all(path):
            assert frame.image_rgb.shape == (info.height, info.width, 3)
            assert frame.image_rgb.flags.c_contiguous
            assert np.abs(frame.image_rgb.astype(int) - expected.astype(int)).mean() < 4.0

    def test_portrait_phone_block_lands_top_right(self, tmp_path: Path) -> None:
        """Rotating 90 degrees clockwise moves the stored top-left corner to the top-right."""
        path = tmp_path / "portrait.mp4"
        write_raw(path, [marked()], display_matrix=DISPLAY_MATRIX_CW[90])
        (frame,) = read_all(path)
        assert frame.image_rgb.shape == (W, H, 3)  # 64 rows, 48 columns
        assert frame.image_rgb[2:10, -10:-2].min() > 200  # block now at the top-right
        assert frame.image_rgb[2:10, 2:10].max() < 60

    def test_legacy_rotate_tag(self, tmp_path: Path) -> None:
        path = tmp_path / "tagged.mkv"
        write_raw(path, [marked()] * 2, tags={"rotate": "90"})
        info = probe_video(path)
        assert (info.rotation_deg, info.width, info.height) == (90, H, W)
        frame = read_all(path)[0]
        assert np.abs(frame.image_rgb.astype(int) - np.rot90(marked(), k=-1).astype(int)).mean() < 4.0

    def test_unrotated_file_has_zero(self, tmp_path: Path) -> None:
        write_raw(tmp_path / "plain.mp4", [marked()])
        assert probe_video(tmp_path / "plain.mp4").rotation_deg == 0


class TestReading:
    @pytest.mark.parametrize("codec,pix_fmt", [("libx264", "yuv444p"), ("libx264", "yuvj420p"),
                                               ("libx264", "yuv422p10le"), ("ffv1", "gray"),
                                               ("ffv1", "bgra"), ("ffv1", "gbrp16le")])
    def test_any_pixel_format_comes_out_rgb24(self, tmp_path: Path, codec: str, pix_fmt: str) -> None:
        path = tmp_path / f"{codec}-{pix_fmt}.mkv"
        image = gradient(3)
        if pix_fmt == "gray":
            image = np.repeat(image[..., 1:2], 3, axis=2)
        write_raw(path, [image], pix_fmt=pix_fmt, codec=codec)
        assert probe_video(path).pix_fmt == pix_fmt
        (frame,) = read_all(path)
        assert frame.image_rgb.shape == (H, W, 3) and frame.image_rgb.dtype == np.uint8
        assert np.abs(frame.image_rgb.astype(int) - image.astype(int)).mean() < 5.0

    def test_missing_timestamps_fall_back_to_nominal_rate(self, tmp_path: Path) -> None:
        """A raw H.264 elementary stream has no pts; timestamps step by 1 / rate (24 fps here)."""
        path = tmp_path / "raw.h264"
        write_raw(path, [gradient(n) for n in range(5)], fmt="h264")
        frames = read_all(path)
        np.testing.assert_allclose([f.timestamp_s for f in frames], np.arange(5) / 24, atol=1e-9)

    def test_lazy_and_closable(self, tmp_path: Path) -> None:
        write_clip(tmp_path / "clip.mp4", n=10)
        frames = iter_frames(tmp_path / "clip.mp4")
        assert next(frames).index == 0
        frames.close()

    def test_clean_file_report(self, tmp_path: Path) -> None:
        write_clip(tmp_path / "clip.mp4", n=4)
        report = DecodeReport()
        assert len(list(iter_frames(tmp_path / "clip.mp4", report))) == 4
        assert report.ok and report.n_frames == 4 and report.summary() == "decoded 4 frames"


def noisy_clip(path: Path, n: int = 30) -> None:
    """A clip of random frames (large packets, so a cut lands inside the picture data)."""
    rng = np.random.default_rng(0)
    with VideoWriter(path, 160, 120, Fraction(30)) as writer:
        for _ in range(n):
            writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))


class TestDamagedFiles:
    def test_truncated_file_yields_frames_then_reports(self, tmp_path: Path) -> None:
        full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
        noisy_clip(full)
        data = full.read_bytes()
        cut.write_bytes(data[: len(data) // 2])

        report = DecodeReport()
        frames = list(iter_frames(cut, report))
        assert 0 < len(frames) < 30
        assert report.n_frames == len(frames) and not report.ok and report.n_errors >= 1
        assert report.summary().startswith(f"decoded {len(frames)} frames, then: ")
        timestamps = [f.timestamp_s for f in frames]
        np.testing.assert_allclose(timestamps, np.arange(len(frames)) / 30, atol=TICK)

        got: list[Frame] = []
        with pytest.raises(VideoError) as info:
            for frame in iter_frames(cut):  # no report: the error is raised after the good frames
                got.append(frame)
        assert len(got) == len(frames)
        assert str(cut) in str(info.value) and f"decoded {len(frames)} frames, then:" in str(info.value)

    def test_file_cut_at_a_packet_boundary_is_reported(self, tmp_path: Path) -> None:
        """Cut where no packet is torn, the demuxer just stops early: the index's frame count tells."""
        full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
        noisy_clip(full)
        with av.open(str(full)) as container:
            ends = sorted(p.pos + p.size for p in container.demux(video=0) if p.pos is not None and p.size)
        cut.write_bytes(full.read_bytes()[: ends[11]])  # the first 12 packets in file order, whole
        report = DecodeReport()
        frames = list(iter_frames(cut, report))
        assert 0 < len(frames) <= 12 and not report.ok
        assert report.summary() == (f"decoded {len(frames)} frames, then: the file ends after {len(frames)} of "
                                    "the 30 frames its index lists (cut short?)")
        report = DecodeReport()
        assert len(list(iter_frames(full, report))) == 30 and report.ok

    @pytest.mark.parametrize("name,codec", [("clip.webm", "libvpx"), ("clip.mkv", "libx264"),
                                            ("clip.avi", "mpeg4"), ("clip.mov", "libx264")])
    def test_any_container_cut_at_a_packet_boundary_is_reported(self, tmp_path: Path, name: str,
                                                                codec: str) -> None:
        """Matroska and WebM have no frame count: the declared duration (kept in the header) tells."""
        rng = np.random.default_rng(1)
        full, cut = tmp_path / name, tmp_path / f"cut_{name}"
        write_raw(full, [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(24)], codec=codec,
                  options={"movflags": "+faststart"} if name.endswith(".mov") else None)
        report = DecodeReport()
        assert len(list(iter_frames(full, report))) == 24 and report.ok, report.summary()
        with av.open(str(full)) as container:
            ends = sorted(p.pos + p.size for p in container.demux(video=0) if p.pos is not None and p.size)
        cut.write_bytes(full.read_bytes()[: ends[9]])  # the first 10 packets in file order, whole
        report = DecodeReport()
        frames = list(iter_frames(cut, report))
        assert 0 < len(frames) <= 10 and not report.ok
        assert re.fullmatch(rf"decoded {len(frames)} frames, then: the file ends after {len(frames)} (of the 24 "
                            rf"frames its index lists|frames, at [\d.]+ s of the 1.000 s its container declares) "
                            r"\(cut short\?\)", report.summary()), report.summary()

    def test_truncated_mp4_without_index_is_video_error(self, tmp_path: Path) -> None:
        full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
        write_raw(full, [gradient(n) for n in range(10)])  # index (moov) at the end, as cameras do
        data = full.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(VideoError, match="not a video FFmpeg can read") as info:
            probe_video(cut)
        assert str(cut) in str(info.value)


def _bad_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """Create a file that is not a usable video; return it and a pattern its error must match."""
    if kind == "random":
        path = tmp_path / "random.mp4"
        path.write_bytes(np.random.default_rng(1).bytes(4096))
        return path, "not a video FFmpeg can read"
    if kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("this is not a video\n" * 50)
        return path, "text file"
    if kind == "image":
        path = tmp_path / "face.png"
        cv2.imwrite(str(path), marked())
        return path, "still image"
    if kind == "empty":
        path = tmp_path / "empty.mp4"
        path.touch()
        return path, "empty"
    if kind == "missing":
        return tmp_path / "missing.mp4", "not found"
    if kind == "folder":
        path = tmp_path / "dir.mp4"
        path.mkdir()
        return path, "folder"
    if kind == "zero_frames":
        path = tmp_path / "zero.mkv"  # a video stream with no frames, beside some audio
        with av.open(str(path), "w") as container:
            video = container.add_stream("libx264", rate=30)
            video.width, video.height, video.pix_fmt = W, H, "yuv420p"
            _add_audio(container, "pcm_s16le", "s16")
        return path, r"empty \(0 frames\)"
    raise AssertionError(kind)


def _add_audio(container: av.container.OutputContainer, codec: str, fmt: str) -> None:
    """One second of 440 Hz mono sine at 16 kHz."""
    stream = container.add_stream(codec, rate=16000, layout="mono")
    t = np.arange(16000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    samples = (wave * 32767).astype(np.int16) if fmt == "s16" else wave.astype(np.float32)
    for start in range(0, 16000, 1024):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format=fmt, layout="mono")
        frame.sample_rate, frame.pts = 16000, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


class TestBadInputs:
    @pytest.mark.parametrize("kind", ["random", "text", "image", "empty", "missing", "folder",
                                      "zero_frames"])
    def test_video_error_names_file(self, tmp_path: Path, kind: str) -> None:
        path, pattern = _bad_file(tmp_path, kind)
        for read in (probe_video, read_all):
            with pytest.raises(VideoError, match=pattern) as info:
                read(path)
            message = str(info.value)
            assert message.startswith(str(path)) and "\n" not in message

    @pytest.mark.parametrize("name,codec,fmt", [("tone.wav", "pcm_s16le", "s16"),
                                                ("tone.m4a", "aac", "fltp")])
    def test_audio_only_has_no_video_stream(self, tmp_path: Path, name: str, codec: str,
                                            fmt: str) -> None:
        path = tmp_path / name
        with av.open(str(path), "w") as container:
            _add_audio(container, codec, fmt)
        for read in (probe_video, read_all):
            with pytest.raises(VideoError, match=r"has no video stream \(it holds: audio\)") as info:
                read(path)
            assert str(path) in str(info.value)

