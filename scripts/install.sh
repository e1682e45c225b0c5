#!/usr/bin/env bash
# Quick start, step 1: install the system packages and the Python package `fheml` (in ./.venv),
# then run the main job: `python -m fheml.demo`, an end-to-end encrypted prediction on
# scikit-learn's breast cancer (classification) and diabetes (regression) data sets, checked
# against the clear quantized model (non-zero exit on any difference).
# The C++ command-line tool and library: `bash scripts/build.sh` (also run by scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/install-python.sh
.venv/bin/python -m fheml.demo
