#!/usr/bin/env bash
# Quick start, step 2: the whole test suite. This is what CI runs (.ci/run).
#  1. release build: every C++ test (real FHE, exhaustive lookups, noise statistics);
#  2. the Python package as a user installs it (pip install into ./.venv), its pytest suite and
#     the quick-start demo;
#  3. AddressSanitizer + UndefinedBehaviorSanitizer build of the same tests, with the heavy
#     statistical tests trimmed (FHEML_TEST_PROFILE=sanitize) so CI stays well under its limit;
#  4. a short libFuzzer run of every deserializer (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$jobs"

if [ "${FHEML_SKIP_PYTHON:-0}" != "1" ]; then
  bash scripts/install-python.sh test
  # FHEML_BUILD_DIR: the C++ side of the cross-language and HTTP tests (built above).
  FHEML_BUILD_DIR="$PWD/build" .venv/bin/python -m pytest -q tests/python
  .venv/bin/python -m fheml.demo
fi

if [ "${FHEML_SKIP_SANITIZE:-0}" != "1" ]; then
  # -O1 -g1: what the sanitizers' documentation recommends, line tables for the reports; it
  # compiles much faster than -O2 -g (this build was the longest step of CI).
  cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFHEML_SANITIZE=ON \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DFHEML_BUILD_BENCH=OFF >/dev/null
  cmake --build build-sanitize -j "$jobs"
  # Encrypted execution is ~10x slower under the sanitizers: the tests below repeat, with more
  # bootstraps, code paths that the kept ones (one random graph, batch vs one-by-one, the deploy,
  # key store, HTTP and tree end-to-end tests) already run encrypted under ASan/UBSan. They all
  # run in full in the release stage above. (Measured: they were 2/3 of this stage's time.) The
  # two failure-rate statistics are skipped too: they count how often deliberately weak
  # parameters fail, a property of the noise, not of memory or arithmetic safety.
  skip='^(example_two_layer_mlp|cli_demo_smoke|EndToEnd\.GlobalPErrorBoundsTheWholeCircuit'
  skip+='|EndToEnd\.SimulatedFailureRateMatchesExecutionAtAHighPError'
  skip+='|Simulate\.FailureRateMatchesExecuteWhenFailuresAreFrequent'
  skip+='|Execute\.(EqualsDisableOnEveryInputOfTheChain|ExpandedInputsEqualSeededInputs'
  skip+='|OutOfRangeInputsWrapLikeTheInterpreter)|Threads/FheCircuitThreads\..*'
  skip+='|Rounding\.ExactRoundingEncryptedEqualsClear'
  skip+='|Seeds/RandomGraph\.AgreesInAllModesOnEveryTestInput/[1-9][0-9]*)$'
  # FHEML_SIMD=avx2: ASan checks each 64-byte (AVX-512) access out of line, which made encrypted
  # tests 1.5x slower than with 32-byte ones (measured: FheCircuit.PredictAgreesAcrossModes 28.6 s
  # vs 18.9 s). The AVX-512 kernels still run sanitized: the Levels/* kernel tests exercise every
  # level the CPU has, whatever FHEML_SIMD says.
  FHEML_SIMD=avx2 FHEML_TEST_PROFILE=sanitize ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-sanitize --output-on-failure -j "$jobs" -E "$skip"
fi

if [ "${FHEML_SKIP_FUZZ:-0}" != "1" ]; then
  FHEML_FUZZ_SECONDS=${FHEML_FUZZ_SECONDS:-10} bash scripts/fuzz.sh
fi
