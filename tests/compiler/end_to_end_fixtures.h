// Helpers of the end-to-end tests (end_to_end_test.cpp: random graphs in every mode;
// end_to_end_fixed_test.cpp: failure rates, budgets, partitions, profiles, reports and
// diagnostics on fixed graphs): random tensors, keys shared per parameter set and process,
// the three modes and their comparison, test inputs in the quantized domain, the float model
// against disable.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/ir/int_graph.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/noise.h"
#include "tfhe/test_support.h"

namespace fheml::e2e {

using ir::FloatOp;
using ir::FloatTensor;
using ir::IntTensor;
using ir::Shape;
using runtime::IntSample;
using ::testing::HasSubstr;

inline FloatTensor random_tensor(const Shape& shape, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  FloatTensor t(shape);
  for (auto& v : t.data) v = d(rng);
  return t;
}

// One calibration sample per row: a tensor per shape, uniform in [lo, hi].
inline std::vector<quant::Sample> random_samples(const std::vector<Shape>& shapes,
                                                 std::size_t count, double lo, double hi,
                                                 std::mt19937& rng) {
  std::vector<quant::Sample> samples;
  for (std::size_t i = 0; i < count; ++i) {
    quant::Sample s;
    for (const Shape& shape : shapes) s.push_back(random_tensor(shape, rng, lo, hi));
    samples.push_back(std::move(s));
  }
  return samples;
}

inline std::string describe(const IntSample& sample) {
  std::string s;
  for (const auto& t : sample) {
    for (const auto v : t.data) s += std::to_string(v) + " ";
    s += "| ";
  }
  return s;
}

// --- Keys shared by all tests: one generation per parameter set and process.

struct SharedKeys {
  runtime::ClientKeys client;
  runtime::EvaluationKeys evaluation;
};

inline const SharedKeys& keys_for(const compiler::Circuit& circuit) {
  static std::mutex mutex;
  static std::map<std::pair<std::uint64_t, bool>, std::unique_ptr<SharedKeys>> cache;
  std::lock_guard lock(mutex);
  // Every partition's set names the keys (a circuit of one partition: its parameters).
  std::uint64_t id = tfhe::fingerprint(circuit.parameters);
  for (std::size_t p = 1; p < circuit.partitions.size(); ++p) {
    id = id * 0x100000001b3ull ^ tfhe::fingerprint(circuit.partitions[p]);
  }
  auto& slot = cache[{id, circuit.has_lookups}];
  if (!slot) {
    // Default KeygenOptions::security: the parameters must pass the 128-bit check.
    runtime::Keys keys = runtime::keygen(circuit, {tfhe::test_seed(id)});
    slot = std::make_unique<SharedKeys>(
        SharedKeys{std::move(keys.client), runtime::decompress(keys.evaluation)});
  }
  return *slot;
}

inline std::vector<IntSample> execute(const runtime::Program& program,
                                      std::span<const IntSample> samples, std::uint64_t seed) {
  const SharedKeys& keys = keys_for(program.circuit());
  tfhe::Csprng rng(tfhe::test_seed(seed));
  const auto inputs = runtime::encrypt(program.circuit(), keys.client, samples, rng);
  const auto outputs = runtime::run(program, keys.evaluation, inputs);
  return runtime::decrypt(program.circuit(), keys.client, outputs);
}

inline std::vector<IntSample> simulate(const runtime::Program& program,
                                       std::span<const IntSample> samples, std::uint64_t seed) {
  tfhe::Csprng rng(tfhe::test_seed(seed));
  return runtime::run_simulate(program, samples, rng);
}

// The first sample on which `actual` differs from `expected`, or "" when they agree everywhere.
inline std::string first_difference(const std::vector<IntSample>& actual,
                                    const std::vector<IntSample>& expected,
                                    std::span<const IntSample> inputs) {
  if (actual.size() != expected.size()) {
    return std::to_string(actual.size()) + " results for " + std::to_string(expected.size());
  }
  for (std::size_t s = 0; s < actual.size(); ++s) {
    if (actual[s] != expected[s]) {
      return "input " + describe(inputs[s]) + "gives " + describe(actual[s]) + "expected " +
             describe(expected[s]);
    }
  }
  return "";
}

// Per-element differences between two runs over all samples and outputs.
inline std::size_t count_mismatches(const std::vector<IntSample>& actual,
                                    const std::vector<IntSample>& expected) {
  std::size_t mismatches = 0;
  for (std::size_t s = 0; s < actual.size(); ++s) {
    for (std::size_t o = 0; o < actual[s].size(); ++o) {
      for (std::size_t e = 0; e < actual[s][o].size(); ++e) {
        mismatches += actual[s][o].data[e] != expected[s][o].data[e];
      }
    }
  }
  return mismatches;
}

// At least `count` (>= 2) test inputs in the quantized domain of the circuit's inputs: every
// combination when all inputs together hold at most two elements (repeated, with fresh noise each
// time, up to `count`), else the two corners and `count - 2` uniform samples.
inline std::vector<IntSample> test_inputs(const compiler::Circuit& circuit, std::size_t count,
                                          std::mt19937& rng) {
  std::vector<std::int64_t> limits;  // 2^bits per element, all inputs in order
  for (const auto& q : circuit.inputs) {
    for (std::size_t e = 0; e < ir::element_count(q.shape); ++e) {
      limits.push_back(std::int64_t{1} << q.bits);
    }
  }
  const auto make = [&](const std::vector<std::int64_t>& flat) {
    IntSample sample;
    std::size_t next = 0;
    for (const auto& q : circuit.inputs) {
      IntTensor t(q.shape);
      for (auto& v : t.data) v = flat[next++];
      sample.push_back(std::move(t));
    }
    return sample;
  };
  std::vector<IntSample> samples;
  if (limits.size() <= 2) {
    std::vector<std::int64_t> flat(limits.size(), 0);
    while (samples.size() < count ||
           !std::all_of(flat.begin(), flat.end(), [](std::int64_t v) { return v == 0; })) {
      samples.push_back(make(flat));
      std::size_t i = 0;
      while (i < flat.size() && ++flat[i] == limits[i]) flat[i++] = 0;
    }
    return samples;
  }
  std::vector<std::int64_t> low(limits.size(), 0), high(limits.size());
  for (std::size_t i = 0; i < limits.size(); ++i) high[i] = limits[i] - 1;
  samples.push_back(make(low));
  samples.push_back(make(high));
  for (std::size_t s = 2; s < count; ++s) {
    std::vector<std::int64_t> flat(limits.size());
    for (std::size_t i = 0; i < flat.size(); ++i) {
      flat[i] = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(limits[i]));
    }
    samples.push_back(make(flat));
  }
  return samples;
}

inline ir::ValueId dense(ir::FloatGraph& g, ir::ValueId x, std::size_t in, std::size_t out,
                         const std::string& name, std::mt19937& rng) {
  const auto w = g.constant(name + ".weight", random_tensor({out, in}, rng, -1, 1));
  const auto b = g.constant(name + ".bias", random_tensor({out}, rng, -0.3, 0.3));
  return g.gemm(x, w, b, /*trans_b=*/true, name);
}

// Float model on the dequantized test inputs against disable, dequantized: the error relative to
// the spread of the float outputs. Measuring at the dequantized inputs leaves out the input's own
// rounding, which is the client's business, not the compiler's.
struct Accuracy {
  double mean_error = 0;
  double max_error = 0;
  double spread = 0;
};

inline Accuracy float_vs_disable(const compiler::Circuit& circuit, const ir::FloatGraph& graph,
                                 std::span<const IntSample> samples,
                                 const std::vector<IntSample>& disabled) {
  Accuracy a;
  double lo = INFINITY, hi = -INFINITY, total = 0;
  std::size_t n = 0;
  for (std::size_t s = 0; s < samples.size(); ++s) {
    std::vector<FloatTensor> x;
    for (std::size_t i = 0; i < samples[s].size(); ++i) {
      FloatTensor t(samples[s][i].shape);
      for (std::size_t e = 0; e < t.size(); ++e) {
        t.data[e] = circuit.inputs[i].dequantize(samples[s][i].data[e], e);
      }
      x.push_back(std::move(t));
    }
    const auto f = ir::evaluate(graph, x);
    for (std::size_t o = 0; o < f.size(); ++o) {
      const FloatTensor z = circuit.outputs[o].dequantize(disabled[s][o]);
      for (std::size_t e = 0; e < f[o].size(); ++e) {
        const double err = std::abs(f[o].data[e] - z.data[e]);
        a.max_error = std::max(a.max_error, err);
        total += err;
        ++n;
        lo = std::min(lo, f[o].data[e]);
        hi = std::max(hi, f[o].data[e]);
      }
    }
  }
  a.mean_error = total / static_cast<double>(n);
  a.spread = std::max(hi - lo, 1e-9);
  return a;
}

}  // namespace fheml::e2e
