// End to end through the public API: float graph -> compiler::compile -> runtime in its three
// modes. The compiler is tested differentially: on every test input the encrypted circuit
// (execute) and its noise simulation (simulate) must equal the exact integer interpreter
// (disable), and disable must track the float model within the quantization error of its bits,
// on random small graphs and on products of two encrypted inputs. The statistics of failures,
// the failure budget, partitions, the profiles, linear-only circuits, the printed report and
// the compiler's diagnostics are checked on small fixed graphs in end_to_end_fixed_test.cpp.
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

#include "compiler/end_to_end_fixtures.h"
#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/ir/int_graph.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/noise.h"
#include "tfhe/test_support.h"

namespace fheml {
namespace {

using namespace e2e;  // and its using-declarations (FloatOp, IntSample, HasSubstr...)

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

}  // namespace
}  // namespace fheml
