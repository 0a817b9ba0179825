"""Motions with real dynamics (perspnet.synth.motions): shake rates and amplitudes, and replayed trajectories
whose clip ground truth is the source resampled at the clip's frame times."""
import numpy as np
import pandas as pd
import pytest

from perspnet.conventions import (euler_deg_from_matrix, matrix_from_euler_deg, matrix_from_quat_wxyz,
                                  quat_wxyz_from_matrix, rotation_angle_deg)
from perspnet.synth.clips import ClipConfig, clip_trajectory, write_clip
from perspnet.synth.motions import (SHAKE_AMPLITUDE_DEG, SHAKE_PEAK_DEG_S, SHAKE_SWING_S, load_motion,
                                    replay_pose, shake_angles)


class TestShake:
    def test_rates_and_amplitudes(self):
        """Sampled finely: the fastest angular speed is the stated 300 deg/s and never more, and each of yaw,
        pitch and roll swings from -25 to +25 degrees within 0.3 s."""
        dt = 1e-3
        times = np.arange(0.0, 8.0, dt)
        angles = shake_angles(times, np.random.default_rng(0))
        speed = np.abs(np.diff(angles, axis=0)) / dt
        assert SHAKE_SWING_S <= 0.3
        assert speed.max() <= SHAKE_PEAK_DEG_S + 0.5 and speed.max() >= SHAKE_PEAK_DEG_S - 1.0
        steps = int(round(0.3 / dt))
        for axis in range(3):
            a = angles[:, axis]
            lows = np.flatnonzero(a <= -SHAKE_AMPLITUDE_DEG + 0.01)
            assert any(a[i:i + steps + 1].max() >= SHAKE_AMPLITUDE_DEG - 0.01 for i in lows), axis
            assert np.all(np.abs(a) <= SHAKE_AMPLITUDE_DEG + 1e-9)

    def test_clip_reaches_the_rates_at_its_frame_rate(self):
        """A shake clip's ground truth turns by more than 8 degrees between two frames at 30 fps (above 250
        deg/s), and does so about each axis."""
        cfg = ClipConfig(motion="shake", frames=150, fps=30)
        traj = clip_trajectory(cfg, np.random.default_rng(4), 0)
        step_deg = rotation_angle_deg(traj.R[:-1], traj.R[1:])
        assert step_deg.max() * cfg.fps > 250.0 and step_deg.max() * cfg.fps <= SHAKE_PEAK_DEG_S + 1.0
        ypr = euler_deg_from_matrix(traj.R)
        assert np.all(np.ptp(ypr, axis=0) > 45.0)
        assert np.all(np.isfinite(traj.t)) and np.all(traj.t[:, 2] > 0.4)


def write_source(path, fps: float, n: int, gap=()):
    """A measured-like ``poses.csv`` at ``fps`` (23.976 like a real clip): smooth yaw/pitch/roll and
    translation, ``success`` 0 (empty pose) on the rows in ``gap``; returns the truth as functions of time."""
    def ypr(t):
        return np.column_stack([30 * np.sin(1.3 * t), 10 * np.sin(2.1 * t + 1), 5 * np.sin(0.7 * t)])

    def trans(t):
        return np.column_stack([0.05 + 0.02 * np.sin(t), -0.02 + 0.01 * np.cos(1.7 * t), 0.6 + 0.05 * np.sin(0.9 * t)])

    ts = 12.5 + np.arange(n) / fps  # a stream that does not start at 0
    R = np.stack([matrix_from_euler_deg(*a) for a in ypr(ts - ts[0])])
    q, t = quat_wxyz_from_matrix(R), trans(ts - ts[0])
    ok = np.ones(n, dtype=bool)
    ok[list(gap)] = False
    df = pd.DataFrame({"frame": np.arange(n), "timestamp_s": ts, "success": ok.astype(int),
                       "qw": q[:, 0], "qx": q[:, 1], "qy": q[:, 2], "qz": q[:, 3],
                       "tx": t[:, 0], "ty": t[:, 1], "tz": t[:, 2]})
    df.loc[~ok, ["qw", "qx", "qy", "qz", "tx", "ty", "tz"]] = np.nan
    df.to_csv(path, index=False, float_format="%.10g")
    return ypr, trans


class TestReplay:
    def test_resampled_at_the_clip_frame_times(self, tmp_path):
        ypr, trans = write_source(tmp_path / "poses.csv", 24000 / 1001, 80, gap=range(30, 33))
        track = load_motion(tmp_path / "poses.csv")
        assert track.time_s[0] == 0.0 and len(track.time_s) == 77
        times = np.arange(60) / 30.0
        R, t = replay_pose(track, times)
        R_true = np.stack([matrix_from_euler_deg(*a) for a in ypr(times)])
        # sampled at 24 fps, interpolated at 30 fps (and across the 3-frame gap): within a small fraction
        # of the motion between two source frames
        assert rotation_angle_deg(R, R_true).max() < 0.3
        t_true = trans(times)
        t_src = trans(track.time_s)
        t_true[:, :2] -= t_src[:, :2].mean(axis=0)  # the replay is centred on the optical axis
        assert np.abs(t - t_true).max() < 0.5e-3

    def test_clip_gt_is_the_source_trajectory(self, tmp_path, test_generator):
        """perspnet-synth clip --motion replay: gt.csv holds the replayed poses at the clip's frame times."""
        write_source(tmp_path / "poses.csv", 24000 / 1001, 40)
        cfg = ClipConfig(motion="replay", frames=8, fps=30, width=160, height=120, fx=150.0,
                         motion_from=tmp_path / "poses.csv")
        clip = write_clip(tmp_path / "clip", 3, cfg, test_generator)
        gt = pd.read_csv(clip / "gt.csv")
        R_expected, t_expected = replay_pose(load_motion(tmp_path / "poses.csv"), gt.timestamp_s.to_numpy())
        R_gt = matrix_from_quat_wxyz(gt[["qw", "qx", "qy", "qz"]].to_numpy())
        assert rotation_angle_deg(R_gt, R_expected).max() < 1e-4
        np.testing.assert_allclose(gt[["tx", "ty", "tz"]].to_numpy(), t_expected, atol=2e-9)

    def test_bad_sources_are_one_line_errors_and_write_nothing(self, tmp_path, test_generator):
        write_source(tmp_path / "short.csv", 30.0, 20)  # 0.63 s
        cfg = ClipConfig(motion="replay", frames=30, fps=30, width=160, height=120, fx=150.0,
                         motion_from=tmp_path / "short.csv")
        with pytest.raises(ValueError, match=r"short\.csv: the trajectory lasts 0\.63 s"):
            write_clip(tmp_path / "clip", 3, cfg, test_generator)
        assert not (tmp_path / "clip").exists()
        (tmp_path / "bad.csv").write_text("frame,timestamp_s\n0,0.0\n")
        with pytest.raises(ValueError, match=r"bad\.csv: missing column\(s\) qw"):
            load_motion(tmp_path / "bad.csv")
        with pytest.raises(ValueError, match="--motion-from"):
            ClipConfig(motion="replay")
        with pytest.raises(ValueError, match="--motion-from"):
            ClipConfig(motion="shake", motion_from=tmp_path / "short.csv")
