"""Track every video under a folder (``batch-process``): parallel, resumable, one bad clip never stops the rest.

    result = run_batch(BatchConfig(clips_dir=Path("clips"), out_dir=Path("tracked")))

Clips and outputs
-----------------
* Clips: files under ``clips_dir`` (recursively) whose extension is one of :data:`VIDEO_EXTENSIONS`, any
  case; hidden files and folders, and ``out_dir`` when it lies inside ``clips_dir``, are left out.
  Symlinked folders are followed, each real folder once (no loops, no video twice).
* Camera: a sidecar ``<clip>.K.json`` beside the clip (``a/b/clip1.mp4`` -> ``a/b/clip1.K.json``) wins over
  ``BatchConfig.intrinsics``; with neither, track-video's default field of view is assumed.
* Each clip is one :func:`pipelines.track_video.track_video` call (:func:`run_clip`) writing into
  ``out_dir/<relative clip path without extension>/`` (clips that would share a folder, ``a/x.mp4`` and
  ``a/x.mov``, get ``a/x_mp4/`` and ``a/x_mov/``; when such a collision comes or goes, the complete outputs
  move to the new name: :func:`adopt_earlier_outputs`). A clip that cannot be tracked (bad video, bad sidecar
  K.json, ...) is a "failed" row with track-video's one-line reason; the other clips go on. A clip without a
  face, or without a kept pose, is a "no_face" / "no_pose" row (track-video's status), not "ok".
* At the end, ``out_dir/summary.csv``, ``out_dir/summary.png`` and, only when a clip failed on an
  unexpected exception, ``out_dir/errors.log`` with its traceback (:mod:`pipelines.batch_summary`).
  Local workers' own output (native libraries' logging, the traceback of a worker that crashed) is
  appended to ``out_dir/workers.log``.

Resuming
--------
After track-video returns, the worker writes :data:`DONE_MARKER` into the clip's folder (atomically): the
clip's summary row and the size and modification time of the clip and of its K.json. A clip whose marker
is present and matches its inputs is *skipped* (its row comes from the marker) unless ``force``. The marker
is removed before a clip is tracked, so a folder whose run was interrupted, even while track-video was
publishing its files one by one, has no marker and is tracked again. Hidden temporaries that killed runs
leave (``.<name>.tmp-<pid>-<hex>``, from :func:`baseio.atomic.atomic_path` and
:func:`pipelines.track_outputs.staged_folder`) are removed before a clip is tracked again. One batch at a
time may write into an ``out_dir`` (``out_dir/.batch.lock``, an flock the kernel releases if we die).

Executors (:mod:`pipelines.batch_executors`): "local", a process pool of ``workers`` (default one per
GPU with CUDA, else half the usable CPU cores) in which a clip that kills its worker is a failed row, not a
broken batch; "dask", the same task on an existing Dask cluster at ``scheduler``.

Interrupting (KeyboardInterrupt, or SIGTERM turned into it by the CLI) stops the workers and re-raises;
the clips finished so far keep their outputs and markers, nothing half-written is published, and running
again finishes the rest.
"""
from __future__ import annotations

import fcntl
import glob
import json
import math
import os
import re
import shutil
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm import tqdm

from baseio.atomic import TEMPORARY_NAME, OutputError, atomic_path, write_json_atomic
from perspnet.validate import check_choice, check_device, check_int
from pipelines.batch_executors import (ExecutorUnavailable, default_workers, run_dask, run_local, worker_device,
                                       worker_devices)
from pipelines.batch_summary import ClipOutcome, plot_summary, write_errors_log, write_summary_csv

__all__ = [
    "VIDEO_EXTENSIONS",
    "SIDECAR_SUFFIX",
    "DONE_MARKER",
    "EXECUTORS",
    "BatchArgumentError",
    "BatchConfig",
    "ClipJob",
    "BatchResult",
    "find_clips",
    "plan_jobs",
    "adopt_earlier_outputs",
    "completed_outcome",
    "run_clip",
    "run_batch",
]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")
SIDECAR_SUFFIX = ".K.json"
DONE_MARKER = ".batch-done.json"
LOCK_FILE = ".batch.lock"
WORKERS_LOG = "workers.log"  # local workers' stdout and stderr (MediaPipe's native logging, crash tracebacks)
EXECUTORS = ("local", "dask")


class BatchArgumentError(ValueError):
    """The batch cannot start (missing clips folder, unwritable output folder, bad --intrinsics, ...); one line."""


@dataclass(frozen=True)
class BatchConfig:
    """What :func:`run_batch` does. Validated on construction (values); :func:`run_batch` checks the files.

    Attributes:
        clips_dir: folder searched recursively for videos.
        out_dir: output root; created when missing.
        intrinsics: K.json for clips without a sidecar ``<clip>.K.json``; None: track-video's default FOV.
        workers: parallel clips (local executor); None: :func:`default_workers`.
        force: track clips again even when their outputs are complete.
        executor: "local" (process pool) or "dask" (an existing cluster at ``scheduler``).
        scheduler: Dask scheduler address, e.g. ``tcp://127.0.0.1:8786`` (dask only).
        checkpoint: PerspNet checkpoint; None: the shipped one.
        device: "auto", "cpu", "cuda" or "cuda:N" (local: "auto"/"cuda" spread the workers over the GPUs).
        progress: show an overall progress bar on stderr.
    """

    clips_dir: Path
    out_dir: Path
    intrinsics: Path | None = None
    workers: int | None = None
    force: bool = False
    executor: str = "local"
    scheduler: str | None = None
    checkpoint: Path | None = None
    device: str = "auto"
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("clips_dir", "out_dir", "intrinsics", "checkpoint"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        if self.workers is not None:
            check_int("workers", self.workers, 1)
        check_choice("executor", self.executor, EXECUTORS)
        if (self.executor == "dask") != (self.scheduler is not None):
            raise ValueError("a scheduler address is needed with the dask executor, and only with it")
        check_device("device", self.device)


@dataclass(frozen=True)
class ClipJob:
    """One clip to track; picklable, it travels to the workers.

    Attributes:
        clip: path relative to the clips folder, POSIX style (the summary's ``clip``).
        video: the video file.
        out_dir: the clip's output folder.
        intrinsics: its K.json (sidecar or the batch's), or None.
        intrinsics_source: "sidecar", "batch" or "default" (the summary's ``intrinsics``).
        checkpoint, device: as in :class:`BatchConfig` (a local worker's own GPU overrides ``device``).
    """

    clip: str
    video: Path
    out_dir: Path
    intrinsics: Path | None
    intrinsics_source: str
    checkpoint: Path | None
    device: str


@dataclass(frozen=True)
class BatchResult:
    """What :func:`run_batch` did: ``outcomes`` in clip order, the summary files, and ``counts`` per status."""

    outcomes: list[ClipOutcome]
    summary_csv: Path
    summary_png: Path
    errors_log: Path | None

    @property
    def counts(self) -> Counter[str]:
        return Counter(o.status for o in self.outcomes)

    @property
    def all_ok(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes)


# --------------------------------------------------------------------------------------------- planning


def _folder_key(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def find_clips(clips_dir: Path, exclude: Path | None = None) -> list[Path]:
    """Video files under ``clips_dir`` (by extension, any case), sorted; hidden ones and ``exclude`` left out.

    Symlinked folders are followed, each real folder once and by its real path when it has one under
    ``clips_dir`` (a link back up the tree, or to a folder searched already, is not searched again), so every
    video is found once. A link named like a video whose target is missing is listed too: tracking it fails
    with "file not found", a row that says so."""
    root = Path(clips_dir)
    skip = exclude.resolve() if exclude is not None else None

    def walk(follow: bool) -> Iterator[tuple[Path, list[str], list[str]]]:
        for folder, dirs, files in os.walk(root, followlinks=follow):
            here = Path(folder)
            if skip is not None and here.resolve().is_relative_to(skip):
                dirs[:] = []
                continue
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            yield here, dirs, files

    real = {_folder_key(here) for here, _, _ in walk(False)}
    seen: set[tuple[int, int]] = set()
    found = []
    for here, dirs, files in walk(True):
        if _folder_key(here) in seen:
            dirs[:] = []
            continue
        seen.add(_folder_key(here))
        dirs[:] = [d for d in dirs if not ((here / d).is_symlink() and _folder_key(here / d) in real)]
        for name in files:
            path = here / name
            if (not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS
                    and (skip is None or not path.resolve().is_relative_to(skip))):
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _output_folders(rels: list[Path]) -> dict[Path, Path]:
    """Relative output folder per relative clip path: the path without extension, with ``_<ext>`` appended
    for clips that would otherwise share a folder."""
    stems = Counter(rel.with_suffix("") for rel in rels)
    return {rel: rel.with_suffix("") if stems[rel.with_suffix("")] == 1
            else rel.with_name(f"{rel.stem}_{rel.suffix[1:].lower()}") for rel in rels}


def plan_jobs(config: BatchConfig, clips: list[Path]) -> list[ClipJob]:
    """One :class:`ClipJob` per clip (paths under ``config.clips_dir``), with its sidecar K.json if any."""
    rels = [clip.relative_to(config.clips_dir) for clip in clips]
    folders = _output_folders(rels)
    jobs = []
    for clip, rel in zip(clips, rels):
        sidecar = clip.with_name(clip.stem + SIDECAR_SUFFIX)
        if sidecar.exists():
            intrinsics, source = sidecar, "sidecar"
        elif config.intrinsics is not None:
            intrinsics, source = config.intrinsics, "batch"
        else:
            intrinsics, source = None, "default"
        jobs.append(ClipJob(rel.as_posix(), clip, config.out_dir / folders[rel], intrinsics, source,
                            config.checkpoint, config.device))
    shared = [folder for folder, n in Counter(j.out_dir for j in jobs).items() if n > 1]
    if shared:
        clips_sharing = [j.clip for j in jobs if j.out_dir == shared[0]]
        raise BatchArgumentError(f"clips {', '.join(clips_sharing)} would share the output folder {shared[0]}; "
                                 "rename one")
    return jobs


def _fingerprint(job: ClipJob) -> dict:
    """Size and modification time of the clip and of its K.json (and where K comes from): a clip whose
    inputs changed is tracked again. Paths are left out, so a moved clips folder is not redone."""
    video = job.video.stat()
    k_json = job.intrinsics.stat() if job.intrinsics is not None else None
    return {"video": [video.st_size, video.st_mtime_ns],
            "intrinsics": [job.intrinsics_source, *([k_json.st_size, k_json.st_mtime_ns] if k_json else [])]}


def adopt_earlier_outputs(job: ClipJob) -> None:
    """Move the clip's complete outputs from its other folder name into its folder (``a/x/`` and ``a/x_mp4/``
    swap when a clip ``a/x.mov`` is added or removed: :func:`plan_jobs`), so that no orphan copy stays and the
    clip is not tracked again; when its folder already holds complete outputs, the other copy is removed.

    Only files are moved (a clip's folder may also hold the folders of clips in a subfolder of the same name),
    the completion marker last, and only when that marker names this clip."""
    rel = Path(job.clip)
    plain = job.out_dir.parent / rel.stem
    other = plain if job.out_dir != plain else job.out_dir.parent / f"{rel.stem}_{rel.suffix[1:].lower()}"
    try:
        if json.loads((other / DONE_MARKER).read_text(encoding="utf-8"))["outcome"]["clip"] != job.clip:
            return
    except (OSError, ValueError, KeyError, TypeError):  # no marker there, or another clip's
        return
    files = sorted((p for p in other.iterdir() if not p.is_dir()), key=lambda p: p.name == DONE_MARKER)
    if (job.out_dir / DONE_MARKER).is_file():
        for path in reversed(files):  # the marker first: what is left is never taken for complete
            path.unlink()
    else:
        job.out_dir.mkdir(parents=True, exist_ok=True)
        for path in files:
            os.replace(path, job.out_dir / path.name)
    try:
        other.rmdir()
    except OSError:  # it holds other clips' folders
        pass


def completed_outcome(job: ClipJob) -> ClipOutcome | None:
    """The clip's stored row as "skipped" when its completion marker is present and matches its inputs."""
    try:
        marker = json.loads((job.out_dir / DONE_MARKER).read_text(encoding="utf-8"))
        if marker["inputs"] != _fingerprint(job):
            return None
        row = {k: math.nan if v is None else v for k, v in marker["outcome"].items()}
        return replace(ClipOutcome(**row), status="skipped", output=_outcome(job, "skipped").output)
    except (OSError, ValueError, KeyError, TypeError):  # no marker, or not one we can use: track again
        return None


# ----------------------------------------------------------------------------------------- the clip task


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _remove_temporaries(out_dir: Path) -> None:
    """Delete hidden temporaries that killed runs left for this clip: its staging folder ``.<name>.tmp-*``
    beside its folder, and temporary files ``.*.tmp-*`` inside it (not folders: the staging folder of a
    clip in a subfolder of the same name, ``a.mp4`` and ``a/b.mp4``, may be in use)."""
    for path in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.tmp-*"):
        if TEMPORARY_NAME.match(path.name) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif TEMPORARY_NAME.match(path.name):
            path.unlink(missing_ok=True)
    for path in out_dir.glob(".*.tmp-*") if out_dir.is_dir() else ():
        if TEMPORARY_NAME.match(path.name) and not path.is_dir():
            path.unlink(missing_ok=True)


def _jitter(summary: dict, label: str) -> tuple[float, float]:
    """(tz [mm], yaw [deg]) second-difference RMS of the run labelled ``*<label>`` (":filtered", ":raw") in
    track-video's ``summary.json``; nan where it has no value."""
    for run in summary["jitter"]["runs"]:
        if run["label"].endswith(label):
            d2 = run["second_diff_rms"]
            return tuple(math.nan if d2.get(a) is None else float(d2[a]) for a in ("tz", "yaw"))
    return math.nan, math.nan


def _outcome(job: ClipJob, status: str, **values) -> ClipOutcome:
    """A row for ``job``; ``output`` is its folder relative to the batch's ``out_dir`` (as deep as the clip)."""
    output = Path(*job.out_dir.parts[-len(Path(job.clip).parts):]).as_posix()
    return ClipOutcome(clip=job.clip, status=status, intrinsics=job.intrinsics_source, output=output, **values)


_PREDICTORS: dict = {}  # (checkpoint, device) -> PerspNetPredictor: one model per worker process


def _worker_predictor(checkpoint: Path | None, device: str):
    """The model for ``checkpoint`` on ``device``, loaded once per process and reused for every clip."""
    from perspnet.inference import PerspNetPredictor

    key = (str(checkpoint), device)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()  # a worker serves one checkpoint and device at a time
        _PREDICTORS[key] = PerspNetPredictor(checkpoint, device)
    return _PREDICTORS[key]


def run_clip(job: ClipJob) -> ClipOutcome:
    """Track one clip and write its completion marker; every failure becomes a "failed" outcome.

    The same function runs in local pool workers (on the worker's own device) and on Dask workers (on
    ``job.device``). Input and output errors (video, K.json, checkpoint, face model, unwritable folder) give
    their own one-line message; any other exception gives ``<type>: <message>`` with the traceback in
    ``detail``. KeyboardInterrupt and SystemExit propagate.
    """
    from perspnet.checkpoint import CheckpointError
    from perspnet.face_model import FaceModelNotFound
    from perspnet.intrinsics import IntrinsicsError
    from pipelines.track_video import TrackConfig, TrackError, track_video
    from baseio.video_io import VideoError

    try:
        (job.out_dir / DONE_MARKER).unlink(missing_ok=True)
        _remove_temporaries(job.out_dir)
        config = TrackConfig(video=job.video, intrinsics=job.intrinsics, out=job.out_dir,
                             checkpoint=job.checkpoint, device=worker_device() or job.device)
        result = track_video(config, notify=None, predictor=_worker_predictor(config.checkpoint, config.device))
    except (VideoError, IntrinsicsError, CheckpointError, FaceModelNotFound, TrackError, OutputError) as err:
        return _outcome(job, "failed", message=_first_line(err))
    except OSError as err:  # e.g. the output folder's parent is a file
        return _outcome(job, "failed", message=f"{job.out_dir}: {err.strerror or _first_line(err)}")
    except Exception as err:  # noqa: BLE001 - one clip's bug must not stop the batch; reported with its traceback
        return _outcome(job, "failed", message=f"{type(err).__name__}: {_first_line(err)}",
                        detail=traceback.format_exc())
    s = result.summary
    tz, yaw = _jitter(s, ":filtered")
    raw_tz, raw_yaw = _jitter(s, ":raw")
    fps = math.nan if s["processing_fps"] is None else s["processing_fps"]
    outcome = _outcome(job, s["status"], frames=s["frames"], detection_rate=s["detection_rate"], fps=fps,
                       d2_rms_tz_mm=tz, d2_rms_yaw_deg=yaw, raw_d2_rms_tz_mm=raw_tz, raw_d2_rms_yaw_deg=raw_yaw,
                       message=" | ".join(s["notes"]))
    try:
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(outcome).items()}
        write_json_atomic(job.out_dir / DONE_MARKER, {"inputs": _fingerprint(job), "outcome": row})
    except (OutputError, OSError) as err:
        return _outcome(job, "failed", message=f"outputs written, but not the completion marker: {_first_line(err)}")
    return outcome


# ------------------------------------------------------------------------------------------ the batch


def _check_output_folder(out_dir: Path) -> None:
    """Create ``out_dir`` and write a file into it (permission bits alone do not tell, e.g. for root)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchArgumentError(f"{out_dir}: output folder is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / ".write-test") as tmp:
            tmp.write_bytes(b"")
        (out_dir / ".write-test").unlink()
    except OutputError as err:
        raise BatchArgumentError(f"{out_dir}: output folder cannot be written ({err})") from None
    except OSError as err:
        raise BatchArgumentError(f"{out_dir}: output folder cannot be created ({err.strerror or err})") from None


@contextmanager
def _batch_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir/.batch.lock`` (flock): one batch per output folder; the kernel releases it if we die."""
    with open(out_dir / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchArgumentError(f"{out_dir}: another batch-process is writing into this folder") from None
        yield


def _check_inputs(config: BatchConfig) -> list[Path]:
    """Check the clips folder, --intrinsics and the checkpoint; the clips found. BatchArgumentError otherwise."""
    from perspnet.checkpoint import CheckpointError, load_checkpoint
    from perspnet.intrinsics import IntrinsicsError, load_intrinsics

    if not config.clips_dir.is_dir():
        what = "is not a folder" if config.clips_dir.exists() else "folder not found"
        raise BatchArgumentError(f"{config.clips_dir}: {what}")
    if config.intrinsics is not None:
        try:
            load_intrinsics(config.intrinsics)
        except IntrinsicsError as err:
            raise BatchArgumentError(_first_line(err)) from None
    try:
        load_checkpoint(config.checkpoint, "cpu")
    except CheckpointError as err:
        raise BatchArgumentError(_first_line(err)) from None
    clips = find_clips(config.clips_dir, exclude=config.out_dir)
    if not clips:
        raise BatchArgumentError(f"{config.clips_dir}: no video files ({' '.join(e[1:] for e in VIDEO_EXTENSIONS)})")
    return clips


def run_batch(config: BatchConfig) -> BatchResult:
    """Track every clip under ``config.clips_dir`` (module docstring) and write the summary files.

    Raises:
        BatchArgumentError: the batch cannot start; nothing was tracked.
        KeyboardInterrupt: interrupted; finished clips keep their outputs and markers, the summary is not written.
    """
    jobs = plan_jobs(config, _check_inputs(config))
    if config.device.startswith("cuda") and config.executor == "local":
        import torch

        if not torch.cuda.is_available():
            raise BatchArgumentError(f"--device {config.device}: no CUDA device is available (use cpu or auto)")
    _check_output_folder(config.out_dir)
    with _batch_lock(config.out_dir):
        for stale in config.out_dir.glob(".*.tmp-*"):  # a summary file's temporary, from a killed run
            if TEMPORARY_NAME.match(stale.name) and stale.is_file():
                stale.unlink(missing_ok=True)
        outcomes: dict[str, ClipOutcome] = {}
        todo = []
        for job in jobs:
            adopt_earlier_outputs(job)
            done = None if config.force else completed_outcome(job)
            if done is None:
                todo.append(job)
            else:
                outcomes[job.clip] = done
        with tqdm(total=len(jobs), initial=len(outcomes), unit="clip", disable=not config.progress,
                  desc="batch-process") as bar:
            def record(outcome: ClipOutcome) -> None:
                outcomes[outcome.clip] = outcome
                bar.update(1)
                bar.set_postfix(Counter(o.status for o in outcomes.values()), refresh=False)

            def crashed(job: ClipJob, reason: str) -> None:
                record(_outcome(job, "failed", message=reason))

            if todo and config.executor == "dask":
                try:
                    run_dask(todo, run_clip, config.scheduler, record, crashed)
                except ExecutorUnavailable as err:
                    raise BatchArgumentError(str(err)) from None
            elif todo:
                workers = min(config.workers or default_workers(config.device), len(todo))
                run_local(todo, run_clip, worker_devices(config.device, workers), record, crashed,
                          log_path=config.out_dir / WORKERS_LOG)
        ordered = [outcomes[job.clip] for job in jobs]
        summary_csv, summary_png = config.out_dir / "summary.csv", config.out_dir / "summary.png"
        write_summary_csv(summary_csv, ordered)
        plot_summary(summary_png, ordered)
        errors_log = write_errors_log(config.out_dir / "errors.log", ordered)
    return BatchResult(ordered, summary_csv, summary_png, errors_log)
