#!/usr/bin/env bash
# Builds and installs the Python package `fheml` into ./.venv (created if missing) the way a
# user does: `pip install .` (scikit-build-core compiles the C++ library and the nanobind
# module). Debian's Python is externally managed (PEP 668), hence the venv.
# Usage: scripts/install-python.sh [EXTRAS], e.g. `test` for pytest and pandas.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
spec="."
[ -n "${1:-}" ] && spec=".[$1]"
.venv/bin/python -m pip install -q "$spec"
