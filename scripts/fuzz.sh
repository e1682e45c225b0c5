#!/usr/bin/env bash
# Builds the libFuzzer targets (one per family of deserializers) with clang, ASan and UBSan, and
# runs each for FHEML_FUZZ_SECONDS (default 15) from the committed corpus. The deserializers
# need only the sources listed below; the FFT, which uses GCC vector extensions, is not among
# them, so these targets build with clang while the library itself builds with GCC.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FHEML_FUZZ_SECONDS:-15}
out=build-fuzz
mkdir -p "$out"
sources=(src/fheml/tfhe/{serialization,wire,errors,parameters,noise,security,shared_keys}.cpp)
for target in fuzz/fuzz_deserialize_*.cpp; do
  name=$(basename "$target" .cpp)
  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Isrc "$target" "${sources[@]}" -lsodium -o "$out/$name"
  work=$(mktemp -d)
  cp tests/data/corpus/*.bin "$work/"
  echo "fuzzing $name for ${seconds}s"
  "$out/$name" -max_total_time="$seconds" -max_len=65536 -artifact_prefix="$out/" -print_final_stats=0 "$work" 2>&1 | tail -n 2
  rm -rf "$work"
done

# The ONNX importer (models/onnx_*.cpp on the float graph), seeded with real models.
onnx_sources=(src/fheml/models/onnx_*.cpp src/fheml/ir/*.cpp)
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -DONNX_ML=1 -DONNX_NAMESPACE=onnx -Isrc fuzz/fuzz_import_onnx.cpp "${onnx_sources[@]}" \
  -lonnx_proto -lprotobuf -o "$out/fuzz_import_onnx"
work=$(mktemp -d)
cp tests/data/onnx/*.onnx "$work/"
echo "fuzzing fuzz_import_onnx for ${seconds}s"
"$out/fuzz_import_onnx" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
  -artifact_prefix="$out/" -print_final_stats=0 "$work" 2>&1 | tail -n 2
rm -rf "$work"
