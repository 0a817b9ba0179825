"""docs/outputs.md against baseio.schema, and baseio.schema against files the commands really write."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from baseio.schema import (BANK_JSON, BATCH_SUMMARY_CSV, CLIP_IDENTITY_JSON, EVAL_JSON, GT_CSV, IDENTITY_NPZ,
                           INDEX_CSV, JITTER_CSV, JITTER_JSON, K_JSON, MEDIAPIPE_SUMMARY_JSON, MESHES_NPZ, POSES_CSV,
                           SAMPLE_INFO_NPZ, SCHEMAS, TRACK_SUMMARY_JSON, TRAIN_LOG_CSV, FileSchema, json_paths,
                           undeclared_keys)
from perspnet.synth.clips import ClipConfig, write_clip
from tracker.identity import IdentityConfig
from tracker.measure import MeasureConfig
from tracker.online import OnlineConfig

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS_MD = ROOT / "docs" / "outputs.md"
BLOCK = re.compile(r"<!-- schema: ([^>]+?) -->\n(.*?)<!-- /schema -->", re.S)
# the tiny checkpoint predicts nothing useful: accept every frame so that every output is written
LOOSE = OnlineConfig(min_mask_fraction=0.0, measure=MeasureConfig(min_confidence=0.0),
                     identity=IdentityConfig(min_confidence=0.0))


def _documented() -> dict[str, list[tuple[str, ...]]]:
    """``{schema id: [(name, unit, frame, meaning, empty), ...]}`` from the tables of docs/outputs.md."""
    blocks: dict[str, list[tuple[str, ...]]] = {}
    for schema_id, body in BLOCK.findall(OUTPUTS_MD.read_text(encoding="utf-8")):
        assert schema_id not in blocks, f"docs/outputs.md documents {schema_id} twice"
        rows = [line for line in body.splitlines() if line.startswith("|")][2:]  # header and rule left out
        cells = [tuple(c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)[1:-1]) for row in rows]
        blocks[schema_id] = [(c[0].strip("`"), *c[1:]) for c in cells]
    return blocks


def _top_level(file_schema: FileSchema) -> set[str]:
    return {f.name for f in file_schema.fields if "." not in f.name}


def test_every_schema_is_documented_once_and_nothing_else():
    documented = _documented()
    assert set(documented) == set(SCHEMAS)


@pytest.mark.parametrize("schema_id", sorted(SCHEMAS))
def test_documented_fields_match_the_schema(schema_id):
    rows = _documented()[schema_id]
    expected = [(f.name, f.unit, f.frame, f.meaning, f.empty) for f in SCHEMAS[schema_id].fields]
    assert [r[0] for r in rows] == [e[0] for e in expected], "names or order differ"
    assert {r[0]: r[1] for r in rows} == {e[0]: e[1] for e in expected}, "units differ"
    assert rows == expected, "frame, meaning or 'empty when' differ: run scripts/make_doc_tables.py"


def test_readme_option_tables_are_those_of_the_parsers():
    spec = importlib.util.spec_from_file_location("make_doc_tables", ROOT / "scripts" / "make_doc_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert tables.render(readme, tables.command_parsers()) == readme, "run scripts/make_doc_tables.py"


def test_undeclared_keys_finds_what_the_schema_lacks():
    written = {"units": {"tx": "mm"}, "runs": [{"label": "a", "gt_error": None},
                                               {"label": "b", "gt_error": {"n_matched": 3, "extra": 1}}],
               "stray": 1}
    assert json_paths(written) == ["units", "units.tx", "runs", "runs[].label", "runs[].gt_error",
                                   "runs[].gt_error.n_matched", "runs[].gt_error.extra", "stray"]
    assert undeclared_keys(JITTER_JSON, written) == ["runs[].gt_error.extra", "stray"]


def _csv_header(path: Path) -> tuple[str, ...]:
    return tuple(path.read_text(encoding="utf-8").splitlines()[0].split(","))


@pytest.fixture(scope="module")
def clip(tmp_path_factory, test_generator):
    cfg = ClipConfig(motion="approach", frames=12, width=320, height=240, fx=300.0)
    return write_clip(tmp_path_factory.mktemp("clip"), 5, cfg, test_generator)


def test_synth_clip_files_match_the_schema(clip):
    assert _csv_header(clip / "gt.csv") == GT_CSV.names
    k = json.loads((clip / "K.json").read_text())
    assert undeclared_keys(K_JSON, k) == [] and set(K_JSON.names) - set(k) == {"dist"}
    identity = json.loads((clip / "identity.json").read_text())
    assert list(identity) == list(CLIP_IDENTITY_JSON.names)


def test_track_video_and_analyze_jitter_outputs_match_the_schema(clip, tiny_checkpoint, tmp_path):
    from pipelines.analyze_jitter import main as analyze_main
    from pipelines.track_video import TrackConfig, track_video

    out = tmp_path / "track"
    result = track_video(TrackConfig(video=clip / "video.mp4", intrinsics=clip / "K.json", out=out,
                                     checkpoint=tiny_checkpoint, device="cpu", save_meshes=True, min_run_frames=1,
                                     tracker=LOOSE), notify=None)
    assert _csv_header(out / "poses.csv") == POSES_CSV.names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["identity"] is not None and summary["frames_with_pose"] > 0  # the nested keys are there
    assert undeclared_keys(TRACK_SUMMARY_JSON, summary) == []
    assert set(summary) == _top_level(TRACK_SUMMARY_JSON)
    assert set(json_paths(summary)) >= {f.name for f in TRACK_SUMMARY_JSON.fields
                                        if "<" not in f.name and f.name != "camera.dist"}
    with np.load(out / "identity.npz") as npz:
        assert set(npz.files) == set(IDENTITY_NPZ.names)
    with np.load(out / "meshes.npz") as npz:
        assert set(npz.files) == set(MESHES_NPZ.names)
    assert result.summary == summary

    assert analyze_main([str(out / "poses.csv"), "--gt", str(clip / "gt.csv"), "--out", str(tmp_path / "j")]) == 0
    assert _csv_header(tmp_path / "j" / "jitter.csv") == JITTER_CSV.names
    jitter = json.loads((tmp_path / "j" / "jitter.json").read_text())
    assert [r["label"] for r in jitter["runs"]] == ["poses:filtered", "poses:raw"]
    assert undeclared_keys(JITTER_JSON, jitter) == []
    without_reference = [f for f in JITTER_JSON.fields if not f.name.startswith("oversmoothing")]
    assert set(json_paths(jitter)) == {f.name.replace("<axis>", a) for f in without_reference
                                       for a in ("tx", "ty", "tz", "yaw", "pitch", "roll")}


def test_mediapipe_track_outputs_match_the_schema(clip, tmp_path):
    from pipelines.mediapipe_track import MediaPipeTrackConfig, mediapipe_track

    _, summary = mediapipe_track(MediaPipeTrackConfig(clip / "video.mp4", clip / "K.json", tmp_path / "mp"))
    assert _csv_header(tmp_path / "mp" / "poses.csv") == POSES_CSV.names
    written = json.loads((tmp_path / "mp" / "summary.json").read_text())
    assert undeclared_keys(MEDIAPIPE_SUMMARY_JSON, written) == []
    assert set(written) == _top_level(MEDIAPIPE_SUMMARY_JSON)


def test_training_and_sample_files_match_the_schema(tiny_checkpoint, tiny_data):
    assert _csv_header(Path(tiny_checkpoint).parent / "train_log.csv") == TRAIN_LOG_CSV.names
    assert _csv_header(tiny_data / "index.csv") == INDEX_CSV.names
    info = next((tiny_data / "info").rglob("*_info.npz"))
    with np.load(info) as npz:
        assert set(npz.files) <= set(SAMPLE_INFO_NPZ.names) and {"verts", "R_t", "K"} <= set(npz.files)


def test_eval_json_matches_the_schema(tiny_checkpoint, tiny_data, tmp_path):
    from pipelines.eval_cli import main as eval_main

    path = tmp_path / "eval.json"
    assert eval_main(["--data", str(tiny_data), "--checkpoint", str(tiny_checkpoint), "--limit", "3",
                      "--device", "cpu", "--json", str(path)]) == 0
    results = json.loads(path.read_text())
    assert list(results) == ["perspnet"]
    assert undeclared_keys(EVAL_JSON, results) == []
    assert list(results["perspnet"]) == [n.split(".", 1)[1] for n in EVAL_JSON.names[1:]]


def test_bank_json_and_batch_summary_match_the_schema(bank, tmp_path):
    from perspnet.assets import cache_dir
    from pipelines.batch_summary import ClipOutcome, write_summary_csv

    index = json.loads((cache_dir() / "bank" / "bank.json").read_text())
    assert undeclared_keys(BANK_JSON, index) == [] and set(index) == _top_level(BANK_JSON)
    write_summary_csv(tmp_path / "summary.csv", [ClipOutcome(clip="a.mp4", status="failed", message="bad")])
    assert tuple(pd.read_csv(tmp_path / "summary.csv").columns) == BATCH_SUMMARY_CSV.names
