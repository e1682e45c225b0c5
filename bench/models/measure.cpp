// fheml_bench_models: the measurements (model_bench.h).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fheml/cli/datasets.h"
#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/runtime/runtime.h"
#include "fheml/runtime/statistics.h"
#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/thread_pool.h"
#include "model_bench.h"

namespace fheml::bench_models {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// --- Memory. The resident set of this process from /proc/self/status (KiB; -1 when absent).

long status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

// Resets VmHWM (the peak resident set) to the current resident set, so that the next reading
// is the peak of what follows rather than of the process so far. Linux >= 4.0.
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// User + system CPU seconds of the whole process so far. On a shared machine wall time includes
// waiting for a core; CPU time does not, so the two together show how contended a run was.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// The 1-minute load average, every process of the machine included.
double load_average() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  in >> load;
  return load;
}

long maxrss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;  // KiB on Linux
}

// --- Models.

// He initialisation: N(0, 2 / fan_in) weights, small biases.
class Init {
 public:
  explicit Init(std::uint64_t seed) : rng_(seed) {}
  FloatTensor weights(Shape shape, std::size_t fan_in) {
    std::normal_distribution<double> normal(0.0, std::sqrt(2.0 / static_cast<double>(fan_in)));
    FloatTensor t(std::move(shape));
    for (double& v : t.data) v = normal(rng_);
    return t;
  }
  FloatTensor bias(std::size_t n) {
    std::normal_distribution<double> normal(0.0, 0.05);
    FloatTensor t({n});
    for (double& v : t.data) v = normal(rng_);
    return t;
  }

 private:
  std::mt19937_64 rng_;
};

Model build_mlp(std::uint64_t seed) {
  Init init(seed);
  Model m{"mlp", "MLP 64-128-128-10, relu, He-init weights", {}, {1, 64}};
  FloatGraph& g = m.graph;
  auto x = g.input("x", m.input_shape);
  const std::size_t widths[] = {64, 128, 128, 10};
  for (std::size_t l = 0; l + 1 < std::size(widths); ++l) {
    const std::string name = "fc" + std::to_string(l + 1);
    const auto w =
        g.constant(name + ".weight", init.weights({widths[l], widths[l + 1]}, widths[l]));
    const auto b = g.constant(name + ".bias", init.bias(widths[l + 1]));
    x = g.gemm(x, w, b, /*trans_b=*/false, name);
    if (l + 2 < std::size(widths)) x = g.unary(FloatOp::kRelu, x);
  }
  g.mark_output(x);
  return m;
}

Model build_cnn(std::uint64_t seed) {
  Init init(seed + 1);
  Model m{"cnn",
          "CNN 1x8x8: conv 8@3x3 pad 1, relu, max pool 2x2, conv 16@3x3 pad 1, relu, avg pool "
          "2x2, flatten, gemm 64-10",
          {},
          {1, 1, 8, 8}};
  FloatGraph& g = m.graph;
  auto x = g.input("x", m.input_shape);

  auto conv = [&](fheml::ir::ValueId in, std::size_t in_channels, std::size_t out_channels,
                  const std::string& name) {
    const auto w = g.constant(name + ".weight",
                              init.weights({out_channels, in_channels, 3, 3}, in_channels * 9));
    const auto b = g.constant(name + ".bias", init.bias(out_channels));
    fheml::ir::FloatAttributes a;
    a.pads = {1, 1, 1, 1};
    return g.add(FloatOp::kConv, {in, w, b}, std::move(a), name);
  };
  auto pool = [&](FloatOp op, fheml::ir::ValueId in, const std::string& name) {
    fheml::ir::FloatAttributes a;
    a.kernel = {2, 2};
    a.strides = {2, 2};
    return g.add(op, {in}, std::move(a), name);
  };

  x = conv(x, 1, 8, "conv1");
  x = g.unary(FloatOp::kRelu, x);
  x = pool(FloatOp::kMaxPool, x, "pool1");
  x = conv(x, 8, 16, "conv2");
  x = g.unary(FloatOp::kRelu, x);
  x = pool(FloatOp::kAvgPool, x, "pool2");
  fheml::ir::FloatAttributes flat;
  flat.axes = {1};
  x = g.add(FloatOp::kFlatten, {x}, std::move(flat), "flatten");
  const auto w = g.constant("fc.weight", init.weights({64, 10}, 64));
  const auto b = g.constant("fc.bias", init.bias(10));
  x = g.gemm(x, w, b, /*trans_b=*/false, "fc");
  g.mark_output(x);
  return m;
}

FloatTensor as_input(const std::vector<double>& row, const Shape& shape) {
  return FloatTensor(shape, row);
}

std::size_t argmax(const std::vector<double>& v) {
  return static_cast<std::size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// --- Measurements.

fheml::compiler::CompileOptions compile_options(const Options& o, std::size_t calibration) {
  fheml::compiler::CompileOptions c;
  c.quantization.n_bits = fheml::quant::NBits::uniform(o.n_bits);
  if (o.weight_bits) c.quantization.n_bits.op_weights = *o.weight_bits;
  c.quantization.rounding_threshold_bits = o.rounding_threshold_bits;
  c.quantization.max_lookup_bits = o.max_lookup_bits;
  c.quantization.rounding_method = o.approximate ? fheml::quant::RoundingMethod::kApproximate
                                                 : fheml::quant::RoundingMethod::kExact;
  c.quantization.requantize_outputs = o.requantize_outputs;
  c.quantization.max_calibration_samples = calibration;
  c.p_error = o.p_error;
  c.global_p_error = o.global_p_error;
  c.max_partitions = o.max_partitions;
  c.output_noise_bits = o.output_noise_bits;
  if (o.refresh_max_pool != "auto") c.refresh_max_pool = o.refresh_max_pool == "on";
  return c;
}

CompileResult measure_compile(const Model& model, std::span<const fheml::quant::Sample> calibration,
                              const Options& o) {
  const auto options = compile_options(o, calibration.size());
  CompileResult r;
  std::optional<fheml::compiler::Circuit> circuit;
  for (std::size_t rep = 0; rep < std::max<std::size_t>(1, o.repetitions); ++rep) {
    circuit.reset();  // the previous circuit is not part of this compilation's footprint
    if (rep == 0) {
      r.rss_before_kib = status_kib("VmRSS");
      r.peak_reset = reset_peak_rss();
    }
    const auto start = Clock::now();
    circuit.emplace(fheml::compiler::compile(model.graph, calibration, options));
    r.seconds.push_back(seconds_since(start));
    if (rep == 0) r.peak_kib = status_kib("VmHWM");
  }
  r.maxrss_after_kib = maxrss_kib();
  const auto start = Clock::now();
  (void)fheml::quant::quantize(model.graph, calibration, options.quantization);
  r.quantize_s = seconds_since(start);
  r.circuit = std::move(*circuit);
  return r;
}

IntSample quantize_sample(const fheml::compiler::Circuit& c, const FloatTensor& x) {
  return {c.inputs.at(0).quantize(x)};
}

std::vector<double> dequantize(const fheml::compiler::Circuit& c, const IntSample& out) {
  return c.outputs.at(0).dequantize(out.at(0)).data;
}

ClearResult measure_clear(const Model& model, const fheml::runtime::Program& program,
                          const fheml::datasets::LabelledData& test, std::size_t rows) {
  const auto& circuit = program.circuit();
  fheml::tfhe::Csprng noise(fheml::tfhe::random_seed());
  ClearResult r;
  r.rows = std::min(rows == 0 ? test.size() : rows, test.size());
  std::vector<double> disable_ms, simulate_ms;
  double error2 = 0, float2 = 0;
  for (std::size_t i = 0; i < r.rows; ++i) {
    const std::vector<FloatTensor> x{as_input(test.features[i], model.input_shape)};
    const auto logits = fheml::ir::evaluate(model.graph, x).at(0).data;
    const auto float_class = argmax(logits);
    const std::vector<IntSample> q{quantize_sample(circuit, x[0])};

    auto start = Clock::now();
    const auto disabled = fheml::runtime::run_clear(circuit, q);
    disable_ms.push_back(1e3 * seconds_since(start));
    start = Clock::now();
    const auto simulated = fheml::runtime::run_simulate(program, q, noise);
    simulate_ms.push_back(1e3 * seconds_since(start));

    const auto label = static_cast<std::size_t>(test.labels[i]);
    const auto disable_logits = dequantize(circuit, disabled.at(0));
    for (std::size_t j = 0; j < logits.size(); ++j) {
      error2 += (disable_logits.at(j) - logits[j]) * (disable_logits.at(j) - logits[j]);
      float2 += logits[j] * logits[j];
    }
    const auto disable_class = argmax(disable_logits);
    const auto simulate_class = argmax(dequantize(circuit, simulated.at(0)));
    r.float_correct += float_class == label;
    r.disable_correct += disable_class == label;
    r.simulate_correct += simulate_class == label;
    r.disable_agree_float += disable_class == float_class;
    r.simulate_agree_float += simulate_class == float_class;
    r.simulate_differs += simulated != disabled;
  }
  r.disable_relative_rms = float2 > 0 ? std::sqrt(error2 / float2) : 0.0;
  r.disable_ms = median(disable_ms);
  r.simulate_ms = median(simulate_ms);
  return r;
}

// Decrypted outputs against the integer interpreter's: equal, or within 2^(b-1) for approximate
// outputs (CompileOptions::output_noise_bits = b).
bool within_noise_bits(const std::vector<IntSample>& got, const std::vector<IntSample>& exact,
                       std::uint32_t noise_bits) {
  if (noise_bits == 0) return got == exact;
  const std::int64_t tolerance = std::int64_t{1} << (noise_bits - 1);
  if (got.size() != exact.size()) return false;
  for (std::size_t s = 0; s < got.size(); ++s) {
    if (got[s].size() != exact[s].size()) return false;
    for (std::size_t o = 0; o < got[s].size(); ++o) {
      if (got[s][o].data.size() != exact[s][o].data.size()) return false;
      for (std::size_t e = 0; e < got[s][o].data.size(); ++e) {
        if (std::llabs(got[s][o].data[e] - exact[s][o].data[e]) > tolerance) return false;
      }
    }
  }
  return true;
}

ExecuteResult measure_execute(const Model& model, const fheml::runtime::Program& program,
                              const fheml::datasets::LabelledData& test, std::size_t samples,
                              fheml::tfhe::ThreadPool& all_threads) {
  namespace rt = fheml::runtime;
  const auto& circuit = program.circuit();
  ExecuteResult r;
  r.threads_all = all_threads.size();
  auto start = Clock::now();
  rt::Keys keys = rt::keygen(circuit);
  r.keygen_s = seconds_since(start);
  start = Clock::now();
  const rt::EvaluationKeys evaluation = rt::decompress(keys.evaluation);
  r.decompress_s = seconds_since(start);

  fheml::tfhe::ThreadPool one_thread(1);
  fheml::tfhe::Csprng noise(fheml::tfhe::random_seed());
  for (fheml::tfhe::ThreadPool* pool : {&one_thread, &all_threads}) {
    auto& timings = pool == &one_thread ? r.one_thread : r.all_threads;
    for (std::size_t i = 0; i < std::min(samples, test.size()); ++i) {
      const std::vector<IntSample> q{
          quantize_sample(circuit, as_input(test.features[i], model.input_shape))};
      SampleTiming t;
      rt::ExecutionTrace trace;
      start = Clock::now();
      const auto inputs = rt::encrypt(circuit, keys.client, q, noise);
      t.encrypt_ms = 1e3 * seconds_since(start);
      start = Clock::now();
      const double cpu_start = cpu_seconds();
      const auto outputs = rt::run(program, evaluation, inputs, {pool, &trace});
      t.run_ms = 1e3 * seconds_since(start);
      t.run_cpu_ms = 1e3 * (cpu_seconds() - cpu_start);
      start = Clock::now();
      const auto decrypted = rt::decrypt(circuit, keys.client, outputs);
      t.decrypt_ms = 1e3 * seconds_since(start);
      t.batches = trace.batch_sizes.size();
      t.matches_disable =
          within_noise_bits(decrypted, rt::run_clear(circuit, q), circuit.output_noise_bits);
      r.mismatches += !t.matches_disable;
      timings.push_back(t);
    }
  }
  return r;
}

}  // namespace fheml::bench_models
