#!/usr/bin/env bash
# Quick start, step 1: install system packages, build, and run the main job: an end-to-end
# encrypted prediction on a real data set (`fheml demo`: a scikit-learn MLP on breast cancer,
# compiled, run on encrypted test rows, checked against the clear integer circuit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/fheml demo --dataset breast_cancer --rows 8
