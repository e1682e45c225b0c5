// What a circuit costs: counts per evaluation of one sample, key and ciphertext sizes, an
// estimated latency from the engine's recorded benchmarks, and the measured latency of a run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fheml/compiler/circuit.h"
#include "fheml/runtime/mode.h"
#include "fheml/tfhe/engine.h"

namespace fheml::runtime {

// Wall-clock seconds of the parts of one FheCircuit call (0 for parts a mode does not have).
struct Timings {
  Mode mode{};
  std::size_t samples = 0;
  double keygen_s = 0;   // client and server key generation plus decompression, once
  double encrypt_s = 0;  // quantization included
  double run_s = 0;
  double decrypt_s = 0;  // dequantization included
};

struct Statistics {
  // Per evaluation of one sample.
  std::map<std::uint32_t, std::size_t> lookups_per_bits;  // precision p -> lookup elements
  std::size_t bootstraps = 0;
  std::size_t key_switches = 0;  // one per bootstrap (KS-PBS)
  std::size_t linear_ops = 0;    // scalar multiply-adds and plaintext additions on ciphertexts
  std::vector<std::size_t> bootstraps_per_stage;      // index d: lookups of depth d + 1
  std::uint32_t max_width = 0;                        // largest W of an encoding class
  std::uint32_t max_lookup_bits = 0;                  // largest p of a lookup
  std::uint32_t max_bit_width = 0;                    // max of the two
  std::size_t depth = 0;                              // lookup stages on the critical path
  std::vector<std::size_t> bootstraps_per_partition;  // index p: lookups in partition p

  // Sizes in bytes, summed over the partitions' keys; keys are zero for a circuit without
  // lookups (no server key).
  tfhe::KeySizes key_sizes{};
  std::size_t ciphertext_bytes = 0;  // one ciphertext under the big key, expanded
  std::size_t input_bytes = 0;       // all inputs of one sample as they travel (seeded)
  std::size_t output_bytes = 0;      // all outputs of one sample

  // Estimated by the parameter search's cost model (tfhe/parameters.cpp, "Cost model": KS+PBS
  // nanoseconds on one thread of the project's standard machine, measured on 2026-12-05). The
  // VM's speed varies by the hour: in the hour after that calibration they were 1.2x the
  // measured KS+PBS at 4 bits (9.4 against 7.6-7.9 ms) and 1.35-1.4x the measured MLP and CNN
  // samples (6.9 against 4.9-5.1 s, 24.8 against 18.3-18.7 s; bench/README.md, "Extended lookup
  // tables").
  double bootstrap_ms = 0;          // one KS+PBS (with partitions: the mean over the circuit's)
  double estimated_latency_ms = 0;  // all bootstraps of one sample on one thread
  std::size_t threads = 1;          // what the next figure assumes
  double estimated_parallel_latency_ms = 0;  // stage by stage on `threads` threads

  std::optional<Timings> last_run;  // filled by FheCircuit::statistics
};

// Counts and estimates for one sample; `threads` only affects estimated_parallel_latency_ms.
Statistics compute_statistics(const compiler::Circuit& circuit, std::size_t threads = 1);

// Single-thread milliseconds of one key switch + bootstrap at `params`: the parameter search's
// cost model, measured in nanoseconds on the project's standard machine.
double estimated_bootstrap_ms(const tfhe::PbsParameters& params);

// Per-node table (%id, op, origin, range, bits, W, nu2, log2 p_fail) followed by the parameters,
// the reason they were chosen and the statistics.
std::string report(const compiler::Circuit& circuit, const Statistics& statistics);

}  // namespace fheml::runtime
