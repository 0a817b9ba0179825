"""The columns of every CSV and the keys of every JSON and NPZ file the commands write, declared once.

Writers take their column lists from here (``POSES_CSV.names``), ``docs/outputs.md`` documents the same
fields (``tests/test_outputs_doc.py`` checks both against this module), so a column cannot be added to a
file without being described.

Each :class:`Field` carries a unit, a frame and when the value is empty. Units: ``s``, ``m``, ``mm``,
``deg``, ``px``, ``count``, ``frames/s``, ``ms/frame``, ``0/1`` (a flag), ``-`` (dimensionless or text).
Frames: ``camera`` (OpenCV camera frame: x right, y down, z forward, :mod:`perspnet.conventions`),
``face`` (canonical face frame), ``image`` (pixels, origin at the top-left pixel's centre), ``ARKit``
(ARKitFace's own conventions, converted in :mod:`perspnet.datasets.arkit`), ``-`` (none).

JSON keys are dotted paths: ``camera.fx``; ``runs[].label`` is a key of every element of the list ``runs``;
``<name>`` matches any key (``box_sources.<source>``). A field whose ``ref`` names another schema holds an
object laid out as that schema (``jitter`` in ``summary.json`` is a ``jitter.json`` object).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Field", "FileSchema", "SCHEMAS", "schema", "POSES_CSV", "GT_CSV", "GT_FACES_CSV", "BATCH_SUMMARY_CSV", "JITTER_CSV",
           "TRAIN_LOG_CSV", "INDEX_CSV", "TRACK_SUMMARY_JSON", "MEDIAPIPE_SUMMARY_JSON", "JITTER_JSON", "EVAL_JSON",
           "K_JSON", "CLIP_IDENTITY_JSON", "BANK_JSON", "BATCH_DONE_JSON", "IDENTITY_NPZ", "MESHES_NPZ",
           "SAMPLE_INFO_NPZ", "AXIS_UNITS", "json_paths", "undeclared_keys"]

AXIS_UNITS = {"tx": "mm", "ty": "mm", "tz": "mm", "yaw": "deg", "pitch": "deg", "roll": "deg"}
KINDS = ("csv", "json", "npz")


@dataclass(frozen=True)
class Field:
    """One CSV column, JSON key or NPZ array.

    Attributes:
        name: column name, dotted JSON path or array name.
        unit: see the module docstring; ``-`` for none.
        frame: ``camera``, ``face``, ``image``, ``ARKit`` or ``-``.
        meaning: one sentence.
        empty: when the cell is empty (CSV), null or absent (JSON); ``never`` when always filled.
        ref: the id of the schema this JSON object follows, or "".
    """

    name: str
    unit: str
    frame: str
    meaning: str
    empty: str = "never"
    ref: str = ""


@dataclass(frozen=True)
class FileSchema:
    """The layout of one kind of output file.

    Attributes:
        id: unique key of :data:`SCHEMAS`, the file name or ``name (writer)`` when two writers differ.
        file: the file name as written (a pattern such as ``<id>_info.npz`` for many files).
        kind: ``csv``, ``json`` or ``npz``.
        commands: the commands that write it.
        fields: the columns (in file order) or keys.
    """

    id: str
    file: str
    kind: str
    commands: tuple[str, ...]
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.id}: a field is declared twice")

    @property
    def names(self) -> tuple[str, ...]:
        """The field names in declaration (file) order."""
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        """The field called ``name``; KeyError if there is none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.id}: no field {name!r}")


def _pose(prefix: str, what: str, empty: str) -> tuple[Field, ...]:
    """quaternion, translation and reporting Euler angles of ``R_cam_face``, ``t_cam_face``."""
    quat = [Field(f"{prefix}q{c}", "-", "camera", f"{what}: component {c} of the unit quaternion (w, x, y, z), "
                  "w >= 0, of R_cam_face (X_cam = R X + t)", empty) for c in "wxyz"]
    trans = [Field(f"{prefix}t{c}", "m", "camera", f"{what}: {c} of t_cam_face, the face origin in the camera frame",
                   empty) for c in "xyz"]
    euler = [Field(f"{prefix}{a}_deg", "deg", "camera", f"{what}: {a} of the reporting Euler angles, "
                   "R = Ry(yaw) Rx(pitch) Rz(roll)", empty) for a in ("yaw", "pitch", "roll")]
    return (*quat, *trans, *euler)


_NO_POSE = "success is 0"
POSES_CSV = FileSchema("poses.csv", "poses.csv", "csv", ("track-video", "mediapipe-track", "batch-process"), (
    Field("frame", "-", "-", "0-based index of the decoded frame in the video stream"),
    Field("face_id", "-", "-", "the face's persistent id, 0, 1, 2 ... in order of first appearance (one row per "
          "frame and tracked face; mediapipe-track: always 0)", "no face is tracked on the frame (success is 0)"),
    Field("timestamp_s", "s", "-", "stream timestamp of the frame (pts x time_base)"),
    Field("success", "0/1", "-", "1: the frame has an accepted pose measurement in a confirmed run "
          "(--min-run-frames); 0: no pose"),
    Field("confidence", "-", "-", "PnP confidence in [0, 1]", "never (0 when success is 0)"),
    Field("inliers", "count", "-", "PnP-RANSAC inlier correspondences", _NO_POSE),
    Field("reproj_err_px", "px", "image", "RMS reprojection error of the inliers", _NO_POSE),
    *_pose("", "filtered pose", "success is 0"),
    *_pose("raw_", "per-frame PnP pose (unfiltered)", _NO_POSE),
    Field("box_x", "px", "image", "left edge of the face box the network (or landmarker) ran on",
          "no face box on the frame"),
    Field("box_y", "px", "image", "top edge of the face box", "no face box on the frame"),
    Field("box_w", "px", "image", "width of the face box", "no face box on the frame"),
    Field("box_h", "px", "image", "height of the face box", "no face box on the frame"),
    Field("shape_dev_mm", "mm", "face", "mean per-vertex distance between the frame's own predicted shape "
          "(similarity-aligned) and the clip's identity shape", "success is 0; always in mediapipe-track"),
))

GT_CSV = FileSchema("gt.csv", "gt.csv", "csv", ("perspnet-synth clip",), (
    Field("frame", "-", "-", "0-based frame index, as poses.csv's frame"),
    Field("timestamp_s", "s", "-", "frame time"),
    *(f for f in _pose("", "true pose", "never") if not f.name.endswith("_deg")),
))

GT_FACES_CSV = FileSchema("gt.csv (--faces 2)", "gt.csv", "csv", ("perspnet-synth clip --faces 2",), (
    GT_CSV.fields[0],
    Field("face_id", "-", "-", "the face: 0 the nearer (in front), 1 the farther; one row per frame and face whose "
          "centre is in view (gt_<id>.csv: one face, gt.csv's layout)"),
    *GT_CSV.fields[1:],
))

BATCH_SUMMARY_CSV = FileSchema("summary.csv", "summary.csv", "csv", ("batch-process",), (
    Field("clip", "-", "-", "the clip's path relative to the clips folder"),
    Field("status", "-", "-", "ok, no_face (no face found in the clip), no_pose (a face was found but every pose "
          "was dropped), failed, or skipped (complete from an earlier run; its values are that run's)"),
    Field("frames", "count", "-", "decoded frames", "status failed"),
    Field("detection_rate", "-", "-", "fraction of the frames with a pose, in [0, 1]", "status failed"),
    Field("fps", "frames/s", "-", "processing speed of the clip's track-video run (wall time)", "status failed"),
    Field("d2_rms_tz_mm", "mm", "camera", "jitter of the filtered tz: RMS of the per-frame second difference",
          "failed, or fewer than 3 consecutive poses"),
    Field("d2_rms_yaw_deg", "deg", "camera", "the same for yaw", "failed, or fewer than 3 consecutive poses"),
    Field("raw_d2_rms_tz_mm", "mm", "camera", "the same for the raw per-frame tz",
          "failed, or fewer than 3 consecutive poses"),
    Field("raw_d2_rms_yaw_deg", "deg", "camera", "the same for the raw per-frame yaw",
          "failed, or fewer than 3 consecutive poses"),
    Field("intrinsics", "-", "-", "where K came from: sidecar (<clip>.K.json), batch (--intrinsics) or default "
          "(default field of view)"),
    Field("output", "-", "-", "the clip's output folder relative to --out"),
    Field("message", "-", "-", "failed: the one-line reason; ok: track-video's notes and warnings joined "
          "with ' | '", "ok without notes"),
))


def _axis_fields(kind: str, meaning: str, empty: str) -> tuple[Field, ...]:
    return tuple(Field(f"{kind}_{a}_{u}", u, "camera", f"{meaning} of {a}", empty) for a, u in AXIS_UNITS.items())


_NO_GT = "column absent without --gt; empty for a run with no frame matching the ground truth"
JITTER_CSV = FileSchema("jitter.csv", "jitter.csv", "csv", ("analyze-jitter",), (
    Field("run", "-", "-", "run label: the file's label, with :filtered or :raw for a poses.csv with raw_ columns"),
    Field("n_frames", "count", "-", "rows of the run"),
    Field("n_valid", "count", "-", "rows with a pose"),
    *_axis_fields("d2_rms", "RMS of the per-frame second difference x[f+1] - 2 x[f] + x[f-1] over consecutive "
                  "valid frames", "fewer than 3 consecutive valid frames"),
    *_axis_fields("sg_rms", "RMS residual from a Savitzky-Golay fit (window and order in jitter.json)",
                  "no valid run as long as the window"),
    Field("n_matched", "count", "-", "frames joined with the ground truth on frame", "column absent without --gt"),
    *_axis_fields("mae", "mean absolute error against the ground truth", _NO_GT),
    Field("mae_t_mm", "mm", "camera", "mean Euclidean translation error against the ground truth", _NO_GT),
    Field("mae_r_deg", "deg", "camera", "mean geodesic angle between estimated and true rotation", _NO_GT),
))

TRAIN_LOG_CSV = FileSchema("train_log.csv", "train_log.csv", "csv", ("perspnet-train",), (
    Field("step", "count", "-", "optimizer steps done"),
    Field("total", "-", "-", "weighted training loss, mean over the last --log-every steps"),
    Field("shape", "0.1 m", "face", "L_S: L1 of the UV position map (network units, 1 = 0.1 m)"),
    Field("kl", "-", "-", "KL term of the correspondence matrix loss"),
    Field("entropy", "-", "-", "entropy term of the correspondence matrix loss"),
    Field("corr", "0.1 m", "face", "L_corr: L1 of the corresponding canonical points (network units)"),
    Field("seg", "-", "-", "face mask cross-entropy"),
    Field("rotation", "rad", "face", "small-angle rigid rotation in the correspondences' error (logged, "
          "not part of the loss)"),
    Field("lr", "-", "-", "learning rate at this step"),
    Field("seconds", "s", "-", "wall time since the (re)start of the run"),
))

INDEX_CSV = FileSchema("index.csv", "index.csv", "csv", ("perspnet-synth samples",), (
    Field("subject_id", "-", "-", "identity name (a path part: image/<subject_id>/...)"),
    Field("facial_action", "-", "-", "ARKitFace action folder"),
    Field("img_id", "-", "-", "sample id <seed>_<index>"),
    Field("split", "-", "-", "train or test (held-out subjects)"),
    Field("ipd_mm", "mm", "face", "interpupillary distance of the sample's face"),
    Field("yaw_deg", "deg", "camera", "true yaw (reporting Euler angles)"),
    Field("pitch_deg", "deg", "camera", "true pitch"),
    Field("roll_deg", "deg", "camera", "true roll"),
    Field("tz_m", "m", "camera", "true distance of the face origin along the camera axis"),
    Field("width", "px", "image", "image width"),
    Field("height", "px", "image", "image height"),
))

_K_FIELDS = (("fx", "focal length in x"), ("fy", "focal length in y"), ("cx", "principal point x"),
             ("cy", "principal point y"), ("width", "image width K is calibrated for"),
             ("height", "image height K is calibrated for"))
K_JSON = FileSchema("K.json", "K.json", "json", ("perspnet-synth clip",), (
    *(Field(k, "px", "image", m) for k, m in _K_FIELDS),
    Field("dist", "-", "image", "lens distortion in OpenCV's order (k1 k2 p1 p2 [k3 ...]; 4, 5, 8, 12 or 14 numbers)",
          "absent: no distortion"),
))

JITTER_JSON = FileSchema("jitter.json", "jitter.json", "json", ("analyze-jitter",), (
    Field("units", "-", "-", "unit of each axis"),
    Field("units.<axis>", "-", "-", "mm for tx ty tz, deg for yaw pitch roll"),
    Field("second_diff", "-", "-", "how the second difference is taken (text)"),
    Field("savgol", "-", "-", "Savitzky-Golay fit settings"),
    Field("savgol.window_frames", "count", "-", "fit window"),
    Field("savgol.polyorder", "-", "-", "polynomial order"),
    Field("runs", "-", "-", "one object per run, as the rows of jitter.csv"),
    Field("runs[].label", "-", "-", "run label"),
    Field("runs[].source", "-", "-", "the file the run came from"),
    Field("runs[].n_frames", "count", "-", "rows of the run"),
    Field("runs[].n_valid", "count", "-", "rows with a pose"),
    Field("runs[].second_diff_rms", "-", "-", "per axis"),
    Field("runs[].second_diff_rms.<axis>", "mm or deg", "camera", "RMS of the per-frame second difference",
          "null: fewer than 3 consecutive valid frames"),
    Field("runs[].savgol_residual_rms", "-", "-", "per axis"),
    Field("runs[].savgol_residual_rms.<axis>", "mm or deg", "camera", "RMS residual from the Savitzky-Golay fit",
          "null: no valid run as long as the window"),
    Field("runs[].gt_error", "-", "-", "errors against the ground truth", "null without --gt"),
    Field("runs[].gt_error.n_matched", "count", "-", "frames joined with the ground truth"),
    Field("runs[].gt_error.mae", "-", "-", "per axis"),
    Field("runs[].gt_error.mae.<axis>", "mm or deg", "camera", "mean absolute error", "null: no frame matched"),
    Field("runs[].gt_error.mae_t_mm", "mm", "camera", "mean Euclidean translation error", "null: no frame matched"),
    Field("runs[].gt_error.mae_r_deg", "deg", "camera", "mean geodesic rotation error", "null: no frame matched"),
    Field("oversmoothing", "-", "-", "over-smoothing measured against an independent track of the clip",
          "absent without --reference"),
    Field("oversmoothing.reference", "-", "-", "the --reference file (its raw poses are used)"),
    Field("oversmoothing.highpass", "-", "-", "high-pass applied to both residuals: minus a Savitzky-Golay fit"),
    Field("oversmoothing.highpass.window_frames", "count", "-", "fit window"),
    Field("oversmoothing.highpass.polyorder", "-", "-", "polynomial order"),
    Field("oversmoothing.runs", "-", "-", "one object per input with filtered and raw poses"),
    Field("oversmoothing.runs[].label", "-", "-", "the input's label"),
    Field("oversmoothing.runs[].reference_label", "-", "-", "label of the reference's run"),
    Field("oversmoothing.runs[].n_frames", "count", "-", "frames valid in all three tracks, in stretches of at "
          "least the window"),
    Field("oversmoothing.runs[].corr", "-", "-", "per axis"),
    Field("oversmoothing.runs[].corr.<axis>", "-", "camera", "correlation of (raw - filtered) with (reference - "
          "filtered), both high-passed: about 0 when the filter removes noise only, towards 1 when it removes "
          "motion", "null: fewer than 3 frames, or a residual is constant"),
))


def _stage_fields() -> tuple[Field, ...]:
    return (Field("stage_seconds", "-", "-", "wall time per stage"),
            Field("stage_seconds.<stage>", "s", "-", "time in one stage (decode, detect, network, pnp, ...)"),
            Field("stage_ms_per_frame", "-", "-", "stage_seconds per frame"),
            Field("stage_ms_per_frame.<stage>", "ms/frame", "-", "time in one stage per decoded frame"))


def _common_summary(command: str) -> tuple[Field, ...]:
    return (Field("video", "-", "-", "the input video's path"),
            Field("out_dir", "-", "-", "the output folder"),
            Field("frames", "count", "-", "decoded frames"),
            Field("frames_with_pose", "count", "-", "frames with success 1"),
            Field("detection_rate", "-", "-", "frames_with_pose / frames, in [0, 1]"),
            Field("processing_fps", "frames/s", "-", "frames per second of the whole run (wall time)",
                  "null: no time elapsed"),
            Field("total_seconds", "s", "-", "wall time of the whole run"),
            *_stage_fields(),
            Field("filter", "-", "-", "--filter: none, forward or smooth"),
            Field("jitter", "-", "-", f"jitter.json's object for poses.csv (runs {command}:filtered and "
                  f"{command}:raw; only {command}:raw with --filter none)", ref="jitter.json"),
            Field("notes", "-", "-", "notes and warnings shown during the run (K scaled, default field of view, "
                  "several faces, decode errors)"))


TRACK_SUMMARY_JSON = FileSchema("summary.json (track-video)", "summary.json", "json", ("track-video", "batch-process"), (
    *_common_summary("perspnet"),
    Field("status", "-", "-", "ok (some face has a pose), no_face (the detector never found a face) or no_pose "
          "(a face was found but every pose was dropped; a warning in notes says why)"),
    Field("detector_calls", "count", "-", "runs of MediaPipe's face detector"),
    Field("box_sources", "-", "-", "frames per source of the face box"),
    Field("box_sources.<source>", "count", "-", "track (predicted pose), detect, reanchor, redetect, detect-reuse "
          "or none"),
    Field("cold_fallbacks", "count", "-", "frames where the warm-started PnP was inconsistent and a cold start "
          "was used"),
    Field("reanchors", "count", "-", "detector runs that found the face where the track already was"),
    Field("redetections", "count", "-", "detector runs after the box seemed to have lost the face"),
    Field("batch_size", "count", "-", "--batch-size"),
    Field("device", "-", "-", "torch device the network ran on"),
    Field("checkpoint", "-", "-", "--checkpoint, or 'shipped'"),
    Field("camera", "-", "-", "the K used (scaled to the video when needed)"),
    Field("camera.source", "-", "-", "the K.json path, or the default field of view"),
    *(Field(f"camera.{k}", "px", "image", m) for k, m in _K_FIELDS),
    Field("camera.dist", "-", "image", "lens distortion (OpenCV order)", "absent: no distortion"),
    Field("video_info", "-", "-", "the decoded stream"),
    Field("video_info.width", "px", "image", "frame width after rotation metadata"),
    Field("video_info.height", "px", "image", "frame height after rotation metadata"),
    Field("video_info.avg_fps", "frames/s", "-", "the container's average frame rate", "null: unknown"),
    Field("video_info.rotation_deg", "deg", "-", "rotation metadata applied to the frames"),
    Field("video_info.codec", "-", "-", "codec name"),
    Field("video_info.decode", "-", "-", "one line: frames decoded, and the first decode error if any"),
    Field("identity", "-", "-", "the clip's identity shape", "null: no frame had a confident pose"),
    Field("identity.ipd_mm", "mm", "face", "IPD of the identity shape (eye centres, after --ipd-mm scaling)"),
    Field("identity.size_ipd_mm", "mm", "face", "IPD implied by the shape's eye region size"),
    Field("identity.ipd_mm_requested", "mm", "face", "--ipd-mm", "null without --ipd-mm"),
    Field("identity.scale_applied", "-", "-", "factor applied to every translation and the shape (1 without "
          "--ipd-mm)"),
    Field("identity.ipd_method", "-", "-", "eyes (landmarker's eye corners) or size (shape's eye region)",
          "null without --ipd-mm"),
    Field("identity.ipd_size_factor", "-", "-", "scale found from the shape's eye region", "null without --ipd-mm"),
    Field("identity.ipd_eye_frames", "count", "-", "usable frames with eye corners", "null without --ipd-mm"),
    Field("identity.frames_used", "count", "-", "confident frames the identity was estimated from"),
    Field("identity.samples_kept", "count", "-", "per-frame shapes kept for the robust estimate"),
    Field("identity.max_residual_mm", "mm", "face", "bound on a frame shape's residual from the identity"),
    Field("shape_dev_mm", "-", "-", "poses.csv's shape_dev_mm over frames with a pose", "null: no pose"),
    Field("shape_dev_mm.median", "mm", "face", "median"),
    Field("shape_dev_mm.p95", "mm", "face", "95th percentile"),
    Field("faces_option", "-", "-", "--faces: all, largest or N"),
    Field("faces", "-", "-", "one object per tracked face, by face_id (identity and shape_dev_mm above are face 0's)",
          "[] without a face"),
    Field("faces[].face_id", "-", "-", "the face's id in poses.csv (0, 1, ... by first appearance)"),
    Field("faces[].frames_tracked", "count", "-", "frames with a pose of this face"),
    Field("faces[].first_frame", "-", "-", "first frame with a pose of this face"),
    Field("faces[].last_frame", "-", "-", "last frame with a pose of this face"),
    Field("faces[].ipd_mm", "mm", "face", "IPD of its identity shape (identity_<id>.npz)",
          "null: no frame confident enough for an identity"),
    Field("faces[].tracks", "count", "-", "online tracks joined into this face (more than 1: it was lost and found "
          "again, and recognised by its shape and colouring)"),
    Field("faces[].notes", "-", "-", "notes about this face"),
))

MEDIAPIPE_SUMMARY_JSON = FileSchema("summary.json (mediapipe-track)", "summary.json", "json", ("mediapipe-track",), (
    *_common_summary("mediapipe"),
    Field("method", "-", "-", "mediapipe_pnp"),
    Field("camera", "-", "-", "the K used, K.json's keys"),
    *(Field(f"camera.{k}", "px", "image", m) for k, m in _K_FIELDS),
    Field("camera.dist", "-", "image", "lens distortion (OpenCV order)", "absent: no distortion"),
    Field("decode", "-", "-", "one line: frames decoded, and the first decode error if any"),
))

_METRICS = (("yaw", "deg", "camera", "mean absolute yaw error"), ("pitch", "deg", "camera", "mean absolute pitch error"),
            ("roll", "deg", "camera", "mean absolute roll error"),
            ("mae_r", "deg", "camera", "MAE_r: mean of the three Euler angle errors"),
            ("tx", "mm", "camera", "mean absolute tx error"), ("ty", "mm", "camera", "mean absolute ty error"),
            ("tz", "mm", "camera", "mean absolute tz error"),
            ("mae_t", "mm", "camera", "MAE_t: mean of the three translation errors"),
            ("add", "mm", "camera", "ADD: mean distance between predicted and true vertices in the camera frame"),
            ("shape_median_mm", "mm", "face", "median shape error (paper Table 4)"),
            ("shape_mean_mm", "mm", "face", "mean shape error"),
            ("n", "count", "-", "samples scored"),
            ("mae_t_sized", "mm", "camera", "MAE_t with the prediction rescaled to the true IPD"),
            ("add_sized", "mm", "camera", "ADD with the prediction rescaled to the true IPD"),
            ("failures", "count", "-", "samples without a pose (no face found or PnP failed), left out of the means"))
EVAL_JSON = FileSchema("perspnet-eval --json", "<--json>", "json", ("perspnet-eval",), (
    Field("<method>", "-", "-", "one object per method: perspnet, mediapipe_pnp, direct_regress (with --baselines)"),
    *(Field(f"<method>.{k}", u, fr, m, "null: no sample scored (or BIWI: add, shape and sized errors)")
      for k, u, fr, m in _METRICS),
))

CLIP_IDENTITY_JSON = FileSchema("identity.json", "identity.json", "json", ("perspnet-synth clip",), (
    Field("name", "-", "-", "face bank identity"),
    Field("split", "-", "-", "train or test"),
    Field("ipd_mm", "mm", "face", "the face's IPD"),
    Field("motion", "-", "-", "--motion"),
    Field("seed", "-", "-", "--seed"),
    Field("fps", "frames/s", "-", "frame rate"),
    Field("frames", "count", "-", "frames rendered"),
    Field("note", "-", "-", "what verts_face_m is (text)"),
    Field("verts_face_m", "m", "face", "(468, 3) neutral identity shape; frames with an expression add an offset"),
))

BANK_JSON = FileSchema("bank.json", "bank.json", "json", ("perspnet-synth bank",), (
    Field("format", "-", "-", "bank format version"),
    Field("atlas_size", "px", "-", "side of each identity's texture atlas"),
    Field("identities", "-", "-", "one object per identity, each with its <name>.npz beside bank.json"),
    Field("identities[].name", "-", "-", "identity name"),
    Field("identities[].split", "-", "-", "train or test (perspnet/synth/bank.py: TEST_SUBJECTS)"),
    Field("identities[].source", "-", "-", "the photo or video it came from"),
    Field("identities[].n_expressions", "count", "-", "per-frame expression offsets (videos)"),
))

BATCH_DONE_JSON = FileSchema(".batch-done.json", ".batch-done.json", "json", ("batch-process",), (
    Field("inputs", "-", "-", "fingerprint: a clip whose inputs changed is tracked again"),
    Field("inputs.video", "-", "-", "[size in bytes, modification time in ns] of the clip"),
    Field("inputs.intrinsics", "-", "-", "[source, and for a K.json its size and modification time]"),
    Field("outcome", "-", "-", "the clip's summary.csv row"),
    Field("outcome.<column>", "-", "-", "a summary.csv column (see there), or detail (a traceback, empty)",
          "null where summary.csv's cell is empty"),
))

IDENTITY_NPZ = FileSchema("identity.npz", "identity.npz", "npz", ("track-video",), (
    Field("verts_face_m", "m", "face", "(468, 3) the clip's identity shape"),
    Field("triangles", "-", "-", "(T, 3) 0-based vertex indices"),
    Field("ipd_mm", "mm", "face", "its IPD"),
    Field("scale", "-", "-", "factor applied for --ipd-mm (1 without)"),
    Field("frames_used", "count", "-", "confident frames it was estimated from"),
))

MESHES_NPZ = FileSchema("meshes.npz", "meshes.npz", "npz", ("track-video --save-meshes",), (
    Field("verts_cam_m", "m", "camera", "(N, 468, 3) float32 per-frame mesh (identity + expression, filtered pose)",
          "nan for frames without a filtered pose"),
    Field("triangles", "-", "-", "(T, 3) 0-based vertex indices"),
    Field("frame", "-", "-", "(N,) frame indices"),
    Field("timestamp_s", "s", "-", "(N,) stream timestamps"),
    Field("valid", "0/1", "-", "(N,) bool, the frame has a filtered pose"),
))

SAMPLE_INFO_NPZ = FileSchema("info.npz", "info/<subject>/<action>/<id>_info.npz", "npz",
                             ("perspnet-synth samples",), (
    Field("verts", "m", "ARKit", "(468, 3) float32 vertices in ARKitFace's face-anchor frame (y up, z back)"),
    Field("R_t", "m", "ARKit", "(4, 4) ARKitFace's row-vector pose (OpenGL camera)"),
    Field("K", "px", "image", "(3, 3) camera matrix"),
    Field("ipd_mm", "mm", "face", "the face's IPD", "absent in real ARKitFace"),
    Field("dist", "-", "image", "lens distortion (OpenCV order)", "absent: no distortion"),
))

SCHEMAS: dict[str, FileSchema] = {s.id: s for s in (
    POSES_CSV, GT_CSV, GT_FACES_CSV, BATCH_SUMMARY_CSV, JITTER_CSV, TRAIN_LOG_CSV, INDEX_CSV, TRACK_SUMMARY_JSON,
    MEDIAPIPE_SUMMARY_JSON, JITTER_JSON, EVAL_JSON, K_JSON, CLIP_IDENTITY_JSON, BANK_JSON, BATCH_DONE_JSON,
    IDENTITY_NPZ, MESHES_NPZ, SAMPLE_INFO_NPZ)}


def schema(schema_id: str) -> FileSchema:
    """The schema called ``schema_id`` (a key of :data:`SCHEMAS`); KeyError naming the known ids otherwise."""
    try:
        return SCHEMAS[schema_id]
    except KeyError:
        raise KeyError(f"no output schema {schema_id!r}; known: {', '.join(SCHEMAS)}") from None


def json_paths(obj: object, prefix: str = "") -> list[str]:
    """Every key path of a JSON value in the notation of :class:`Field` (``a.b``, ``runs[].label``), list
    elements merged; the values of leaves are not looked at."""
    paths: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths += [path, *json_paths(value, path)]
    elif isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        for value in obj:
            paths += [p for p in json_paths(value, prefix + "[]") if p not in paths]
    return paths


def _matches(pattern: str, path: str) -> bool:
    parts, names = pattern.split("."), path.split(".")
    return len(parts) == len(names) and all(p == n or (p.startswith("<") and p.endswith(">"))
                                            for p, n in zip(parts, names))


def undeclared_keys(file_schema: FileSchema, obj: dict) -> list[str]:
    """Key paths of ``obj`` (a JSON object as written) that ``file_schema`` does not declare. A field with a
    ``ref`` is checked against that schema (its own keys relative to the field)."""
    undeclared = []
    refs = {f.name: SCHEMAS[f.ref] for f in file_schema.fields if f.ref}
    for path in json_paths(obj):
        if any(path.startswith(name + ".") for name in refs):
            continue
        if not any(_matches(f.name, path) for f in file_schema.fields):
            undeclared.append(path)
    for name, sub in refs.items():
        value = obj.get(name)
        if isinstance(value, dict):
            undeclared += [f"{name}.{p}" for p in undeclared_keys(sub, value)]
    return undeclared
