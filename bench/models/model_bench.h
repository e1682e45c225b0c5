// fheml_bench_models, its measurements: the options, the two models, and what compiling, the
// clear modes and encrypted execution of one model cost (measure.cpp). model_bench.cpp prints
// and records them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fheml/cli/datasets.h"
#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/runtime/runtime.h"

namespace fheml::bench_models {

using fheml::ir::FloatGraph;
using fheml::ir::FloatOp;
using fheml::ir::FloatTensor;
using fheml::ir::Shape;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

struct Options {
  std::vector<std::string> models{"mlp", "cnn"};
  std::uint32_t n_bits = 3;
  std::optional<std::uint32_t> weight_bits;  // default n_bits
  std::optional<std::uint32_t> rounding_threshold_bits;
  std::uint32_t max_lookup_bits = 8;
  bool approximate = false;
  bool requantize_outputs = false;
  std::uint32_t output_noise_bits = 0;
  std::string refresh_max_pool = "auto";
  std::optional<double> p_error;
  std::optional<double> global_p_error;
  std::size_t max_partitions = 1;
  std::size_t calibration = 500;
  std::size_t repetitions = 3;
  std::size_t samples = 2;
  std::size_t accuracy_rows = 0;  // 0: every test row
  std::size_t threads = 0;        // "all cores" pool; 0: one per hardware thread
  std::uint64_t seed = 1;
  bool skip_execute = false;
  bool report = false;
  double max_compile_rss_mib = 2048;  // the bound on compilation memory
  std::string config;
  std::string note;
  std::string json_path;
  bool append = false;
};

struct Model {
  std::string name;
  std::string description;
  FloatGraph graph;
  Shape input_shape;
};

struct CompileResult {
  fheml::compiler::Circuit circuit;
  std::vector<double> seconds;
  double quantize_s = 0;  // quantize alone, once
  long rss_before_kib = 0;
  long peak_kib = 0;  // VmHWM during the first compilation (reset just before it)
  bool peak_reset = false;
  long maxrss_after_kib = 0;  // getrusage: the process's peak so far
};

struct ClearResult {
  std::size_t rows = 0;
  double disable_ms = 0;                 // median per sample, one sample per call
  double simulate_ms = 0;                // idem
  std::size_t disable_agree_float = 0;   // argmax equal to the float model's
  std::size_t simulate_agree_float = 0;  // idem
  std::size_t disable_correct = 0;       // argmax equal to the label (random weights: noise)
  std::size_t simulate_correct = 0;
  std::size_t float_correct = 0;
  std::size_t simulate_differs = 0;  // samples whose integer outputs differ from disable
  // sqrt(sum (dequantized - float)^2 / sum float^2) over every output of every row: how far the
  // quantized model is from the float one (argmax agreement alone is noisy on random weights,
  // whose logits are often near ties).
  double disable_relative_rms = 0;
};

using fheml::runtime::IntSample;

struct SampleTiming {
  double encrypt_ms = 0, run_ms = 0, decrypt_ms = 0;
  double run_cpu_ms = 0;    // CPU time of all threads of the process during run()
  std::size_t batches = 0;  // keyswitch_bootstrap_batch calls of the server
  bool matches_disable = false;
  double total_ms() const { return encrypt_ms + run_ms + decrypt_ms; }
};

struct ExecuteResult {
  double keygen_s = 0;      // client key + compressed server key
  double decompress_s = 0;  // expansion of the evaluation keys on the server
  std::size_t threads_all = 0;
  std::vector<SampleTiming> one_thread, all_threads;
  std::size_t mismatches = 0;
};

double seconds_since(Clock::time_point start);

double median(std::vector<double> v);

long status_kib(const std::string& field);

// Resets VmHWM (the peak resident set) to the current resident set, so that the next reading
// is the peak of what follows rather than of the process so far. Linux >= 4.0.
bool reset_peak_rss();

// User + system CPU seconds of the whole process so far. On a shared machine wall time includes
// waiting for a core; CPU time does not, so the two together show how contended a run was.
double cpu_seconds();

// The 1-minute load average, every process of the machine included.
double load_average();

long maxrss_kib();

Model build_mlp(std::uint64_t seed);

Model build_cnn(std::uint64_t seed);

FloatTensor as_input(const std::vector<double>& row, const Shape& shape);

std::size_t argmax(const std::vector<double>& v);

fheml::compiler::CompileOptions compile_options(const Options& o, std::size_t calibration);

CompileResult measure_compile(const Model& model, std::span<const fheml::quant::Sample> calibration,
                              const Options& o);

IntSample quantize_sample(const fheml::compiler::Circuit& c, const FloatTensor& x);

std::vector<double> dequantize(const fheml::compiler::Circuit& c, const IntSample& out);

ClearResult measure_clear(const Model& model, const fheml::runtime::Program& program,
                          const fheml::datasets::LabelledData& test, std::size_t rows);

// Decrypted outputs against the integer interpreter's: equal, or within 2^(b-1) for approximate
// outputs (CompileOptions::output_noise_bits = b).
bool within_noise_bits(const std::vector<IntSample>& got, const std::vector<IntSample>& exact,
                       std::uint32_t noise_bits);

ExecuteResult measure_execute(const Model& model, const fheml::runtime::Program& program,
                              const fheml::datasets::LabelledData& test, std::size_t samples,
                              fheml::tfhe::ThreadPool& all_threads);

}  // namespace fheml::bench_models
