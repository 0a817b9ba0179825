"""perspnet.intrinsics: K.json round trips, validation errors, scaling, defaults, undistortion."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from perspnet.intrinsics import (
    DEFAULT_HFOV_DEG,
    DIST_LENGTHS,
    Intrinsics,
    IntrinsicsError,
    default_intrinsics,
    for_video,
    intrinsics_from_dict,
    plausibility_warnings,
    load_intrinsics,
    save_intrinsics,
    undistort_points,
)

VALID = {"fx": 1450.5, "fy": 1449.25, "cx": 961.0, "cy": 538.5, "width": 1920, "height": 1080}
DIST5 = [0.08, -0.21, 0.001, -0.002, 0.1]
FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_raw(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))  # allow_nan: NaN/Infinity literals, as sloppy writers emit
    return path


class TestIntrinsics:
    def test_K(self) -> None:
        intr = Intrinsics(**VALID)
        np.testing.assert_array_equal(
            intr.K, [[1450.5, 0, 961.0], [0, 1449.25, 538.5], [0, 0, 1]]
        )
        assert intr.K.dtype == np.float64 and intr.K.shape == (3, 3)

    def test_normalises_types(self) -> None:
        intr = Intrinsics(fx=500, fy=np.float32(500), cx=np.int64(320), cy=240, width=640.0,
                          height=np.int32(480), dist=[0, 0, 0, 0])
        assert all(type(v) is float for v in (intr.fx, intr.fy, intr.cx, intr.cy))
        assert type(intr.width) is int and type(intr.height) is int
        assert intr.dist == (0.0, 0.0, 0.0, 0.0) and all(type(d) is float for d in intr.dist)
        hash(intr)  # frozen and hashable

    def test_round_trip(self, tmp_path: Path) -> None:
        for dist in (None, DIST5):
            intr = Intrinsics(**VALID, dist=dist)
            save_intrinsics(tmp_path / "K.json", intr)
            assert load_intrinsics(tmp_path / "K.json") == intr
        saved = json.loads((tmp_path / "K.json").read_text())
        assert saved == {**VALID, "dist": DIST5}

    def test_no_dist_is_omitted_and_null_accepted(self, tmp_path: Path) -> None:
        save_intrinsics(tmp_path / "K.json", Intrinsics(**VALID))
        assert "dist" not in json.loads((tmp_path / "K.json").read_text())
        assert load_intrinsics(write_raw(tmp_path / "n.json", {**VALID, "dist": None})).dist is None


def expect_error(path: Path, pattern: str) -> str:
    with pytest.raises(IntrinsicsError, match=pattern) as info:
        load_intrinsics(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


class TestValidationErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        expect_error(tmp_path / "nope.json", "file not found")

    def test_folder(self, tmp_path: Path) -> None:
        expect_error(tmp_path, "cannot read")

    @pytest.mark.parametrize("text", ["", "{", "fx: 500", "{'fx': 500}", "[1, 2,]"])
    def test_not_json(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "K.json"
        path.write_text(text)
        expect_error(path, r"not JSON \(.* at line \d+ column \d+\)")

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "K.json"
        path.write_bytes(b"\xff\xfe\x00{")
        expect_error(path, "not JSON")

    @pytest.mark.parametrize("data", [[1, 2, 3], "K", 500, None])
    def test_not_an_object(self, tmp_path: Path, data: Any) -> None:
        expect_error(write_raw(tmp_path / "K.json", data), "expected a JSON object")

    def test_missing_keys(self, tmp_path: Path) -> None:
        data = {k: v for k, v in VALID.items() if k not in ("cy", "height")}
        expect_error(write_raw(tmp_path / "K.json", data), "missing key.* cy, height")

    def test_unknown_key(self, tmp_path: Path) -> None:
        expect_error(write_raw(tmp_path / "K.json", {**VALID, "fX": 1.0}), "unknown key.* fX")

    def test_unknown_key_with_a_line_break_stays_one_line(self, tmp_path: Path) -> None:
        expect_error(write_raw(tmp_path / "K.json", {**VALID, "f\nx": 1.0}), r"unknown key\(s\) f\\nx;")

    @pytest.mark.parametrize("key", ["fx", "fy", "cx", "cy", "width", "height"])
    @pytest.mark.parametrize("value", ["500", None, [500], {"v": 1}, True])
    def test_non_numeric(self, tmp_path: Path, key: str, value: Any) -> None:
        expect_error(write_raw(tmp_path / "K.json", {**VALID, key: value}), f"{key} must be a number")

    @pytest.mark.parametrize("key", ["fx", "fy", "cx", "cy", "width", "height"])
    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_non_finite(self, tmp_path: Path, key: str, value: float) -> None:
        expect_error(write_raw(tmp_path / "K.json", {**VALID, key: value}), f"{key} must be finite")

    def test_huge_integer_is_non_finite(self, tmp_path: Path) -> None:
        path = tmp_path / "K.json"
        path.write_text(json.dumps(VALID).replace("1450.5", "1" + "0" * 400))
        expect_error(path, "fx must be finite")

    @pytest.mark.parametrize("key,value", [("fx", 0.0), ("fy", -1.0), ("width", 0), ("height", -480)])
    def test_non_positive(self, tmp_path: Path, key: str, value: float) -> None:
        expect_error(write_raw(tmp_path / "K.json", {**VALID, key: value}), f"{key} must be positive")

    def test_fractional_size(self, tmp_path: Path) -> None:
        expect_error(write_raw(tmp_path / "K.json", {**VALID, "width": 1919.5}), "whole number")

    @pytest.mark.parametrize("text,key,first,last", [
        ('{"fx": 1000, "fy": 1000, "cx": 959.5, "cy": 539.5, "width": 1920, "height": 1080, "fx": 900}',
         "fx", "1000", "900"),
        ('{"fx": 1000, "fy": 1000, "cx": 959.5, "cy": 539.5, "width": 1920, "height": 1080, "height": 1080}',
         "height", "1080", "1080"),
        ('{"fx": 1, "fy": 1, "cx": 0, "cy": 0, "width": 2, "height": 2, "dist": null, "dist": [0, 0, 0, 0]}',
         "dist", "None", r"\[0, 0, 0, 0\]"),
    ])
    def test_duplicate_key_names_the_key_and_both_values(self, tmp_path: Path, text: str, key: str, first: str,
                                                         last: str) -> None:
        path = tmp_path / "K.json"
        path.write_text(text)
        expect_error(path, f"key '{key}' appears twice \\({first} and then {last}\\)")

    def test_constructor_validates_without_a_file(self) -> None:
        with pytest.raises(IntrinsicsError, match="^fx must be positive"):
            Intrinsics(**{**VALID, "fx": -5.0})


class TestPlausibilityWarnings:
    def test_a_real_camera_gets_none(self) -> None:
        assert plausibility_warnings(Intrinsics(**VALID)) == []
        assert plausibility_warnings(default_intrinsics(640, 480)) == []
        assert plausibility_warnings(Intrinsics(**{**VALID, "fy": VALID["fx"] / 1.2})) == []  # DV-like pixels

    def test_focal_lengths_far_apart(self) -> None:
        """The issue's slip: fx typed with two digits too many (116239 against 1162)."""
        warnings = plausibility_warnings(Intrinsics(**{**VALID, "fx": 116239.0, "fy": 1162.0}))
        assert warnings[0].startswith("fx / fy = 100 (fx=116239.0, fy=1162.0)") and "digit" in warnings[0]
        assert any("horizontal field of view 0.946 degrees" in w for w in warnings)

    @pytest.mark.parametrize("focal,expected", [(4.2, "horizontal field of view 179.5 degrees"),
                                                (30000.0, "horizontal field of view 3.67 degrees")])
    def test_field_of_view(self, focal: float, expected: str) -> None:
        warnings = plausibility_warnings(Intrinsics(**{**VALID, "fx": focal, "fy": focal}))
        assert len(warnings) == 1 and warnings[0].startswith(expected), warnings
        assert ("millimetres" in warnings[0]) == (focal < 10)

    @pytest.mark.parametrize("key,value", [("cx", -0.51), ("cx", 1919.51), ("cy", -3.0), ("cy", 1080.0),
                                           ("cx", 1e6)])
    def test_principal_point_outside_is_a_warning(self, tmp_path: Path, key: str, value: float) -> None:
        intr = load_intrinsics(write_raw(tmp_path / "K.json", {**VALID, key: value}))
        warnings = plausibility_warnings(intr)
        assert len(warnings) == 1 and warnings[0].startswith(f"principal point {key}={value!r} is outside")
        assert "cropped or stabilised" in warnings[0]

    def test_principal_point_on_the_edge_is_fine(self) -> None:
        assert plausibility_warnings(Intrinsics(**{**VALID, "cx": -0.5, "cy": 1079.5})) == []


class TestValidationErrorsDist:
    @pytest.mark.parametrize("n", [0, 1, 3, 6, 7, 9, 13, 15])
    def test_bad_dist_length(self, tmp_path: Path, n: int) -> None:
        expect_error(write_raw(tmp_path / "K.json", {**VALID, "dist": [0.01] * n}),
                     f"dist must have 4, 5, 8, 12, 14 coefficients .*got {n}")

    @pytest.mark.parametrize("dist,pattern", [("0.1 0.2 0 0", "list of numbers"),
                                              (0.1, "list of numbers"),
                                              ([0.1, "x", 0, 0], r"dist\[1\] must be a number"),
                                              ([0.1, 0, math.nan, 0], r"dist\[2\] must be finite")])
    def test_bad_dist_values(self, tmp_path: Path, dist: Any, pattern: str) -> None:
        expect_error(write_raw(tmp_path / "K.json", {**VALID, "dist": dist}), pattern)


# --- property tests -------------------------------------------------------------------------

finite_positive = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)
sizes = st.integers(min_value=1, max_value=20000)


@st.composite
def valid_dicts(draw: st.DrawFn) -> dict[str, Any]:
    width, height = draw(sizes), draw(sizes)
    data: dict[str, Any] = {
        "fx": draw(finite_positive | st.integers(1, 10**6)),
        "fy": draw(finite_positive),
        "cx": draw(st.floats(min_value=-0.5, max_value=width - 0.5)),
        "cy": draw(st.floats(min_value=-0.5, max_value=height - 0.5)),
        "width": width,
        "height": height,
    }
    dist = draw(st.none() | st.sampled_from(DIST_LENGTHS).flatmap(
        lambda n: st.lists(st.floats(-10, 10), min_size=n, max_size=n)))
    if dist is not None or draw(st.booleans()):
        data["dist"] = dist
    return data


@given(data=valid_dicts())
@FUZZ
def test_valid_dicts_round_trip_exactly(tmp_path: Path, data: dict[str, Any]) -> None:
    intr = load_intrinsics(write_raw(tmp_path / "in.json", data))
    assert intr == intrinsics_from_dict(data)
    save_intrinsics(tmp_path / "out.json", intr)
    again = load_intrinsics(tmp_path / "out.json")
    assert again == intr
    saved = json.loads((tmp_path / "out.json").read_text())
    expected = {k: v for k, v in data.items() if not (k == "dist" and v is None)}
    assert saved == expected  # every value bit-exact (ints compare equal to their floats)


BAD_VALUES = st.sampled_from(["1", None, [], {}, True, False, math.nan, math.inf, -math.inf, 0, -1.0,
                              1e400, 0.5])


@st.composite
def invalid_dicts(draw: st.DrawFn) -> Any:
    data = draw(valid_dicts())
    kind = draw(st.sampled_from(["drop", "bad_value", "dist", "extra_key", "not_object"]))
    if kind == "drop":
        del data[draw(st.sampled_from(["fx", "fy", "cx", "cy", "width", "height"]))]
    elif kind == "bad_value":
        key = draw(st.sampled_from(["fx", "fy", "cx", "cy", "width", "height"]))
        value = draw(BAD_VALUES)
        data[key] = value
        assume(not _still_valid(data))
    elif kind == "dist":
        data["dist"] = draw(
            st.lists(st.floats(-1, 1), max_size=20).filter(lambda d: len(d) not in DIST_LENGTHS)
            | st.sampled_from(DIST_LENGTHS).flatmap(
                lambda n: st.lists(st.floats(-1, 1), min_size=n, max_size=n).flatmap(
                    lambda d: st.integers(0, n - 1).flatmap(
                        lambda i: BAD_VALUES.filter(lambda v: not isinstance(v, (int, float))
                                                    or isinstance(v, bool) or not math.isfinite(v))
                        .map(lambda v: d[:i] + [v] + d[i + 1:]))))
            | st.text(max_size=5) | st.floats() | st.dictionaries(st.text(max_size=2), st.integers()))
    elif kind == "extra_key":
        key = draw(st.text(max_size=8).filter(lambda k: k not in VALID and k != "dist"))
        data[key] = draw(st.integers() | st.text(max_size=3))
    else:
        return draw(st.lists(st.integers(), max_size=3) | st.text(max_size=5) | st.floats() | st.none())
    return data


def _still_valid(data: dict[str, Any]) -> bool:
    try:
        intrinsics_from_dict(data)
    except IntrinsicsError:
        return False
    return True


@given(data=invalid_dicts())
@FUZZ
def test_invalid_dicts_raise_intrinsics_error_only(tmp_path: Path, data: Any) -> None:
    path = write_raw(tmp_path / "K.json", data)
    with pytest.raises(IntrinsicsError) as info:
        load_intrinsics(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@given(data=st.dictionaries(st.sampled_from(["fx", "fy", "cx", "cy", "width", "height", "dist", "x"]),
                            json_values) | json_values)
@FUZZ
def test_arbitrary_json_loads_or_raises_intrinsics_error(tmp_path: Path, data: Any) -> None:
    path = write_raw(tmp_path / "K.json", data)
    try:
        load_intrinsics(path)
    except IntrinsicsError:
        pass


@given(raw=st.binary(max_size=64))
@FUZZ
def test_arbitrary_bytes_raise_intrinsics_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "K.json"
    path.write_bytes(raw)
    with pytest.raises(IntrinsicsError):
        load_intrinsics(path)


# --- scaling, defaults, video sizes -----------------------------------------------------------

class TestScaling:
    def test_scaled_to_values(self) -> None:
        intr = Intrinsics(fx=1000.0, fy=900.0, cx=959.5, cy=539.5, width=1920, height=1080, dist=DIST5)
        half = intr.scaled_to(960, 540)
        assert (half.fx, half.fy, half.width, half.height) == (500.0, 450.0, 960, 540)
        assert (half.cx, half.cy) == (479.5, 269.5)  # the centre stays the centre
        assert half.dist == intr.dist
        assert half.scaled_to(1920, 1080) == intr

    @given(data=valid_dicts(), width=sizes, height=sizes)
    @FUZZ
    def test_scaling_any_valid_intrinsics_stays_valid(self, data: dict[str, Any], width: int,
                                                      height: int) -> None:
        intr = intrinsics_from_dict(data)
        scaled = intr.scaled_to(width, height)  # never rejects its own output
        back = scaled.scaled_to(intr.width, intr.height)
        for name in ("fx", "fy", "cx", "cy"):
            assert getattr(back, name) == pytest.approx(getattr(intr, name), rel=1e-9, abs=1e-9)

    def test_matches_cv2_resize(self) -> None:
        """A scene point lands where cv2.resize moves the pixel it hit in the full image."""
        intr = Intrinsics(fx=800.0, fy=780.0, cx=300.2, cy=250.7, width=640, height=480)
        small = intr.scaled_to(160, 120)
        X = np.array([0.05, -0.03, 0.6])  # camera frame, metres
        u, v = (intr.K @ X)[:2] / X[2]
        u_s, v_s = (small.K @ X)[:2] / X[2]
        # images whose pixel values are their own source coordinates, resized by OpenCV
        xs = np.tile(np.arange(640, dtype=np.float32), (480, 1))
        ys = np.tile(np.arange(480, dtype=np.float32)[:, None], (1, 640))
        xs_s = cv2.resize(xs, (160, 120), interpolation=cv2.INTER_LINEAR)
        ys_s = cv2.resize(ys, (160, 120), interpolation=cv2.INTER_LINEAR)
        # resized pixel (i, j) shows source coordinates that are affine in (i, j); extend to (u_s, v_s)
        a = np.polyfit(np.arange(10, 150), xs_s[60, 10:150], 1)
        b = np.polyfit(np.arange(10, 110), ys_s[10:110, 80], 1)
        assert np.polyval(a, u_s) == pytest.approx(u, abs=1e-3)
        assert np.polyval(b, v_s) == pytest.approx(v, abs=1e-3)

    def test_default_intrinsics(self) -> None:
        intr = default_intrinsics(1280, 720)
        hfov = 2 * math.degrees(math.atan((intr.width / 2) / intr.fx))
        assert hfov == pytest.approx(DEFAULT_HFOV_DEG)
        assert intr.fx == intr.fy and intr.dist is None
        assert (intr.cx, intr.cy) == (639.5, 359.5)
        assert default_intrinsics(1280, 720, hfov_deg=90).fx == pytest.approx(640.0)
        with pytest.raises(IntrinsicsError, match="field of view"):
            default_intrinsics(1280, 720, hfov_deg=180)

    def test_for_video_same_size(self) -> None:
        intr = Intrinsics(**VALID)
        assert for_video(intr, 1920, 1080) == (intr, None)

    @pytest.mark.parametrize("size", [(1280, 720), (854, 480), (3840, 2160)])
    def test_for_video_scales_same_aspect(self, size: tuple[int, int]) -> None:
        intr = Intrinsics(**VALID)
        scaled, message = for_video(intr, *size)
        assert scaled == intr.scaled_to(*size)
        assert message is not None and "1920x1080" in message and f"{size[0]}x{size[1]}" in message

    @pytest.mark.parametrize("size", [(1440, 1080), (1920, 1088), (640, 480)])
    def test_for_video_rejects_other_aspect(self, size: tuple[int, int]) -> None:
        with pytest.raises(IntrinsicsError, match="aspect ratios differ") as info:
            for_video(Intrinsics(**VALID), *size)
        assert "rotated" not in str(info.value)

    @pytest.mark.parametrize("size", [(1080, 1920), (720, 1280)])
    def test_for_video_rotated_gets_hint(self, size: tuple[int, int]) -> None:
        with pytest.raises(IntrinsicsError, match="rotated by 90 degrees") as info:
            for_video(Intrinsics(**VALID), *size)
        assert "\n" not in str(info.value)


# --- undistortion ---------------------------------------------------------------------------

DISTS = {
    4: [0.05, -0.1, 0.001, -0.002],
    5: DIST5,
    8: [0.05, -0.1, 0.001, -0.002, 0.02, 0.01, -0.02, 0.01],
    12: [0.05, -0.1, 0.001, -0.002, 0.02, 0.01, -0.02, 0.01, 0.001, -0.001, 0.002, 0.0005],
    14: [0.05, -0.1, 0.001, -0.002, 0.02, 0.01, -0.02, 0.01, 0.001, -0.001, 0.002, 0.0005,
         0.01, -0.005],
}


class TestUndistort:
    @pytest.mark.parametrize("n", DIST_LENGTHS)
    def test_inverts_opencv_projection(self, n: int) -> None:
        intr = Intrinsics(fx=900.0, fy=910.0, cx=640.3, cy=359.2, width=1280, height=720, dist=DISTS[n])
        rng = np.random.default_rng(n)
        points_cam = np.column_stack([rng.uniform(-0.3, 0.3, (50, 2)), rng.uniform(0.5, 1.5, 50)])
        zero = np.zeros(3)
        distorted, _ = cv2.projectPoints(points_cam, zero, zero, intr.K, np.asarray(intr.dist))
        ideal, _ = cv2.projectPoints(points_cam, zero, zero, intr.K, None)
        assert np.abs(distorted - ideal).max() > 1.0  # the distortion is not negligible
        got = undistort_points(distorted.reshape(-1, 2), intr)
        assert got.shape == (50, 2) and got.dtype == np.float64
        np.testing.assert_allclose(got, ideal.reshape(-1, 2), atol=1e-6)

    def test_no_dist_is_identity_copy(self) -> None:
        intr = Intrinsics(**VALID)
        points = np.array([[10.0, 20.0], [1000.5, 700.25]])
        got = undistort_points(points, intr)
        np.testing.assert_array_equal(got, points)
        assert got is not points

    def test_empty_and_bad_shape(self) -> None:
        intr = Intrinsics(**VALID, dist=DIST5)
        assert undistort_points(np.zeros((0, 2)), intr).shape == (0, 2)
        with pytest.raises(ValueError, match=r"\(N, 2\)"):
            undistort_points(np.zeros((5, 3)), intr)
