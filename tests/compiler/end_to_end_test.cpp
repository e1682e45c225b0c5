// End to end through the public API: float graph -> compiler::compile -> runtime in its three
// modes. The compiler is tested differentially: on every test input the encrypted circuit
// (execute) and its noise simulation (simulate) must equal the exact integer interpreter
// (disable), and disable must track the float model within the quantization error of its bits.
// The statistics of failures (simulate against execute at an inflated p_error), the global
// failure budget, linear-only circuits, the printed report and the compiler's diagnostics are
// checked on small fixed graphs.
//
// Keys are real 128-bit keys (compile chooses the parameters, keygen checks them), generated once
// per parameter set and process from a fixed test seed. Small bits (2-4) keep bootstraps cheap.
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

namespace fheml {
namespace {

using ir::FloatOp;
using ir::FloatTensor;
using ir::IntTensor;
using ir::Shape;
using runtime::IntSample;
using ::testing::HasSubstr;

FloatTensor random_tensor(const Shape& shape, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  FloatTensor t(shape);
  for (auto& v : t.data) v = d(rng);
  return t;
}

// One calibration sample per row: a tensor per shape, uniform in [lo, hi].
std::vector<quant::Sample> random_samples(const std::vector<Shape>& shapes, std::size_t count,
                                          double lo, double hi, std::mt19937& rng) {
  std::vector<quant::Sample> samples;
  for (std::size_t i = 0; i < count; ++i) {
    quant::Sample s;
    for (const Shape& shape : shapes) s.push_back(random_tensor(shape, rng, lo, hi));
    samples.push_back(std::move(s));
  }
  return samples;
}

std::string describe(const IntSample& sample) {
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

const SharedKeys& keys_for(const compiler::Circuit& circuit) {
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

std::vector<IntSample> execute(const runtime::Program& program, std::span<const IntSample> samples,
                               std::uint64_t seed) {
  const SharedKeys& keys = keys_for(program.circuit());
  tfhe::Csprng rng(tfhe::test_seed(seed));
  const auto inputs = runtime::encrypt(program.circuit(), keys.client, samples, rng);
  const auto outputs = runtime::run(program, keys.evaluation, inputs);
  return runtime::decrypt(program.circuit(), keys.client, outputs);
}

std::vector<IntSample> simulate(const runtime::Program& program, std::span<const IntSample> samples,
                                std::uint64_t seed) {
  tfhe::Csprng rng(tfhe::test_seed(seed));
  return runtime::run_simulate(program, samples, rng);
}

// The first sample on which `actual` differs from `expected`, or "" when they agree everywhere.
std::string first_difference(const std::vector<IntSample>& actual,
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
std::size_t count_mismatches(const std::vector<IntSample>& actual,
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
std::vector<IntSample> test_inputs(const compiler::Circuit& circuit, std::size_t count,
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

// --- Random small graphs.

enum class GraphKind { kMlp, kDag, kTwoInputs, kConv };

struct RandomCase {
  std::string description;
  bool comparison = false;  // the output is 0/1: a near tie may flip it, the error is then 1
  ir::FloatGraph graph;
  std::vector<quant::Sample> calibration;
  compiler::CompileOptions options;
};

const std::vector<FloatOp>& activations() {
  static const std::vector<FloatOp> ops{FloatOp::kRelu, FloatOp::kSigmoid,   FloatOp::kTanh,
                                        FloatOp::kAbs,  FloatOp::kLeakyRelu, FloatOp::kGelu};
  return ops;
}

ir::ValueId activation(ir::FloatGraph& g, FloatOp op, ir::ValueId x) {
  ir::FloatAttributes attributes;
  if (op == FloatOp::kLeakyRelu) attributes.alpha = 0.1;  // ONNX's 0.01 hides at 2-3 bits
  return g.add(op, {x}, attributes);
}

ir::ValueId dense(ir::FloatGraph& g, ir::ValueId x, std::size_t in, std::size_t out,
                  const std::string& name, std::mt19937& rng) {
  const auto w = g.constant(name + ".weight", random_tensor({out, in}, rng, -1, 1));
  const auto b = g.constant(name + ".bias", random_tensor({out}, rng, -0.3, 0.3));
  return g.gemm(x, w, b, /*trans_b=*/true, name);
}

RandomCase random_case(unsigned seed) {
  std::mt19937 rng(1000 + seed);
  RandomCase c;
  const auto kind = static_cast<GraphKind>(seed % 4);
  const FloatOp act = activations()[rng() % activations().size()];
  std::ostringstream what;
  what << "seed " << seed << ": ";
  ir::FloatGraph& g = c.graph;
  std::vector<Shape> shapes;
  switch (kind) {
    case GraphKind::kMlp: {
      const std::size_t in = 1 + rng() % 4, hidden = 2 + rng() % 4;
      shapes = {{1, in}};
      auto h = activation(g, act, dense(g, g.input("x", shapes[0]), in, hidden, "fc1", rng));
      const bool second = rng() % 3 != 0;
      if (second) h = dense(g, h, hidden, 1 + rng() % 3, "fc2", rng);
      g.mark_output(h);
      what << "mlp " << in << "->" << hidden << " " << ir::op_name(act) << (second ? "->fc2" : "");
      break;
    }
    case GraphKind::kDag: {
      const std::size_t in = 1 + rng() % 3, hidden = 2 + rng() % 3;
      shapes = {{1, in}};
      const auto h = dense(g, g.input("x", shapes[0]), in, hidden, "fc1", rng);
      // One encrypted source, several float branches: fused into a single lookup.
      const FloatOp gate = rng() % 2 ? FloatOp::kSigmoid : FloatOp::kTanh;
      auto y = g.add(FloatOp::kMul, {h, g.unary(gate, h)});
      const bool second = rng() % 2 != 0;
      if (second) y = dense(g, y, hidden, 1 + rng() % 2, "fc2", rng);
      g.mark_output(y);
      what << "dag " << in << "->" << hidden << " x*" << ir::op_name(gate) << "(x)"
           << (second ? "->fc2" : "");
      break;
    }
    case GraphKind::kTwoInputs: {
      static const std::vector<FloatOp> ops{FloatOp::kAdd, FloatOp::kMul, FloatOp::kMax,
                                            FloatOp::kGreater};
      const FloatOp op = ops[(seed / 4) % ops.size()];
      c.comparison = op == FloatOp::kGreater;
      const std::size_t width = 1 + rng() % 2;
      shapes = {{1, width}, {1, width}};
      auto y = g.add(op, {g.input("a", shapes[0]), g.input("b", shapes[1])});
      const bool activate = !c.comparison && rng() % 2 != 0;
      if (activate) y = activation(g, act, y);
      g.mark_output(y);
      what << "two inputs [1," << width << "] " << ir::op_name(op)
           << (activate ? " -> " + std::string(ir::op_name(act)) : "");
      break;
    }
    case GraphKind::kConv: {
      shapes = {{1, 1, 4, 4}};
      const auto x = g.input("image", shapes[0]);
      // |w| >= 0.5 > |bias|: relu passes part of the range of both channels, whatever the signs.
      FloatTensor weight = random_tensor({2, 1, 1, 1}, rng, 0.5, 1);
      for (auto& v : weight.data) v = rng() % 2 ? v : -v;
      const auto w = g.constant("conv.weight", std::move(weight));
      const auto b = g.constant("conv.bias", random_tensor({2}, rng, -0.3, 0.3));
      const auto conv = g.add(FloatOp::kConv, {x, w, b}, {}, "conv");
      const auto r = g.unary(FloatOp::kRelu, conv);
      ir::FloatAttributes pool;
      pool.kernel = {2, 2};
      pool.strides = {2, 2};
      const bool max_pool = rng() % 2 != 0;
      const auto p = g.add(max_pool ? FloatOp::kMaxPool : FloatOp::kAvgPool, {r}, pool);
      ir::FloatAttributes flatten;
      flatten.axes = {1};
      const auto f = g.add(FloatOp::kFlatten, {p}, flatten);
      const std::size_t out = 1 + rng() % 2;
      g.mark_output(dense(g, f, 8, out, "fc", rng));
      what << "conv 1x1 2ch relu " << (max_pool ? "max" : "avg") << "_pool flatten fc->" << out;
      break;
    }
  }
  c.calibration = random_samples(shapes, 200, -1, 1, rng);
  const std::uint32_t bits = 2 + rng() % 2;
  // 2-bit weights ({-1, 0, 1} times a scale) mostly test rounding, not the compiler.
  c.options.quantization.n_bits = quant::NBits::uniform(bits);
  c.options.quantization.n_bits.op_weights = 3;
  c.options.quantization.max_lookup_bits = 4;
  c.options.quantization.rounding_threshold_bits = 3 + rng() % 2;
  what << ", n_bits " << bits << ", rounding " << *c.options.quantization.rounding_threshold_bits;
  c.description = what.str();
  return c;
}

// Float model on the dequantized test inputs against disable, dequantized: the error relative to
// the spread of the float outputs. Measuring at the dequantized inputs leaves out the input's own
// rounding, which is the client's business, not the compiler's.
struct Accuracy {
  double mean_error = 0;
  double max_error = 0;
  double spread = 0;
};

Accuracy float_vs_disable(const compiler::Circuit& circuit, const ir::FloatGraph& graph,
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

// Every case goes through compile; the three modes run on the same quantized inputs.
class RandomGraph : public ::testing::TestWithParam<unsigned> {};

TEST_P(RandomGraph, AgreesInAllModesOnEveryTestInput) {
  const unsigned seed = GetParam();
  if (test::sanitize_profile() && seed >= 8) GTEST_SKIP() << "sanitizer profile: seeds 0-7 only";
  const RandomCase c = random_case(seed);
  SCOPED_TRACE(c.description);
  const runtime::Program program(compiler::compile(c.graph, c.calibration, c.options));
  const compiler::Circuit& circuit = program.circuit();
  SCOPED_TRACE(ir::to_string(circuit.graph));
  ASSERT_TRUE(circuit.has_lookups);
  const runtime::Statistics stats = runtime::compute_statistics(circuit);
  ASSERT_LE(stats.max_lookup_bits, 4u);

  std::mt19937 rng(seed);
  const std::vector<IntSample> samples = test_inputs(circuit, 16, rng);
  ASSERT_GE(samples.size(), 16u);
  const std::vector<IntSample> disabled = runtime::run_clear(circuit, samples);

  // 2-3 bit inputs and activations with 3-bit weights: on these seeds the errors of a correct
  // quantization reach 0.2 (mean) and 0.66 (max, a 2-bit abs whose rounded buckets straddle
  // zero) of the output's spread. A gross error (a wrapped lookup, a wrong scale or zero point)
  // is of the order of the spread itself or more.
  const Accuracy a = float_vs_disable(circuit, c.graph, samples, disabled);
  RecordProperty("mean_error_over_spread", std::to_string(a.mean_error / a.spread));
  RecordProperty("max_error_over_spread", std::to_string(a.max_error / a.spread));
  EXPECT_LT(a.mean_error, 0.25 * a.spread) << "float vs disable: mean " << a.mean_error << ", max "
                                           << a.max_error << ", spread " << a.spread;
  if (!c.comparison) {
    EXPECT_LT(a.max_error, 0.75 * a.spread) << "float vs disable: mean " << a.mean_error << ", max "
                                            << a.max_error << ", spread " << a.spread;
  }

  EXPECT_EQ(first_difference(simulate(program, samples, seed), disabled, samples), "")
      << "simulate != disable";
  // The sanitizer build (10-20x slower bootstraps) encrypts the first 4 inputs only.
  const std::vector<IntSample> encrypted_inputs(
      samples.begin(),
      samples.begin() + static_cast<std::ptrdiff_t>(test::sanitize_profile()
                                                        ? std::min<std::size_t>(4, samples.size())
                                                        : samples.size()));
  const std::vector<IntSample> expected(
      disabled.begin(), disabled.begin() + static_cast<std::ptrdiff_t>(encrypted_inputs.size()));
  EXPECT_EQ(first_difference(execute(program, encrypted_inputs, seed), expected, encrypted_inputs),
            "")
      << "execute != disable";
  RecordProperty("inputs", std::to_string(samples.size()));
  RecordProperty("bootstraps_per_input", std::to_string(stats.bootstraps));
}

// Seeds cycle through the four kinds: mlp, dag, two inputs, conv.
INSTANTIATE_TEST_SUITE_P(Seeds, RandomGraph, ::testing::Range(0u, 24u));

// a * b of two encrypted inputs calibrated on [-1, 1]: at 3 bits their zero points are 3.5 (not
// integers). The product must still be a*b within a quarter of scale_a * scale_b: the squares
// are exact and the zero points' cross terms are scaled to integers (quantize.cpp, multiply).
TEST(EndToEnd, ProductOfTwoEncryptedInputsIsExactUpToTheFloorOfTheSquares) {
  ir::FloatGraph g;
  const auto a = g.input("a", {1, 1});
  const auto b = g.input("b", {1, 1});
  g.mark_output(g.add(FloatOp::kMul, {a, b}));
  std::vector<quant::Sample> calibration;
  for (int i = 0; i <= 20; ++i) {
    for (int j = 0; j <= 20; ++j) {
      calibration.push_back(
          {FloatTensor({1, 1}, {-1 + 0.1 * i}), FloatTensor({1, 1}, {1 - 0.1 * j})});
    }
  }
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(3);
  const compiler::Circuit circuit = compiler::compile(g, calibration, options);
  ASSERT_DOUBLE_EQ(circuit.inputs[0].zero_point_of(0), 3.5);
  std::mt19937 rng(0);
  const std::vector<IntSample> samples = test_inputs(circuit, 64, rng);  // all 64 pairs
  ASSERT_EQ(samples.size(), 64u);
  const auto disabled = runtime::run_clear(circuit, samples);
  const double step = circuit.inputs[0].scale_of(0) * circuit.inputs[1].scale_of(0);
  double worst = 0;
  std::string where;
  for (std::size_t s = 0; s < samples.size(); ++s) {
    const double x = circuit.inputs[0].dequantize(samples[s][0].data[0]);
    const double y = circuit.inputs[1].dequantize(samples[s][1].data[0]);
    const double z = circuit.outputs[0].dequantize(disabled[s][0]).data[0];
    if (std::abs(z - x * y) > worst) {
      worst = std::abs(z - x * y);
      where = "a=" + std::to_string(x) + " b=" + std::to_string(y) +
              ": a*b=" + std::to_string(x * y) + ", disable gives " + std::to_string(z);
    }
  }
  EXPECT_LE(worst, 0.25 * step + 1e-9) << where << "\n" << ir::to_string(circuit.graph);
}

// --- Failures: simulate's rate must be execute's.

// One lookup with distinct outputs for its 8 inputs (sin is not monotonic on 0..7, its 6-bit
// values all differ), compiled at p_error = 0.1 so that failures are frequent: the per-element
// mismatch rates against disable of execute and simulate must agree within 4 sigma, be visible
// (> 0), and stay within the union bound over the lookups on the path.
TEST(EndToEnd, SimulatedFailureRateMatchesExecutionAtAHighPError) {
  constexpr double kPError = 0.1;
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 1});
  const auto h = g.gemm(x, g.constant("w", FloatTensor({1, 1}, {1.0})),
                        g.constant("b", FloatTensor({1}, {0.0})), true, "fc");
  g.mark_output(g.unary(FloatOp::kSin, h));
  std::vector<quant::Sample> calibration;
  for (int v = 0; v < 8; ++v) calibration.push_back({FloatTensor({1, 1}, {double(v)})});
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(3);
  options.quantization.n_bits.model_outputs = 6;
  options.p_error = kPError;
  const runtime::Program program(compiler::compile(g, calibration, options));
  const compiler::Circuit& circuit = program.circuit();
  const runtime::Statistics stats = runtime::compute_statistics(circuit);
  ASSERT_EQ(stats.bootstraps, 1u) << ir::to_string(circuit.graph);
  ASSERT_EQ(stats.depth, 1u);

  const std::size_t count = test::sanitize_profile() ? 200 : 1000;
  std::vector<IntSample> samples;
  for (std::size_t i = 0; i < count; ++i) {
    samples.push_back({IntTensor({1, 1}, {static_cast<std::int64_t>(i % 8)})});
  }
  const auto disabled = runtime::run_clear(circuit, samples);
  for (std::int64_t u = 0; u < 8; ++u) {  // a failure must show
    for (std::int64_t v = 0; v < u; ++v) {
      ASSERT_NE(disabled[u][0].data[0], disabled[v][0].data[0]) << u << " and " << v;
    }
  }
  const auto n = static_cast<double>(count);
  const double executed =
      static_cast<double>(count_mismatches(execute(program, samples, 31), disabled)) / n;
  const double simulated =
      static_cast<double>(count_mismatches(simulate(program, samples, 32), disabled)) / n;
  const double pooled = (executed + simulated) / 2;
  const double sigma = std::sqrt(pooled * (1 - pooled) * 2 / n);
  const double bound = kPError * static_cast<double>(stats.depth);  // lookups on the path
  RecordProperty("model_log2_p_fail", std::to_string(circuit.noise_sites[0].log2_p_fail));
  RecordProperty("execute_rate", std::to_string(executed));
  RecordProperty("simulate_rate", std::to_string(simulated));
  EXPECT_LE(std::abs(executed - simulated), 4 * sigma)
      << "execute " << executed << ", simulate " << simulated;
  EXPECT_GT(executed, 0.0);
  EXPECT_GT(simulated, 0.0);
  const double bound_sigma = std::sqrt(bound * (1 - bound) / n);
  EXPECT_LE(executed, bound + 4 * bound_sigma) << "union bound " << bound;
  EXPECT_LE(simulated, bound + 4 * bound_sigma) << "union bound " << bound;
}

// Each lookup fails at the rate of its own partition's keys: two lookups on one input, sin and
// cos (distinct 6-bit values on 0..7), the second moved into a partition of its own whose set
// (same k and N, searched at p_error 0.01) fails less often than the first's (0.1). Per output,
// execute's mismatch rate must match simulate's within 4 sigma, and the two partitions' rates
// must differ as their models say.
TEST(EndToEnd, SimulatedFailureRatePerPartitionMatchesExecution) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 1});
  const auto h = g.gemm(x, g.constant("w", FloatTensor({1, 1}, {1.0})),
                        g.constant("b", FloatTensor({1}, {0.0})), true, "fc");
  g.mark_output(g.unary(FloatOp::kSin, h));
  g.mark_output(g.unary(FloatOp::kCos, h));
  std::vector<quant::Sample> calibration;
  for (int v = 0; v < 8; ++v) calibration.push_back({FloatTensor({1, 1}, {double(v)})});
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(3);
  options.quantization.n_bits.model_outputs = 6;
  options.p_error = 0.1;
  options.max_partitions = 1;
  compiler::Circuit circuit = compiler::compile(g, calibration, options);
  compiler::CompileOptions tighter = options;
  tighter.p_error = 0.01;
  tighter.search.min_glwe_dimension = tighter.search.max_glwe_dimension =
      circuit.parameters.glwe_dimension.value;
  tighter.search.min_log2_polynomial_size = tighter.search.max_log2_polynomial_size =
      static_cast<std::size_t>(std::log2(circuit.parameters.polynomial_size.value));
  const compiler::Circuit other = compiler::compile(g, calibration, tighter);
  ASSERT_EQ(ir::to_string(other.graph), ir::to_string(circuit.graph));
  ASSERT_EQ(other.parameters.glwe_noise, circuit.parameters.glwe_noise);
  ASSERT_NE(other.parameters, circuit.parameters);
  // The cos lookup (the second output's node) into partition 1.
  const ir::ValueId cos_node = circuit.graph.outputs[1];
  ASSERT_EQ(circuit.graph.node(cos_node).op, ir::IntOp::kLookup);
  circuit.partitions = {circuit.parameters, other.parameters};
  circuit.partition.assign(circuit.graph.nodes.size(), 0);
  circuit.partition[cos_node.index] = 1;
  const runtime::Program program(circuit);
  std::vector<double> model(2);
  for (const compiler::NoiseSite& site : circuit.noise_sites) {
    if (site.is_output) continue;
    const bool second = site.node == cos_node;
    const tfhe::PbsParameters& p = circuit.partitions[second ? 1 : 0];
    model[second ? 1 : 0] = tfhe::failure_probability(p, tfhe::MessageBits{site.bits}, site.nu2);
  }
  ASSERT_GT(model[0], 2 * model[1]) << model[0] << " " << model[1];

  const std::size_t count = test::sanitize_profile() ? 200 : 1000;
  std::vector<IntSample> samples;
  for (std::size_t i = 0; i < count; ++i) {
    samples.push_back({IntTensor({1, 1}, {static_cast<std::int64_t>(i % 8)})});
  }
  const auto disabled = runtime::run_clear(circuit, samples);
  const auto executed = execute(program, samples, 41);
  const auto simulated = simulate(program, samples, 42);
  const auto n = static_cast<double>(count);
  std::vector<double> rate_execute(2), rate_simulate(2);
  for (std::size_t o = 0; o < 2; ++o) {
    std::size_t e = 0, s = 0;
    for (std::size_t i = 0; i < count; ++i) {
      e += executed[i][o] != disabled[i][o];
      s += simulated[i][o] != disabled[i][o];
    }
    rate_execute[o] = static_cast<double>(e) / n;
    rate_simulate[o] = static_cast<double>(s) / n;
    const double pooled = (rate_execute[o] + rate_simulate[o]) / 2;
    const double sigma = std::sqrt(std::max(pooled * (1 - pooled), 1.0 / n) * 2 / n);
    EXPECT_LE(std::abs(rate_execute[o] - rate_simulate[o]), 4 * sigma)
        << "output " << o << ": execute " << rate_execute[o] << ", simulate " << rate_simulate[o]
        << ", model " << model[o];
    const double model_sigma = std::sqrt(model[o] * (1 - model[o]) / n);
    EXPECT_LE(rate_execute[o], model[o] + 4 * model_sigma + 1.0 / n) << "output " << o;
  }
  RecordProperty("execute_rates",
                 std::to_string(rate_execute[0]) + " " + std::to_string(rate_execute[1]));
  RecordProperty("simulate_rates",
                 std::to_string(rate_simulate[0]) + " " + std::to_string(rate_simulate[1]));
  // Partition 1's keys really ran the cos lookup: its rate is its model's, not partition 0's.
  EXPECT_GT(rate_execute[0], rate_execute[1]);
  EXPECT_GT(rate_simulate[0], rate_simulate[1]);
}

// --- The failure budget.

ir::FloatGraph small_mlp(std::mt19937& rng) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 3});
  const auto h = g.unary(FloatOp::kRelu, dense(g, x, 3, 4, "fc1", rng));
  g.mark_output(dense(g, h, 4, 2, "fc2", rng));
  return g;
}

compiler::CompileOptions small_bits() {
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(3);
  options.quantization.max_lookup_bits = 4;
  options.quantization.rounding_threshold_bits = 4;
  return options;
}

// --- Partitions: lookups with their own parameter sets.

// A network whose second layer reads the first through large weights: the first layer's
// lookups need a low-noise (2-level) bootstrap key, the second layer's and the rounding chunks
// of both do not. Compiled with partitions it must get two sets, run in every mode equal to
// disable, and report which lookup is in which partition.
TEST(EndToEnd, PartitionedCircuitAgreesInAllModes) {
  std::mt19937 rng(3);
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 6});
  const auto h1 = g.unary(FloatOp::kRelu, dense(g, x, 6, 12, "fc1", rng));
  const auto h2 = g.unary(FloatOp::kRelu, dense(g, h1, 12, 12, "fc2", rng));
  g.mark_output(dense(g, h2, 12, 3, "fc3", rng));
  const auto calibration = random_samples({{1, 6}}, 200, -1, 1, rng);
  compiler::CompileOptions options = small_bits();
  options.max_partitions = 1;
  const compiler::Circuit single = compiler::compile(g, calibration, options);
  options.max_partitions = 3;
  const runtime::Program program(compiler::compile(g, calibration, options));
  const compiler::Circuit& circuit = program.circuit();
  SCOPED_TRACE(circuit.parameter_choice);
  ASSERT_GE(circuit.partitions.size(), 2u);
  EXPECT_EQ(single.partitions.size(), 1u);
  const runtime::Statistics one = runtime::compute_statistics(single);
  const runtime::Statistics split = runtime::compute_statistics(circuit);
  EXPECT_EQ(split.bootstraps, one.bootstraps);
  EXPECT_LT(split.estimated_latency_ms, 0.95 * one.estimated_latency_ms);
  ASSERT_EQ(split.bootstraps_per_partition.size(), circuit.partitions.size());
  for (const std::size_t b : split.bootstraps_per_partition) EXPECT_GT(b, 0u);
  for (const compiler::NoiseSite& site : circuit.noise_sites) {
    EXPECT_LE(site.log2_p_fail, -40.0) << site.label;
  }
  const std::string report = runtime::report(circuit, split);
  EXPECT_THAT(report, HasSubstr("partitions: " + std::to_string(circuit.partitions.size())));
  EXPECT_THAT(report, HasSubstr(" P1 p="));

  const std::vector<IntSample> samples = test_inputs(circuit, 8, rng);
  const std::vector<IntSample> disabled = runtime::run_clear(circuit, samples);
  EXPECT_EQ(disabled, runtime::run_clear(single, samples));
  EXPECT_EQ(first_difference(simulate(program, samples, 5), disabled, samples), "");
  const std::size_t encrypted = test::sanitize_profile() ? 2 : samples.size();
  const std::vector<IntSample> inputs(samples.begin(),
                                      samples.begin() + static_cast<std::ptrdiff_t>(encrypted));
  const std::vector<IntSample> expected(disabled.begin(),
                                        disabled.begin() + static_cast<std::ptrdiff_t>(encrypted));
  EXPECT_EQ(first_difference(execute(program, inputs, 6), expected, inputs), "");
  // Keys of a one-partition circuit do not run it.
  const runtime::Keys other = runtime::keygen(single, {tfhe::test_seed(1)});
  tfhe::Csprng noise(tfhe::test_seed(2));
  EXPECT_THROW(runtime::encrypt(circuit, other.client, inputs, noise), std::invalid_argument);
  const auto encrypted_inputs = runtime::encrypt(circuit, keys_for(circuit).client, inputs, noise);
  EXPECT_THROW(runtime::run(program, runtime::decompress(other.evaluation), encrypted_inputs),
               std::invalid_argument);
}

TEST(EndToEnd, GlobalPErrorBoundsTheWholeCircuit) {
  std::mt19937 rng(7);
  const ir::FloatGraph g = small_mlp(rng);
  const auto calibration = random_samples({{1, 3}}, 100, -1, 1, rng);

  compiler::CompileOptions global = small_bits();
  global.global_p_error = std::exp2(-30);
  compiler::CompileOptions per_lookup = small_bits();
  per_lookup.p_error = std::exp2(-40);
  for (const auto* options : {&global, &per_lookup}) {
    const runtime::Program program(compiler::compile(g, calibration, *options));
    const compiler::Circuit& circuit = program.circuit();
    // The union bound counts every bootstrap and every decrypted output element.
    const std::size_t sites = runtime::compute_statistics(circuit).bootstraps +
                              ir::element_count(circuit.graph.node(circuit.graph.outputs[0]).shape);
    if (options->global_p_error) {
      EXPECT_LE(circuit.global_p_error, std::exp2(-30));
    } else {
      EXPECT_LE(circuit.log2_p_error, -40.0);
      EXPECT_LE(circuit.global_p_error, static_cast<double>(sites) * std::exp2(-40));
    }
    EXPECT_GT(circuit.global_p_error, 0.0);
    for (const compiler::NoiseSite& site : circuit.noise_sites) {
      EXPECT_LE(site.log2_p_fail, options->global_p_error ? -30.0 : -40.0) << site.label;
    }
    // Valid: it runs, and runs right.
    std::mt19937 inputs_rng(8);
    const auto samples = test_inputs(circuit, 16, inputs_rng);
    const auto disabled = runtime::run_clear(circuit, samples);
    EXPECT_EQ(first_difference(simulate(program, samples, 9), disabled, samples), "");
    EXPECT_EQ(first_difference(execute(program, samples, 10), disabled, samples), "");
  }

  compiler::CompileOptions both = small_bits();
  both.p_error = std::exp2(-40);
  both.global_p_error = std::exp2(-30);
  try {
    (void)compiler::compile(g, calibration, both);
    FAIL() << "p_error and global_p_error together must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("p_error"));
    EXPECT_THAT(e.what(), HasSubstr("global_p_error"));
    EXPECT_THAT(e.what(), HasSubstr("not both"));
  }
  for (const std::size_t partitions : {std::size_t{0}, compiler::kMaxPartitions + 1}) {
    compiler::CompileOptions bad = small_bits();
    bad.max_partitions = partitions;
    try {
      (void)compiler::compile(g, calibration, bad);
      FAIL() << "max_partitions " << partitions << " must be refused";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr("max_partitions must be in 1..8"));
    }
  }
}

// --- The ind-cpa-d profile: decrypted results may reach the server.

TEST(EndToEnd, IndCpaDProfileBoundsEveryBootstrapAt2m64With132BitKeys) {
  std::mt19937 rng(7);
  const ir::FloatGraph g = small_mlp(rng);
  const auto calibration = random_samples({{1, 3}}, 100, -1, 1, rng);

  compiler::CompileOptions options = small_bits();
  options.profile = compiler::Profile::kIndCpaD;
  const runtime::Program program(compiler::compile(g, calibration, options));
  const compiler::Circuit& circuit = program.circuit();
  EXPECT_LE(circuit.log2_p_error, compiler::kIndCpaDLog2PError);
  for (const compiler::NoiseSite& site : circuit.noise_sites) {
    EXPECT_LE(site.log2_p_fail, -64.0) << site.label;
  }
  EXPECT_EQ(tfhe::achieved_security(circuit.parameters), tfhe::SecurityLevel::k132);
  EXPECT_TRUE(compiler::meets_ind_cpa_d(circuit));
  EXPECT_THAT(runtime::report(circuit, runtime::compute_statistics(circuit)),
              HasSubstr("profile: ind-cpa-d"));
  std::mt19937 inputs_rng(8);
  const auto samples = test_inputs(circuit, 4, inputs_rng);
  const auto disabled = runtime::run_clear(circuit, samples);
  EXPECT_EQ(first_difference(execute(program, samples, 10), disabled, samples), "");

  // The default profile does not meet it; the same budget reached by hand does (the check looks
  // at the circuit, not at how it was made).
  const compiler::Circuit standard = compiler::compile(g, calibration, small_bits());
  EXPECT_FALSE(compiler::meets_ind_cpa_d(standard));
  EXPECT_THAT(runtime::report(standard, runtime::compute_statistics(standard)),
              HasSubstr("profile: standard"));
  compiler::CompileOptions by_hand = small_bits();
  by_hand.p_error = std::exp2(-64);
  EXPECT_FALSE(compiler::meets_ind_cpa_d(compiler::compile(g, calibration, by_hand)))
      << "128-bit keys";
  by_hand.search.security = tfhe::SecurityLevel::k132;
  EXPECT_TRUE(compiler::meets_ind_cpa_d(compiler::compile(g, calibration, by_hand)));

  // A tighter budget is kept; a looser one is refused by name.
  compiler::CompileOptions tighter = options;
  tighter.global_p_error = std::exp2(-70);
  const compiler::Circuit tight = compiler::compile(g, calibration, tighter);
  EXPECT_LE(tight.global_p_error, std::exp2(-70));
  EXPECT_TRUE(compiler::meets_ind_cpa_d(tight));
  for (const auto& [p, g_p] :
       {std::pair<std::optional<double>, std::optional<double>>{std::exp2(-40), std::nullopt},
        {std::exp2(-63.9), std::nullopt},
        {std::nullopt, 1e-12}}) {
    compiler::CompileOptions looser = options;
    looser.p_error = p;
    looser.global_p_error = g_p;
    try {
      (void)compiler::compile(g, calibration, looser);
      FAIL() << "a budget above 2^-64 must be refused under ind-cpa-d";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr("ind-cpa-d profile needs"));
      EXPECT_THAT(e.what(), HasSubstr(p ? "p_error" : "global_p_error"));
    }
  }
  EXPECT_EQ(compiler::parse_profile("ind-cpa-d"), compiler::Profile::kIndCpaD);
  EXPECT_EQ(compiler::to_string(compiler::parse_profile("standard")), "standard");
  EXPECT_THROW((void)compiler::parse_profile("IND-CPA-D"), std::invalid_argument);
}

// --- A linear model: no lookup, no server key, a wide output decoded exactly.

TEST(EndToEnd, LinearOnlyGraphRunsWithoutLookupsAndDecodesAWideOutputExactly) {
  std::mt19937 rng(11);
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 30});
  g.mark_output(dense(g, x, 30, 3, "fc", rng));
  const auto calibration = random_samples({{1, 30}}, 200, -1, 1, rng);
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(8);
  const runtime::Program program(compiler::compile(g, calibration, options));
  const compiler::Circuit& circuit = program.circuit();
  EXPECT_FALSE(circuit.has_lookups);
  ASSERT_EQ(circuit.graph.outputs.size(), 1u);
  const ir::ValueId out = circuit.graph.outputs[0];
  EXPECT_GT(circuit.width[out.index], 16u) << ir::to_string(circuit.graph);
  RecordProperty("output_width", std::to_string(circuit.width[out.index]));
  EXPECT_EQ(runtime::compute_statistics(circuit).bootstraps, 0u);

  const auto samples = test_inputs(circuit, 52, rng);  // 50 random rows and the two corners
  const auto disabled = runtime::run_clear(circuit, samples);
  for (std::size_t s = 0; s < samples.size(); ++s) {  // the window holds the exact accumulators
    ASSERT_EQ(disabled[s][0], ir::evaluate(circuit.graph, samples[s])[0]) << describe(samples[s]);
  }
  EXPECT_FALSE(keys_for(circuit).evaluation.server_key.has_value());
  EXPECT_EQ(first_difference(execute(program, samples, 12), disabled, samples), "");
  EXPECT_EQ(first_difference(simulate(program, samples, 13), disabled, samples), "");
  // 8 bits everywhere and no activation: only the weights' and the inputs' rounding.
  const Accuracy a = float_vs_disable(circuit, g, samples, disabled);
  EXPECT_LT(a.max_error, 0.03 * a.spread) << "max " << a.max_error << ", spread " << a.spread;
}

// Lookups on a first layer read fresh encryptions of the inputs; later ones read bootstrapped
// ciphertexts: each noise site counts its weights against the right variance.
TEST(EndToEnd, NoiseSitesCountInputsAtTheFreshVariance) {
  std::mt19937 rng(17);
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 6});
  const auto h = g.unary(FloatOp::kRelu, dense(g, x, 6, 5, "fc1", rng));
  g.mark_output(g.unary(FloatOp::kRelu, dense(g, h, 5, 3, "fc2", rng)));
  const auto calibration = random_samples({{1, 6}}, 100, -1, 1, rng);
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(4);
  options.quantization.max_lookup_bits = 4;
  options.quantization.rounding_threshold_bits = 4;
  options.quantization.rounding_method = quant::RoundingMethod::kApproximate;
  const compiler::Circuit circuit = compiler::compile(g, calibration, options);
  const auto sum_of_squares = [&](const ir::IntNode& linear) {
    double largest = 0;
    for (std::size_t r = 0; r + 1 < linear.linear.row_begin.size(); ++r) {
      double sum = 0;
      for (std::size_t k = linear.linear.row_begin[r]; k < linear.linear.row_begin[r + 1]; ++k) {
        const auto c = static_cast<double>(linear.linear.entries[k].coefficient);
        sum += c * c;
      }
      largest = std::max(largest, sum);
    }
    return largest;
  };
  std::vector<const compiler::NoiseSite*> lookups;
  for (const auto& site : circuit.noise_sites)
    if (!site.is_output) lookups.push_back(&site);
  ASSERT_EQ(lookups.size(), 2u) << ir::to_string(circuit.graph);
  for (std::size_t layer = 0; layer < 2; ++layer) {
    const ir::IntNode& lookup = circuit.graph.node(lookups[layer]->node);
    const ir::IntNode& source = circuit.graph.node(lookup.inputs[0]);
    ASSERT_EQ(source.op, ir::IntOp::kLinear);
    const int shift = static_cast<int>(circuit.width[lookup.inputs[0].index]) -
                      static_cast<int>(lookup.lookup.bits + lookup.lookup.shift);
    const double expected = sum_of_squares(source) * std::ldexp(1.0, 2 * shift);
    const bool reads_inputs = circuit.graph.node(source.inputs[0]).op == ir::IntOp::kInput;
    EXPECT_EQ(reads_inputs, layer == 0);
    EXPECT_EQ(lookups[layer]->nu2_fresh, reads_inputs ? expected : 0.0) << layer;
    EXPECT_EQ(lookups[layer]->nu2, reads_inputs ? 0.0 : expected) << layer;
  }
  // The first layer's lookup, whose noise is the inputs' fresh noise, is not the one that binds.
  EXPECT_EQ(circuit.parameter_choice.find(lookups[0]->label), std::string::npos)
      << circuit.parameter_choice;
}

// --- The report of a fixed circuit (golden lines; the timing and size lines are left out).

TEST(EndToEnd, ReportOfATinyCircuitIsGolden) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 2});
  const auto w = g.constant("w", FloatTensor({2, 2}, {1, -1, 0.5, 2}));
  const auto b = g.constant("b", FloatTensor({2}, {0, 0}));
  g.mark_output(g.unary(FloatOp::kRelu, g.gemm(x, w, b, true, "fc")));
  std::vector<quant::Sample> calibration;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) calibration.push_back({FloatTensor({1, 2}, {i * 1.0, j * 1.0})});
  }
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(2);
  const compiler::Circuit circuit = compiler::compile(g, calibration, options);
  const std::string text = runtime::report(circuit, runtime::compute_statistics(circuit));
  const std::vector<std::string> golden = {
      "node  op               origin                       range                    bits   W  "
      "     nu2  log2 pf",
      "%0    input            input x                      [0, 3]                      2   3  "
      "       -        -",
      "%1    linear           gemm fc                      [-3, 3]                     3   3  "
      "       -        -",
      "%2    lookup p=3 x2 out relu(gemm fc)                [0, 3]                      2   1  "
      "in 2^1.0    -40.5",
      "noise sites:",
      "  lookup %2 relu(gemm fc)                  bits  3  nu2         0  inputs     2^1.0  log2 "
      "p_fail -40.5",
      "p_error bound: 2^-40.0 per lookup, global 1.27e-12",
      "lookups: 2 x 3-bit; bootstraps 2, key switches 2, linear ops 7, depth 1",
      "max width 3, max lookup bits 3, max bit width 3",
  };
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  for (const std::string& expected : golden) {
    EXPECT_NE(std::find(lines.begin(), lines.end(), expected), lines.end())
        << "missing line:\n"
        << expected << "\nin the report:\n"
        << text;
  }
  // The node table comes first, in node order.
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(lines.begin(), lines.begin() + 4),
            std::vector<std::string>(golden.begin(), golden.begin() + 4));
}

// --- Diagnostics through compile().

TEST(EndToEnd, ALookupTooWideWithoutRoundingNamesTheLookupAndTheFix) {
  std::mt19937 rng(13);
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 16});
  g.mark_output(g.unary(FloatOp::kRelu, dense(g, x, 16, 4, "fc1", rng)));
  const auto calibration = random_samples({{1, 16}}, 100, -1, 1, rng);
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(3);
  options.quantization.max_lookup_bits = 4;
  try {
    (void)compiler::compile(g, calibration, options);
    FAIL() << "a 16-input 3-bit accumulator does not fit a 4-bit lookup";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("relu(gemm fc1)"));
    EXPECT_THAT(e.what(), HasSubstr("input needs"));
    EXPECT_THAT(e.what(), HasSubstr("lookups take at most 4"));
    EXPECT_THAT(e.what(), HasSubstr("rounding_threshold_bits"));
  }
}

// 14-bit inputs and weights rounded to 14-bit lookups: the rounding lookups read 14 bits out of a
// ~30-bit accumulator, whose noise no N <= 2^16 can bring under 2^-40.
TEST(EndToEnd, NoParameterSetNamesTheLookupAndTheFix) {
  std::mt19937 rng(17);
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 4});
  g.mark_output(g.unary(FloatOp::kRelu, dense(g, x, 4, 3, "fc1", rng)));
  const auto calibration = random_samples({{1, 4}}, 100, -1, 1, rng);
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(14);
  options.quantization.max_lookup_bits = 16;
  options.quantization.rounding_threshold_bits = 14;
  try {
    (void)compiler::compile(g, calibration, options);
    FAIL() << "14-bit lookups on a wide accumulator cannot meet 2^-40";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("no 128-bit parameter set"));
    EXPECT_THAT(e.what(), HasSubstr("relu(gemm fc1)"));
    EXPECT_THAT(e.what(), HasSubstr("14 bits"));
    EXPECT_THAT(e.what(), HasSubstr("Lower rounding_threshold_bits or n_bits"));
    EXPECT_THAT(e.what(), HasSubstr("p_error"));
  }
}

}  // namespace
}  // namespace fheml
