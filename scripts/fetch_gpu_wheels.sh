#!/usr/bin/env bash
# The wheels the GPU machine lacks (its Python 3.12 has torch, numpy, OpenCV, click, rich, safetensors, pillow,
# pytest, but not PyAV or spandrel), downloaded here into .whl/ (git-ignored) for scripts/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl av==18.1.0 spandrel==0.4.2
ls -la .whl
