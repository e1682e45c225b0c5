#!/usr/bin/env bash
# Installs every system package the C++ build, the Python package, tests, sanitizer build,
# fuzzers and benchmarks need.
# Debian 12 (bookworm). Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libsodium-dev            # CSPRNG (ChaCha20 streams, OS entropy)
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libcli11-dev
  nlohmann-json3-dev      # JSON output of the CLI
  libcpp-httplib-dev      # HTTP server of `fheml serve`
  libonnx-dev libprotobuf-dev protobuf-compiler # ONNX import: the ONNX project's protobuf classes
  clang libclang-rt-14-dev # libFuzzer targets
  clang-format
  python3-dev python3-venv # the Python package: headers for the extension, a venv (PEP 668)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
