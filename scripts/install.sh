#!/usr/bin/env bash
# Quick start, step 1: install system packages, build, and run the main job (an encrypted
# key switch + programmable bootstrap benchmark, every result decrypted and checked).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/fheml bench --precisions 2,4,6 --repetitions 5
