"""Tests of perspnet.metrics on hand-made cases with known answers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from perspnet.conventions import matrix_from_euler_deg, transform_points
from perspnet.face_model import load_face_model
from perspnet.metrics import (METRIC_KEYS, SampleMetrics, aggregate_metrics, euler_abs_error_deg, format_table,
                              ipd_scale, sample_metrics, wrap_deg)

R_GT = matrix_from_euler_deg(20.0, -10.0, 5.0)
T_GT = np.array([0.03, -0.02, 0.6])


@pytest.fixture(scope="module")
def face():
    return load_face_model()


@pytest.fixture(scope="module")
def verts(face):
    return face.verts_face_m


def test_json_keys_are_the_papers():
    assert set(METRIC_KEYS) == {"yaw", "pitch", "roll", "mae_r", "tx", "ty", "tz", "mae_t", "add",
                                "shape_median_mm", "shape_mean_mm", "n", "mae_t_sized", "add_sized"}


def test_perfect_prediction_is_all_zero(face, verts):
    m = sample_metrics(R_GT, T_GT, verts, R_GT, T_GT, verts, face)
    for k, v in vars(m).items():
        assert v == pytest.approx(0.0, abs=1e-9), k


def test_yaw_error_of_five_degrees(face, verts):
    m = sample_metrics(matrix_from_euler_deg(25.0, -10.0, 5.0), T_GT, verts, R_GT, T_GT, verts, face)
    assert m.yaw == pytest.approx(5.0)
    assert m.pitch == pytest.approx(0.0, abs=1e-9) and m.roll == pytest.approx(0.0, abs=1e-9)
    assert m.mae_r == pytest.approx(5.0 / 3.0)
    assert m.tx == m.ty == m.tz == m.mae_t == 0.0


@pytest.mark.parametrize("pred, gt", [(179.0, -179.0), (-179.0, 179.0)])
def test_angle_wrap(face, verts, pred, gt):
    assert float(np.abs(wrap_deg(pred - gt))) == pytest.approx(2.0)
    m = sample_metrics(matrix_from_euler_deg(pred, 0, 0), T_GT, verts, matrix_from_euler_deg(gt, 0, 0), T_GT,
                       verts, face)
    assert m.yaw == pytest.approx(2.0)
    assert m.pitch == pytest.approx(0.0, abs=1e-9) and m.roll == pytest.approx(0.0, abs=1e-9)


def test_roll_wrap_in_euler_errors():
    err = euler_abs_error_deg(matrix_from_euler_deg(0, 0, 178.0), matrix_from_euler_deg(0, 0, -178.0))
    np.testing.assert_allclose(err, [0.0, 0.0, 4.0], atol=1e-9)


def test_z_shift_of_ten_mm(face, verts):
    m = sample_metrics(R_GT, T_GT + [0, 0, 0.010], verts, R_GT, T_GT, verts, face)
    assert m.tz == pytest.approx(10.0) and m.tx == 0.0 and m.ty == 0.0
    assert m.mae_t == pytest.approx(10.0 / 3.0)
    assert m.add == pytest.approx(10.0)
    assert m.shape_mm == 0.0
    assert m.add_sized == pytest.approx(10.0) and m.mae_t_sized == pytest.approx(10.0 / 3.0)  # s = 1


def test_pure_scale_error_is_removed_by_sizing(face, verts):
    """A face 5% too big and 5% too far projects to the same image: only the sized metrics forgive it."""
    m = sample_metrics(R_GT, 1.05 * T_GT, 1.05 * verts, R_GT, T_GT, verts, face)
    assert m.mae_t == pytest.approx(np.abs(0.05 * T_GT).mean() * 1000)
    assert m.add > 25.0 and m.shape_mm > 2.0
    assert m.mae_t_sized == pytest.approx(0.0, abs=1e-9)
    assert m.add_sized == pytest.approx(0.0, abs=1e-9)
    assert ipd_scale(1.05 * verts, verts, face) == pytest.approx(1 / 1.05)


def test_add_compares_predicted_mesh_with_true_mesh(face, verts):
    offset = np.array([0.001, 0.0, 0.0])  # shape error of 1 mm along the canonical x axis
    m = sample_metrics(R_GT, T_GT, verts + offset, R_GT, T_GT, verts, face)
    assert m.shape_mm == pytest.approx(1.0)
    assert m.add == pytest.approx(1.0)   # rotation preserves the 1 mm offset's length
    assert m.mae_t == 0.0


def test_add_of_a_rotation_error(face, verts):
    R_pred = matrix_from_euler_deg(0, 3, 0) @ R_GT
    m = sample_metrics(R_pred, T_GT, verts, R_GT, T_GT, verts, face)
    expected = np.linalg.norm(transform_points(R_pred, T_GT, verts) - transform_points(R_GT, T_GT, verts),
                              axis=1).mean() * 1000
    assert m.add == pytest.approx(expected) and m.add > 0


def test_aggregate_median_and_mean_of_shape(face, verts):
    samples = [sample_metrics(R_GT, T_GT, verts + [d / 1000, 0, 0], R_GT, T_GT, verts, face) for d in (1, 2, 6)]
    out = aggregate_metrics(samples)
    assert list(out) == list(METRIC_KEYS)
    assert out["n"] == 3
    assert out["shape_median_mm"] == pytest.approx(2.0)
    assert out["shape_mean_mm"] == pytest.approx(3.0)
    assert out["add"] == pytest.approx(3.0)
    json.dumps(out)  # a plain JSON object


def test_aggregate_means_and_nan_failure():
    a = SampleMetrics(1, 2, 3, 2, 4, 5, 6, 5, 7, 1, 8, 9)
    b = SampleMetrics(3, 4, 5, 4, 6, 7, 8, 7, 9, 3, 10, 11)
    out = aggregate_metrics([a, b])
    assert (out["yaw"], out["mae_r"], out["tz"], out["add"], out["mae_t_sized"], out["add_sized"]) == (
        2, 3, 7, 8, 9, 10)
    nan = SampleMetrics(*([np.nan] * 12))
    assert np.isnan(aggregate_metrics([a, nan])["yaw"])
    empty = aggregate_metrics([])
    assert empty["n"] == 0 and np.isnan(empty["yaw"])


def test_format_table_rows_and_columns(face, verts):
    good = aggregate_metrics([sample_metrics(R_GT, T_GT, verts, R_GT, T_GT, verts, face)])
    worse = aggregate_metrics([sample_metrics(R_GT, T_GT + [0, 0, 0.01], verts, R_GT, T_GT, verts, face)])
    text = format_table({"PerspNet": good, "Baseline": worse})
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:10] == ["Method", "Yaw", "Pitch", "Roll", "MAE_r", "tx", "ty", "tz", "MAE_t", "ADD"]
    assert header[10:12] == ["Median", "Mean"]           # the paper's Table 4 after Table 2
    assert lines[2].startswith("PerspNet") and lines[3].startswith("Baseline")
    assert "10.00" in lines[3] and lines[3].split()[-1] == "1"


@settings(max_examples=30, deadline=None)
@given(ypr=st.tuples(st.floats(-170, 170), st.floats(-80, 80), st.floats(-170, 170)),
       d=st.tuples(st.floats(-20, 20), st.floats(-20, 20), st.floats(-20, 20)))
def test_property_euler_errors_bounded_and_symmetric(ypr, d):
    Ra = matrix_from_euler_deg(*ypr)
    Rb = matrix_from_euler_deg(ypr[0] + d[0], ypr[1] + d[1], ypr[2] + d[2])
    e_ab, e_ba = euler_abs_error_deg(Ra, Rb), euler_abs_error_deg(Rb, Ra)
    assert ((e_ab >= 0) & (e_ab <= 180)).all()
    np.testing.assert_allclose(e_ab, e_ba, atol=1e-9)
