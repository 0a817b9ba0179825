"""Jitter metrics and the ``analyze-jitter`` CLI on CSV files written here with known signals and noise."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.signal import savgol_coeffs

from perspnet.conventions import matrix_from_euler_deg, quat_wxyz_from_matrix
from pipelines.analyze_jitter import main
from tracker.jitter import (AXES, SAVGOL_ORDER, SAVGOL_WINDOW, JitterInputError, analyze, load_gt, load_pose_runs,
                           oversmoothing, second_diff_rms, savgol_residual_rms)

FPS = 30.0


def pose_frame(ypr_deg: np.ndarray, t_m: np.ndarray, prefix: str = "") -> pd.DataFrame:
    """Pose columns for Euler angles ``(N, 3)`` [deg] and translations ``(N, 3)`` [m]."""
    R = np.stack([matrix_from_euler_deg(*a) for a in ypr_deg])
    q = quat_wxyz_from_matrix(R)
    cols = {"qw": q[:, 0], "qx": q[:, 1], "qy": q[:, 2], "qz": q[:, 3], "tx": t_m[:, 0], "ty": t_m[:, 1],
            "tz": t_m[:, 2], "yaw_deg": ypr_deg[:, 0], "pitch_deg": ypr_deg[:, 1], "roll_deg": ypr_deg[:, 2]}
    return pd.DataFrame({prefix + k: v for k, v in cols.items()})


def write_poses(path: Path, ypr_deg, t_m, success=None, frames=None, raw=None) -> Path:
    """A ``poses.csv``; rows with ``success`` false get empty pose cells; ``raw`` = (ypr, t) adds raw_ columns."""
    n = len(t_m)
    frames = np.arange(n) if frames is None else np.asarray(frames)
    success = np.ones(n, dtype=bool) if success is None else np.asarray(success)
    df = pd.DataFrame({"frame": frames, "timestamp_s": frames / FPS, "success": success.astype(int)})
    poses = pose_frame(np.asarray(ypr_deg, dtype=float), np.asarray(t_m, dtype=float))
    poses[~success] = np.nan
    parts = [df, poses]
    if raw is not None:
        parts.append(pose_frame(np.asarray(raw[0], dtype=float), np.asarray(raw[1], dtype=float), "raw_"))
    pd.concat(parts, axis=1).to_csv(path, index=False, float_format="%.10g")
    return path


def write_gt(path: Path, ypr_deg, t_m, frames=None) -> Path:
    n = len(t_m)
    frames = np.arange(n) if frames is None else np.asarray(frames)
    poses = pose_frame(np.asarray(ypr_deg, dtype=float), np.asarray(t_m, dtype=float))
    df = pd.concat([pd.DataFrame({"frame": frames, "timestamp_s": frames / FPS}),
                    poses[["qw", "qx", "qy", "qz", "tx", "ty", "tz"]]], axis=1)
    df.to_csv(path, index=False, float_format="%.10g")
    return path


def sinusoid_track(n: int, seed: int, noise_mm: float, noise_deg: float):
    """Known motion (amplitudes 10 mm / 5 deg at 0.3 Hz) + white noise; returns ypr [deg], t [m], truth."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * 0.3 * np.arange(n) / FPS
    t_true = np.column_stack([0.010 * np.sin(phase), 0.010 * np.sin(phase + 1), 0.5 + 0.010 * np.sin(phase + 2)])
    ypr_true = np.column_stack([5 * np.sin(phase), 5 * np.sin(phase + 1), 5 * np.sin(phase + 2)])
    t_m = t_true + rng.normal(size=(n, 3)) * noise_mm / 1000
    ypr = ypr_true + rng.normal(size=(n, 3)) * noise_deg
    return ypr, t_m, ypr_true, t_true


class TestMetrics:
    def test_second_difference_rms_of_sinusoid_plus_noise(self, tmp_path):
        n, s_mm, s_deg = 20000, 1.0, 0.5
        ypr, t_m, _, _ = sinusoid_track(n, 0, s_mm, s_deg)
        (run,) = load_pose_runs(write_poses(tmp_path / "p.csv", ypr, t_m), "p")
        # white noise sd s: sqrt(6) s; sinusoid amplitude A at w rad/frame: 4 sin^2(w/2) A / sqrt(2)
        w = 2 * np.pi * 0.3 / FPS
        signal = lambda amp: 4 * np.sin(w / 2) ** 2 * amp / math.sqrt(2)  # noqa: E731
        expect_t = math.sqrt(6 * s_mm**2 + signal(10.0) ** 2)
        expect_r = math.sqrt(6 * s_deg**2 + signal(5.0) ** 2)
        got = second_diff_rms(run)
        for axis in ("tx", "ty", "tz"):
            assert got[axis] == pytest.approx(expect_t, rel=0.02)
        for axis in ("yaw", "pitch", "roll"):
            assert got[axis] == pytest.approx(expect_r, rel=0.02)
        assert got["tx"] == pytest.approx(1.0 * math.sqrt(6), rel=0.02)  # the sinusoid adds < 0.01 %

    def test_savgol_residual_of_white_noise(self, tmp_path):
        n, s_mm, s_deg = 20000, 2.0, 0.3
        ypr, t_m, _, _ = sinusoid_track(n, 1, s_mm, s_deg)
        (run,) = load_pose_runs(write_poses(tmp_path / "p.csv", ypr, t_m), "p")
        c0 = savgol_coeffs(SAVGOL_WINDOW, SAVGOL_ORDER)[SAVGOL_WINDOW // 2]
        got = savgol_residual_rms(run)
        for axis, s in zip(AXES, [s_mm] * 3 + [s_deg] * 3):
            assert got[axis] == pytest.approx(s * math.sqrt(1 - c0), rel=0.03)

    def test_invalid_rows_and_frame_gaps_are_not_differenced(self, tmp_path):
        frames = np.concatenate([np.arange(0, 40), np.arange(47, 90)])  # 7 frames never written
        n = frames.size
        ypr = np.column_stack([0.5 * frames, 0.2 * frames, -0.1 * frames])  # linear in frame: d2 = 0
        t_m = np.column_stack([1e-3 * frames, -2e-3 * frames, 0.5 + 1e-3 * frames])
        success = np.ones(n, dtype=bool)
        success[[10, 11, 60]] = False
        (run,) = load_pose_runs(write_poses(tmp_path / "p.csv", ypr, t_m, success, frames), "p")
        assert run.valid.sum() == n - 3
        for value in second_diff_rms(run).values():
            assert value == pytest.approx(0.0, abs=1e-6)
        for value in savgol_residual_rms(run).values():
            assert value == pytest.approx(0.0, abs=1e-6)

    def test_angles_wrap_across_180(self, tmp_path):
        yaw = 170.0 + 0.5 * np.arange(60)  # 170 -> 199.5 deg, written wrapped to (-180, 180]
        ypr = np.column_stack([(yaw + 180) % 360 - 180, np.zeros(60), np.zeros(60)])
        (run,) = load_pose_runs(write_poses(tmp_path / "p.csv", ypr, np.tile([0, 0, 0.5], (60, 1))), "p")
        assert second_diff_rms(run)["yaw"] == pytest.approx(0.0, abs=1e-6)
        assert savgol_residual_rms(run)["yaw"] == pytest.approx(0.0, abs=1e-6)

    def test_error_against_ground_truth(self, tmp_path):
        n = 100
        ypr_true = np.column_stack([np.linspace(-20, 20, n), np.linspace(5, -5, n), np.linspace(0, 10, n)])
        t_true = np.column_stack([np.linspace(-0.05, 0.05, n), np.zeros(n), np.linspace(0.4, 0.6, n)])
        # estimate = truth + (2, -1, 3) mm and 2 degrees of roll (R Rz(2) is roll + 2 for Ry Rx Rz)
        est_ypr, est_t = ypr_true + [0.0, 0.0, 2.0], t_true + [0.002, -0.001, 0.003]
        success = np.ones(n, dtype=bool)
        success[::10] = False
        frames = np.arange(n)
        write_gt(tmp_path / "gt.csv", ypr_true[5:], t_true[5:], frames[5:])  # gt starts at frame 5
        (run,) = load_pose_runs(write_poses(tmp_path / "p.csv", est_ypr, est_t, success), "p")
        (m,) = analyze([run], load_gt(tmp_path / "gt.csv"))
        assert m.gt.n_matched == np.sum(success[5:])
        expect = {"tx": 2.0, "ty": 1.0, "tz": 3.0, "yaw": 0.0, "pitch": 0.0, "roll": 2.0}
        for axis, v in expect.items():
            assert m.gt.mae[axis] == pytest.approx(v, abs=1e-6)
        assert m.gt.mae_t_mm == pytest.approx(math.sqrt(14.0), abs=1e-6)
        assert m.gt.mae_r_deg == pytest.approx(2.0, abs=1e-6)

    def test_raw_columns_make_two_runs(self, tmp_path):
        ypr, t_m, ypr_true, t_true = sinusoid_track(600, 2, 1.5, 1.0)
        path = write_poses(tmp_path / "poses.csv", ypr_true, t_true, raw=(ypr, t_m))
        filtered, raw = load_pose_runs(path, "ours")
        assert (filtered.label, raw.label) == ("ours:filtered", "ours:raw")
        m_f, m_r = analyze([filtered, raw])
        assert m_r.second_diff_rms["tz"] == pytest.approx(1.5 * math.sqrt(6), rel=0.1)
        assert m_f.second_diff_rms["tz"] < 0.05 * m_r.second_diff_rms["tz"]


    def test_unfiltered_file_is_one_raw_run(self, tmp_path):
        """``--filter none`` copies the raw poses into the main columns; its summary.json says so, and the
        file is read as one run labelled raw, not as a "filtered" run that is the raw one again."""
        ypr, t_m, _, _ = sinusoid_track(60, 5, 1.5, 1.0)
        path = write_poses(tmp_path / "poses.csv", ypr, t_m, raw=(ypr, t_m))
        (tmp_path / "summary.json").write_text(json.dumps({"filter": "none"}))
        assert [r.label for r in load_pose_runs(path, "mp")] == ["mp:raw"]
        assert [r.label for r in load_pose_runs(path, "mp", filtered=True)] == ["mp:filtered", "mp:raw"]
        (tmp_path / "summary.json").write_text(json.dumps({"filter": "smooth"}))
        assert [r.label for r in load_pose_runs(path, "mp")] == ["mp:filtered", "mp:raw"]


class TestOversmoothing:
    @staticmethod
    def quick_motion(n: int = 300):
        """Truth with quick nods and turns (0.4 s bumps of 20 deg / 20 mm every second) on every axis."""
        ts = np.arange(n) / FPS
        bump = sum(np.exp(-0.5 * ((ts - c) / 0.1) ** 2) for c in np.arange(0.7, ts[-1], 1.0))
        ypr = np.column_stack([20 * bump, -15 * bump, 10 * bump])
        t_m = np.column_stack([0.02 * bump, -0.01 * bump, 0.55 + 0.02 * bump])
        return ypr, t_m

    def write(self, tmp_path, filtered, raw, reference):
        ours = write_poses(tmp_path / "ours.csv", *filtered, raw=raw)
        ref = write_poses(tmp_path / "ref.csv", *reference)
        return ours, ref

    def test_noise_removal_is_near_zero_motion_removal_near_one(self, tmp_path):
        rng = np.random.default_rng(7)
        ypr, t_m = self.quick_motion()
        noisy = lambda s_deg, s_m: (ypr + rng.normal(size=ypr.shape) * s_deg,  # noqa: E731
                                    t_m + rng.normal(size=t_m.shape) * s_m)
        raw, reference = noisy(2.0, 0.003), noisy(1.0, 0.001)
        good = noisy(0.1, 0.0001)  # the filter kept the motion and removed most of its noise
        box = np.ones(21) / 21  # a filter that flattens the bumps
        flat = tuple(np.column_stack([np.convolve(np.pad(x[:, i], 10, mode="edge"), box, "valid") for i in range(3)])
                     for x in raw)
        corr = {}
        for name, filtered in (("good", good), ("flat", flat)):
            ours, ref = self.write(tmp_path, filtered, raw, reference)
            f, r = load_pose_runs(ours, name)
            o = oversmoothing(f, r, load_pose_runs(ref, "mp")[0], name)
            assert o.n_frames == 300 and o.removed.shape == o.deviation.shape == (300, 6)
            corr[name] = o.corr
        assert all(abs(corr["good"][a]) < 0.2 for a in AXES), corr["good"]
        assert all(corr["flat"][a] > 0.4 for a in AXES), corr["flat"]

    def test_cli_reports_and_plots_it(self, tmp_path, capsys):
        ypr, t_m = self.quick_motion(120)
        rng = np.random.default_rng(8)
        ours, ref = self.write(tmp_path, (ypr, t_m), (ypr + rng.normal(size=ypr.shape), t_m),
                               (ypr + rng.normal(size=ypr.shape), t_m + 1e-4 * rng.normal(size=t_m.shape)))
        code, out, err = _run_cli([ours, "--reference", ref, "--labels", "ours", "--out", tmp_path / "o"], capsys)
        assert code == 0, err
        assert "over-smoothing" in out
        report = json.loads((tmp_path / "o" / "jitter.json").read_text())
        over = report["oversmoothing"]
        assert over["reference"] == str(ref) and over["runs"][0]["label"] == "ours"
        assert over["runs"][0]["n_frames"] == 120 and set(over["runs"][0]["corr"]) == set(AXES)
        assert (tmp_path / "o" / "jitter_oversmoothing.png").read_bytes()[:4] == b"\x89PNG"
        # a reference needs an input with filtered and raw poses
        code, out, err = _run_cli([ref, "--reference", ref, "--out", tmp_path / "p"], capsys)
        assert code == 2 and "--reference" in err and not (tmp_path / "p").exists()


class TestLoadErrors:
    def test_missing_file(self, tmp_path):
        with pytest.raises(JitterInputError, match="nope.csv: no such file"):
            load_pose_runs(tmp_path / "nope.csv", "x")

    def test_missing_columns(self, tmp_path):
        path = write_poses(tmp_path / "p.csv", np.zeros((5, 3)), np.tile([0, 0, 0.5], (5, 1)))
        pd.read_csv(path).drop(columns=["tz", "roll_deg"]).to_csv(path, index=False)
        with pytest.raises(JitterInputError, match=r"p.csv: missing column\(s\) tz, roll_deg"):
            load_pose_runs(path, "x")

    def test_non_numeric(self, tmp_path):
        path = write_poses(tmp_path / "p.csv", np.zeros((5, 3)), np.tile([0, 0, 0.5], (5, 1)))
        df = pd.read_csv(path).astype({"ty": object})
        df.loc[3, "ty"] = "abc"
        df.to_csv(path, index=False)
        with pytest.raises(JitterInputError, match="'ty' row 5 is not a number: 'abc'"):
            load_pose_runs(path, "x")

    def test_empty_cell_in_a_successful_row(self, tmp_path):
        path = write_poses(tmp_path / "gt.csv", np.zeros((5, 3)), np.tile([0, 0, 0.5], (5, 1)))
        df = pd.read_csv(path)
        df.loc[2, "qw"] = np.nan
        df.to_csv(path, index=False)
        with pytest.raises(JitterInputError, match="'qw' row 4 is empty"):
            load_pose_runs(path, "x")


def _run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


class TestCli:
    def test_outputs(self, tmp_path, capsys):
        ypr, t_m, ypr_true, t_true = sinusoid_track(300, 3, 1.5, 1.0)
        run_a = write_poses(tmp_path / "a.csv", ypr_true + 0.1, t_true, raw=(ypr, t_m))
        run_b = write_poses(tmp_path / "b.csv", ypr, t_m)
        gt = write_gt(tmp_path / "gt.csv", ypr_true, t_true)
        out_dir = tmp_path / "report"
        code, out, err = _run_cli([run_a, run_b, "--gt", gt, "--labels", "ours", "baseline", "--out", out_dir],
                                  capsys)
        assert code == 0, err
        for label in ("ours:filtered", "ours:raw", "baseline"):
            assert label in out
        report = json.loads((out_dir / "jitter.json").read_text())
        assert [r["label"] for r in report["runs"]] == ["ours:filtered", "ours:raw", "baseline"]
        assert report["savgol"] == {"window_frames": SAVGOL_WINDOW, "polyorder": SAVGOL_ORDER}
        assert report["runs"][0]["gt_error"]["mae"]["yaw"] == pytest.approx(0.1, abs=1e-6)
        table = pd.read_csv(out_dir / "jitter.csv", index_col="run")
        assert list(table.index) == ["ours:filtered", "ours:raw", "baseline"]
        assert table.loc["baseline", "d2_rms_tz_mm"] == pytest.approx(
            report["runs"][2]["second_diff_rms"]["tz"], rel=1e-5)
        for name in ("jitter_timeseries.png", "jitter_spectrum.png"):
            data = (out_dir / name).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        assert sorted(p.name for p in out_dir.iterdir()) == sorted(
            ["jitter.json", "jitter.csv", "jitter_timeseries.png", "jitter_spectrum.png"])  # no temporaries

    def test_without_gt_and_with_missing_frames(self, tmp_path, capsys):
        ypr, t_m, _, _ = sinusoid_track(100, 4, 1.0, 0.5)
        success = np.ones(100, dtype=bool)
        success[40:50] = False
        path = write_poses(tmp_path / "poses.csv", ypr, t_m, success)
        code, out, err = _run_cli([path, "--out", tmp_path / "o"], capsys)
        assert code == 0, err
        report = json.loads((tmp_path / "o" / "jitter.json").read_text())
        assert report["runs"][0]["gt_error"] is None and report["runs"][0]["n_valid"] == 90

    @pytest.mark.parametrize("case", ["missing_file", "missing_column", "non_numeric", "bad_success",
                                      "bad_gt", "labels"])
    def test_bad_input_is_one_line_exit_2(self, tmp_path, capsys, case):
        good = write_poses(tmp_path / "good.csv", np.zeros((5, 3)), np.tile([0, 0, 0.5], (5, 1)))
        bad = tmp_path / "bad.csv"
        df = pd.read_csv(good)
        argv = [bad]
        if case == "missing_file":
            pass
        elif case == "missing_column":
            df.drop(columns=["success"]).to_csv(bad, index=False)
        elif case == "non_numeric":
            df.astype({"tx": object}).assign(tx=["1", "2", "x", "4", "5"]).to_csv(bad, index=False)
        elif case == "bad_success":
            df.astype({"success": object}).assign(success=["yes"] * 5).to_csv(bad, index=False)
        elif case == "bad_gt":
            df[["frame", "timestamp_s", "qw"]].to_csv(bad, index=False)
            argv = [good, "--gt", bad]
        elif case == "labels":
            argv = [good, "--labels", "a", "b"]
        code, out, err = _run_cli(argv + ["--out", tmp_path / "o"], capsys)
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert err.startswith("analyze-jitter: error:")
        if case != "labels":
            assert "bad.csv" in err
        assert not (tmp_path / "o").exists()

    def test_console_entry_point_in_a_process(self, tmp_path):
        proc = subprocess.run([sys.executable, "-m", "pipelines.analyze_jitter", str(tmp_path / "none.csv")],
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        assert proc.returncode == 2
        assert proc.stderr.strip() == f"analyze-jitter: error: {tmp_path / 'none.csv'}: no such file"
