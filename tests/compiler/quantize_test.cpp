// Quantization and lookup fusion: structure of the integer graph, diagnostics, and the
// differential check float model vs the integer graph's clear evaluation (`disable`).
#include "fheml/quant/quantize.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "fheml/ir/float_graph.h"
#include "fheml/ir/int_graph.h"

namespace fheml {
namespace {

using ir::FloatOp;
using ir::FloatTensor;
using ir::Shape;
using ::testing::HasSubstr;

FloatTensor random_tensor(const Shape& shape, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  FloatTensor t(shape);
  for (auto& v : t.data) v = d(rng);
  return t;
}

std::vector<quant::Sample> random_samples(const Shape& shape, std::size_t count, double lo,
                                          double hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<quant::Sample> samples;
  for (std::size_t i = 0; i < count; ++i) samples.push_back({random_tensor(shape, rng, lo, hi)});
  return samples;
}

// The clear integer evaluation, dequantized: what `disable` returns.
std::vector<FloatTensor> run_quantized(const quant::QuantizedGraph& q, const quant::Sample& x) {
  std::vector<ir::IntTensor> ints;
  for (std::size_t i = 0; i < x.size(); ++i) ints.push_back(q.inputs[i].quantize(x[i]));
  const auto out = ir::evaluate(q.graph, ints);
  std::vector<FloatTensor> result;
  for (std::size_t i = 0; i < out.size(); ++i) result.push_back(q.outputs[i].dequantize(out[i]));
  return result;
}

// Largest |float - quantized| over every output element of `samples`, and the largest |float|.
struct Deviation {
  double error = 0.0;
  double spread = 0.0;
};
Deviation deviation(const ir::FloatGraph& g, const quant::QuantizedGraph& q,
                    const std::vector<quant::Sample>& samples) {
  Deviation d;
  for (const auto& s : samples) {
    const auto f = ir::evaluate(g, s)[0];
    const auto z = run_quantized(q, s)[0];
    for (std::size_t i = 0; i < f.size(); ++i) {
      d.error = std::max(d.error, std::abs(f.data[i] - z.data[i]));
      d.spread = std::max(d.spread, std::abs(f.data[i]));
    }
  }
  return d;
}

std::size_t count_ops(const ir::IntGraph& g, ir::IntOp op) {
  return static_cast<std::size_t>(std::count_if(g.nodes.begin(), g.nodes.end(),
                                                [&](const ir::IntNode& n) { return n.op == op; }));
}

// x -> gemm -> (+c) -> relu -> (*c) -> gemm: the float chain between the gemms is one lookup.
ir::FloatGraph two_layer(std::mt19937& rng, std::size_t in, std::size_t hidden, std::size_t out) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, in});
  const auto w1 = g.constant("w1", random_tensor({hidden, in}, rng, -1, 1));
  const auto b1 = g.constant("b1", random_tensor({hidden}, rng, -0.5, 0.5));
  const auto h = g.gemm(x, w1, b1, true, "fc1");
  const auto shifted =
      g.add(FloatOp::kAdd, {h, g.constant("c", random_tensor({hidden}, rng, -0.2, 0.2))});
  const auto r = g.unary(FloatOp::kRelu, shifted);
  const auto scaled = g.add(FloatOp::kMul, {r, g.constant("s", FloatTensor({1}, {0.5}))});
  const auto w2 = g.constant("w2", random_tensor({out, hidden}, rng, -1, 1));
  const auto b2 = g.constant("b2", random_tensor({out}, rng, -0.5, 0.5));
  g.mark_output(g.gemm(scaled, w2, b2, true, "fc2"));
  return g;
}

TEST(Quantize, FusesTheFloatChainBetweenTwoLinearOpsIntoOneLookup) {
  std::mt19937 rng(1);
  const auto g = two_layer(rng, 4, 8, 3);
  const auto samples = random_samples({1, 4}, 200, -1, 1, 2);
  quant::QuantizeOptions options;
  options.n_bits = quant::NBits::uniform(3);
  const auto q = quant::quantize(g, samples, options);
  const std::string text = ir::to_string(q.graph);
  EXPECT_EQ(count_ops(q.graph, ir::IntOp::kLookup), 1u) << text;
  EXPECT_EQ(count_ops(q.graph, ir::IntOp::kLinear), 2u) << text;
  EXPECT_EQ(q.graph.nodes.size(), 4u) << text;
  EXPECT_THAT(text, HasSubstr("mul(relu(add(gemm fc1, c)), s)"));
  // The lookup has one table per element: the constant added before relu differs per element.
  for (const auto& n : q.graph.nodes) {
    if (n.op == ir::IntOp::kLookup) {
      EXPECT_EQ(n.lookup.tables.size(), 8u) << text;
    }
  }
}

TEST(Quantize, GoldenTextOfATinyModel) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 2});
  const auto w = g.constant("w", FloatTensor({2, 2}, {1, -1, 0.5, 2}));
  const auto b = g.constant("b", FloatTensor({2}, {0, 0}));
  g.mark_output(g.unary(FloatOp::kRelu, g.gemm(x, w, b, true, "fc")));
  std::vector<quant::Sample> samples;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) samples.push_back({FloatTensor({1, 2}, {i * 1.0, j * 1.0})});
  }
  quant::QuantizeOptions options;
  options.n_bits = quant::NBits::uniform(2);
  const auto q = quant::quantize(g, samples, options);
  // Inputs in [0, 3] at 2 bits: scale 1. Weights per row: [1,-1] exact, [0.5, 2] = 0.5*[1, 4]
  // needs 4 > qmax = 1 at 2 bits, so it is quantized to [0, 1] * 2.
  EXPECT_EQ(
      ir::to_string(q.graph),
      "%0 = input {origin=\"input x\"} : i[0,3]u2 [1,2]\n"
      "%1 = linear %0 {origin=\"gemm fc\", terms=3, max|w|=1} : i[-3,3]u3 [1,2]\n"
      "%2 = lookup %1 {origin=\"relu(gemm fc)\", offset=3, bits=3, tables=2} : i[0,3]u2 [1,2]\n"
      "output %2\n");
}

TEST(Quantize, WideAccumulatorWithoutRoundingIsRefusedWithTheFix) {
  std::mt19937 rng(3);
  const auto g = two_layer(rng, 64, 16, 2);
  const auto samples = random_samples({1, 64}, 100, -1, 1, 4);
  quant::QuantizeOptions options;  // 8 bits everywhere, lookups at most 8 bits
  try {
    (void)quant::quantize(g, samples, options);
    FAIL() << "a 64-input 8-bit accumulator cannot fit an 8-bit lookup";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("input needs"));
    EXPECT_THAT(e.what(), HasSubstr("relu(add(gemm fc1"));
    EXPECT_THAT(e.what(), HasSubstr("lookups take at most 8"));
    EXPECT_THAT(e.what(), HasSubstr("rounding_threshold_bits"));
  }
}

TEST(Quantize, RoundingMakesAWideAccumulatorFitAndStaysClose) {
  std::mt19937 rng(5);
  const auto g = two_layer(rng, 64, 16, 2);
  const auto samples = random_samples({1, 64}, 300, -1, 1, 6);
  quant::QuantizeOptions options;
  options.rounding_threshold_bits = 6;
  const auto q = quant::quantize(g, samples, options);
  std::size_t shifted = 0;
  for (const auto& n : q.graph.nodes) {
    if (n.op == ir::IntOp::kLookup) {
      EXPECT_LE(n.lookup.bits, 6u);
      shifted += n.lookup.shift > 0;
    }
  }
  EXPECT_GE(shifted, 1u) << ir::to_string(q.graph);
  const Deviation d = deviation(g, q, random_samples({1, 64}, 100, -1, 1, 7));
  EXPECT_LT(d.error, 0.1 * d.spread);
}

TEST(Quantize, ApproximateRoundingCostsNoExtraLookupAndStaysClose) {
  std::mt19937 rng(5);
  const auto g = two_layer(rng, 64, 16, 2);
  const auto samples = random_samples({1, 64}, 300, -1, 1, 6);
  quant::QuantizeOptions options;
  options.rounding_threshold_bits = 6;
  options.rounding_method = quant::RoundingMethod::kApproximate;
  const auto q = quant::quantize(g, samples, options);
  ASSERT_EQ(count_ops(q.graph, ir::IntOp::kLookup), 1u) << ir::to_string(q.graph);
  for (const auto& n : q.graph.nodes) {
    if (n.op != ir::IntOp::kLookup) {
      continue;
    }
    EXPECT_TRUE(n.lookup.round_to_nearest);
    EXPECT_EQ(n.lookup.bits, 6u);
    // On the calibration data the nearest index never reaches the wrap-around.
    const ir::IntLookup& t = n.lookup;
    for (const auto& sample : samples) {
      std::vector<ir::IntTensor> ints{q.inputs[0].quantize(sample[0])};
      const auto values = ir::evaluate_all(q.graph, ints);
      for (const auto v : values[n.inputs[0].index].data) {
        const std::int64_t m = (v + t.offset + (std::int64_t{1} << (t.shift - 1))) >> t.shift;
        EXPECT_GE(m, 0);
        EXPECT_LT(m, std::int64_t{1} << t.bits);
      }
    }
  }
  EXPECT_THAT(ir::to_string(q.graph), HasSubstr("approximate"));
  const Deviation d = deviation(g, q, random_samples({1, 64}, 100, -1, 1, 7));
  EXPECT_LT(d.error, 0.1 * d.spread);
}

TEST(Quantize, PerChannelActivationsUseEachChannelsRange) {
  // Two features with very different ranges: per tensor, the small one keeps ~1 level.
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 2});
  const auto w = g.constant("w", FloatTensor({2, 2}, {1, 0, 0, 0.01}));
  const auto b = g.constant("b", FloatTensor({2}, {0, 0}));
  g.mark_output(g.unary(FloatOp::kTanh, g.gemm(x, w, b, true, "fc")));
  const auto samples = random_samples({1, 2}, 200, -3, 3, 12);
  quant::QuantizeOptions options;
  options.n_bits = quant::NBits::uniform(4);
  const auto error = [&](bool per_channel) {
    options.per_channel_activations = per_channel;
    const auto q = quant::quantize(g, samples, options);
    double worst = 0;
    for (const auto& s : samples) {
      const auto f = ir::evaluate(g, s)[0];
      const auto z = run_quantized(q, s)[0];
      worst = std::max(worst, std::abs(f.data[1] - z.data[1]));
    }
    return worst;
  };
  const double per_tensor = error(false);
  const double per_channel = error(true);
  EXPECT_LT(per_channel, per_tensor / 4) << per_channel << " vs " << per_tensor;
}

// relu -> clip -> round to 15 levels (fheml's QAT activations): on calibration rows that never
// reach the top levels, the lookup's output quantizer keeps the 1/15 grid (exact), instead of
// spreading 16 levels over the observed range (which moves every level).
TEST(Quantize, ActivationsOnAGridKeepItWhenTheTopLevelsAreNotReached) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 3});
  const auto w =
      g.constant("w", FloatTensor({3, 3}, {0.2, -0.1, 0.05, 0.1, 0.15, -0.2, 0, 0.1, 0.1}));
  const auto b = g.constant("b", FloatTensor({3}, {0.1, 0, 0.05}));
  ir::FloatAttributes clip;
  clip.alpha = 0.0;
  clip.beta = 1.0;
  auto y = g.add(FloatOp::kClip, {g.unary(FloatOp::kRelu, g.gemm(x, w, b, true, "fc"))}, clip);
  y = g.add(FloatOp::kMul, {y, g.constant("up", FloatTensor({}, {15.0}))});
  y = g.unary(FloatOp::kRound, y);
  g.mark_output(g.add(FloatOp::kMul, {y, g.constant("down", FloatTensor({}, {1.0 / 15}))}));
  const auto samples = random_samples({1, 3}, 300, -1, 1, 31);
  double top = 0;
  for (const auto& s : samples) top = std::max(top, ir::evaluate(g, s)[0].data[0]);
  ASSERT_LT(top, 0.7);  // well below the clip: levels 11-15 never show
  quant::QuantizeOptions options;
  options.n_bits = quant::NBits::uniform(4);
  const auto q = quant::quantize(g, samples, options);
  std::set<double> levels;
  for (const auto& s : samples) {
    // Named: a range-for over run_quantized(...)[0].data would read a destroyed temporary.
    const std::vector<FloatTensor> out = run_quantized(q, s);
    for (const double v : out[0].data) {
      EXPECT_NEAR(v * 15, std::nearbyint(v * 15), 1e-9) << "off the 1/15 grid: " << v;
      levels.insert(std::nearbyint(v * 15));
    }
  }
  EXPECT_GE(levels.size(), 5u);
}

TEST(Quantize, RequantizedOutputsAreFreshLookupsCloseToTheAccumulator) {
  std::mt19937 rng(21);
  const auto g = two_layer(rng, 16, 8, 3);
  const auto samples = random_samples({1, 16}, 300, -1, 1, 22);
  quant::QuantizeOptions options;
  options.n_bits = quant::NBits::uniform(6);
  options.rounding_threshold_bits = 6;
  options.rounding_method = quant::RoundingMethod::kApproximate;
  const auto plain = quant::quantize(g, samples, options);
  options.requantize_outputs = true;
  const auto q = quant::quantize(g, samples, options);
  ASSERT_EQ(q.graph.node(q.graph.outputs[0]).op, ir::IntOp::kLookup) << ir::to_string(q.graph);
  EXPECT_EQ(plain.graph.node(plain.graph.outputs[0]).op, ir::IntOp::kLinear);
  EXPECT_LE(q.graph.node(q.graph.outputs[0]).range.bits(), 6u);
  double err = 0, range = 0;
  for (const auto& s : random_samples({1, 16}, 100, -1, 1, 23)) {
    const auto a = run_quantized(plain, s)[0];
    const auto b = run_quantized(q, s)[0];
    for (std::size_t i = 0; i < a.size(); ++i) {
      err = std::max(err, std::abs(a.data[i] - b.data[i]));
      range = std::max(range, std::abs(a.data[i]));
    }
  }
  EXPECT_LT(err, 0.15 * range);  // 6-bit requantization, 6-bit rounding, clamped at the edges
}

TEST(Quantize, PerChannelInputsKeepEveryFeaturesLevels) {
  // Feature 0 spans [-100, 100], feature 1 [-1, 1]: per tensor, feature 1 has ~1 level of 255.
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 2});
  const auto w = g.constant("w", FloatTensor({1, 2}, {0.01, 1.0}));
  const auto b = g.constant("b", FloatTensor({1}, {0.0}));
  g.mark_output(g.gemm(x, w, b, true, "fc"));
  std::mt19937 rng(31);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<quant::Sample> samples;
  for (int i = 0; i < 200; ++i) samples.push_back({FloatTensor({1, 2}, {100 * d(rng), d(rng)})});
  quant::QuantizeOptions options;
  options.n_bits = quant::NBits::uniform(6);
  const auto error = [&](bool per_channel) {
    options.per_channel_inputs = per_channel;
    const auto q = quant::quantize(g, samples, options);
    EXPECT_EQ(q.inputs[0].scale.size(), per_channel ? 2u : 1u);
    double worst = 0;
    for (const auto& s : samples) {
      worst =
          std::max(worst, std::abs(ir::evaluate(g, s)[0].data[0] - run_quantized(q, s)[0].data[0]));
    }
    return worst;
  };
  const double per_tensor = error(false);
  const double per_channel = error(true);
  EXPECT_LT(per_channel, per_tensor / 4) << per_channel << " vs " << per_tensor;
}

// Every pair of 3-bit integers through the two-input ops: exact, because both inputs are
// calibrated on [0, 7] at 3 bits (scale 1, zero point 0).
TEST(Quantize, TwoInputOpsAreExactOnEveryPairOfSmallIntegers) {
  ir::FloatGraph g;
  const auto a = g.input("a", {1, 1});
  const auto b = g.input("b", {1, 1});
  const std::vector<FloatOp> ops{FloatOp::kAdd,       FloatOp::kSub,  FloatOp::kMul,
                                 FloatOp::kMax,       FloatOp::kMin,  FloatOp::kGreater,
                                 FloatOp::kLessEqual, FloatOp::kEqual};
  for (const FloatOp op : ops) g.mark_output(g.add(op, {a, b}));
  const auto greater = g.add(FloatOp::kGreater, {a, b});
  g.mark_output(g.add(FloatOp::kWhere, {greater, b, a}));  // min via where
  std::vector<quant::Sample> samples;
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) {
      samples.push_back({FloatTensor({1, 1}, {double(i)}), FloatTensor({1, 1}, {double(j)})});
    }
  }
  quant::QuantizeOptions options;
  options.n_bits = quant::NBits::uniform(3);
  options.n_bits.model_outputs = 6;
  const auto q = quant::quantize(g, samples, options);
  for (const auto& s : samples) {
    const auto f = ir::evaluate(g, s);
    const auto z = run_quantized(q, s);
    for (std::size_t o = 0; o < f.size(); ++o) {
      EXPECT_NEAR(z[o].data[0], f[o].data[0], 1e-9)
          << "output " << o << " a=" << s[0].data[0] << " b=" << s[1].data[0] << "\n"
          << ir::to_string(q.graph);
    }
  }
}

TEST(Quantize, MaxPoolIsExactOnIntegers) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 2, 4, 5});
  ir::FloatAttributes pool;
  pool.kernel = {2, 2};
  pool.strides = {2, 2};
  pool.pads = {0, 1, 0, 1};
  g.mark_output(g.add(FloatOp::kMaxPool, {x}, pool));
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> d(0, 15);
  std::vector<quant::Sample> samples;
  for (int i = 0; i < 50; ++i) {
    FloatTensor t({1, 2, 4, 5});
    for (auto& v : t.data) v = d(rng);
    t.data[0] = 0;
    t.data[1] = 15;
    samples.push_back({t});
  }
  quant::QuantizeOptions options;
  options.n_bits = quant::NBits::uniform(4);
  const auto q = quant::quantize(g, samples, options);
  for (const auto& s : samples) {
    EXPECT_EQ(run_quantized(q, s)[0].data, ir::evaluate(g, s)[0].data);
  }
}

// Per-channel inputs of different scales (channel 1 ten times channel 0): each maximum stays on
// its channel's grid, exact, and the pool's output keeps the range of its inputs (interval
// arithmetic over the relus of two levels would give [0, 45]); a refresh is an exact identity.
TEST(Quantize, MaxPoolStaysOnEachChannelsGridWithItsRange) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 2, 4, 4});
  ir::FloatAttributes pool;
  pool.kernel = {2, 2};
  pool.strides = {2, 2};
  g.mark_output(g.add(FloatOp::kMaxPool, {x}, pool));
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> d(0, 15);
  std::vector<quant::Sample> samples;
  for (int i = 0; i < 60; ++i) {
    FloatTensor t({1, 2, 4, 4});
    for (std::size_t e = 0; e < t.data.size(); ++e) t.data[e] = d(rng) * (e < 16 ? 1.0 : 10.0);
    t.data[0] = t.data[16] = 0;
    t.data[1] = 15;
    t.data[17] = 150;
    samples.push_back({t});
  }
  for (const bool refresh : {false, true}) {
    quant::QuantizeOptions options;
    options.n_bits = quant::NBits::uniform(4);
    options.per_channel_inputs = true;
    options.refresh_max_pool = refresh;
    const auto q = quant::quantize(g, samples, options);
    const ir::IntNode& out = q.graph.node(q.graph.outputs[0]);
    EXPECT_EQ(out.range, (ir::IntRange{0, 15})) << ir::to_string(q.graph);
    EXPECT_EQ(out.op, refresh ? ir::IntOp::kLookup : ir::IntOp::kLinear);
    for (const ir::IntNode& n : q.graph.nodes) {
      if (n.op == ir::IntOp::kLookup) {
        EXPECT_EQ(n.lookup.shift, 0u) << "a rounded lookup";
      }
    }
    for (const auto& s : samples) {
      const auto z = run_quantized(q, s)[0].data;
      const auto f = ir::evaluate(g, s)[0].data;
      ASSERT_EQ(z.size(), f.size());
      for (std::size_t e = 0; e < z.size(); ++e) EXPECT_NEAR(z[e], f[e], 1e-9) << e;
    }
  }
}

// Random small graphs: the integer graph tracks the float model within a few quantization steps.
TEST(Quantize, RandomGraphsTrackTheFloatModel) {
  const std::vector<FloatOp> activations{FloatOp::kRelu,      FloatOp::kSigmoid,  FloatOp::kTanh,
                                         FloatOp::kGelu,      FloatOp::kSoftplus, FloatOp::kAbs,
                                         FloatOp::kLeakyRelu, FloatOp::kHardSwish};
  for (unsigned seed = 0; seed < 30; ++seed) {
    std::mt19937 rng(100 + seed);
    const std::size_t in = 2 + rng() % 5, hidden = 2 + rng() % 6, out = 1 + rng() % 3;
    ir::FloatGraph g;
    auto x = g.input("x", {1, in});
    auto h = g.gemm(x, g.constant("w1", random_tensor({hidden, in}, rng, -1, 1)),
                    g.constant("b1", random_tensor({hidden}, rng, -0.3, 0.3)), true, "fc1");
    const FloatOp act = activations[rng() % activations.size()];
    ir::FloatAttributes attrs;
    attrs.alpha = 0.1;
    h = g.add(act, {h}, attrs);
    if (rng() % 2) {  // a residual-free second branch on the same source: x*sigmoid(x)
      h = g.add(FloatOp::kMul, {h, g.unary(FloatOp::kSigmoid, h)});
    }
    h = g.gemm(h, g.constant("w2", random_tensor({out, hidden}, rng, -1, 1)),
               g.constant("b2", random_tensor({out}, rng, -0.3, 0.3)), true, "fc2");
    g.mark_output(h);
    const auto calib = random_samples({1, in}, 300, -2, 2, seed);
    quant::QuantizeOptions options;
    options.n_bits = quant::NBits::uniform(6);
    options.rounding_threshold_bits = 7;
    const auto q = quant::quantize(g, calib, options);
    // 6-bit activations and a 14-bit accumulator rounded to 7 bits: a few percent of the
    // output's spread on average, a gross error (a wrapped lookup, a wrong scale) is ~100%.
    double err = 0, total = 0, spread = 1e-9;
    std::size_t n = 0;
    for (const auto& s : random_samples({1, in}, 100, -2, 2, 1000 + seed)) {
      const auto f = ir::evaluate(g, s)[0];
      const auto z = run_quantized(q, s)[0];
      for (std::size_t i = 0; i < f.size(); ++i) {
        err = std::max(err, std::abs(f.data[i] - z.data[i]));
        total += std::abs(f.data[i] - z.data[i]);
        spread = std::max(spread, std::abs(f.data[i]));
        ++n;
      }
    }
    EXPECT_LT(total / static_cast<double>(n), 0.04 * spread + 0.01)
        << "seed " << seed << " act " << ir::op_name(act);
    EXPECT_LT(err, 0.15 * spread + 0.02) << "seed " << seed << " act " << ir::op_name(act) << "\n"
                                         << ir::to_string(q.graph);
  }
}

TEST(Quantize, BadInputsAreRefusedWithClearMessages) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 2});
  g.mark_output(g.unary(FloatOp::kRelu, x));
  const auto ok = random_samples({1, 2}, 10, -1, 1, 9);
  const auto expect_error = [&](const std::vector<quant::Sample>& samples,
                                const quant::QuantizeOptions& options, const char* text) {
    try {
      (void)quant::quantize(g, samples, options);
      ADD_FAILURE() << "expected an error containing: " << text;
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(text));
    }
  };
  expect_error({}, {}, "at least one sample");
  expect_error(random_samples({1, 3}, 2, 0, 1, 1), {}, "expected shape [1,2], found [1,3]");
  auto nan = ok;
  nan[3][0].data[1] = std::nan("");
  expect_error(nan, {}, "NaN or inf");
  quant::QuantizeOptions bad_bits;
  bad_bits.n_bits.op_weights = 1;
  expect_error(ok, bad_bits, "n_bits.op_weights must be in 2..16, found 1");
  quant::QuantizeOptions bad_rounding;
  bad_rounding.rounding_threshold_bits = 12;
  expect_error(ok, bad_rounding, "rounding_threshold_bits must be in 1..8, found 12");

  ir::FloatGraph constant_out;
  (void)constant_out.input("x", {1, 2});
  constant_out.mark_output(constant_out.constant("c", FloatTensor({1}, {1.0})));
  EXPECT_THROW((void)quant::quantize(constant_out, ok, {}), std::invalid_argument);

  ir::FloatGraph two;
  const auto a = two.input("a", {1, 2});
  const auto b = two.input("b", {1, 2});
  two.mark_output(two.add(FloatOp::kDiv, {a, b}));
  std::vector<quant::Sample> pairs;
  for (const auto& s : ok) pairs.push_back({s[0], s[0]});
  try {
    (void)quant::quantize(two, pairs, {});
    ADD_FAILURE() << "division of two encrypted values";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("div between two encrypted values"));
  }
  // The input quantizer refuses NaN at run time too.
  const auto q = quant::quantize(g, ok, {});
  FloatTensor bad({1, 2}, {0.0, std::nan("")});
  EXPECT_THROW((void)q.inputs[0].quantize(bad), std::invalid_argument);
}

}  // namespace
}  // namespace fheml
