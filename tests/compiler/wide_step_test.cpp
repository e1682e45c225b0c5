// Step functions (comparisons with a constant) on values wider than a lookup, rounded exactly:
// the rounding's bucket edges sit on the step, so the encrypted result is the comparison of the
// exact value on every input, with lookups of at most rounding_threshold_bits bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/runtime/runtime.h"

namespace fheml {
namespace {

using ir::FloatOp;
using ir::FloatTensor;

// x [1,1] -> x >= t, or x [1,2] -> x w + b >= t (`gemm`: an accumulator of 8-bit weights
// over two 16-bit inputs, ~24 bits): a 0/1 output.
constexpr double kW0 = 0.7, kW1 = -0.45, kB = 0.05;

ir::FloatGraph step_model(bool gemm, double t) {
  ir::FloatGraph g;
  ir::ValueId h = g.input("x", {1, gemm ? 2u : 1u});
  if (gemm) {
    h = g.gemm(h, g.constant("w", FloatTensor({1, 2}, {kW0, kW1})),
               g.constant("b", FloatTensor({1}, {kB})), true, "fc");
  }
  g.mark_output(g.add(FloatOp::kGreaterEqual, {h, g.constant("t", FloatTensor({}, {t}))}));
  return g;
}

std::vector<runtime::FloatSample> calibration(bool gemm) {
  std::vector<runtime::FloatSample> out;
  for (int i = 0; i <= 100; ++i) {
    const double v = -1.0 + i / 50.0;
    out.push_back(
        {gemm ? FloatTensor({1, 2}, {v, i % 2 ? 1.0 - v : -v}) : FloatTensor({1, 1}, {v})});
  }
  return out;
}

quant::QuantizeOptions exact_rounding(std::uint32_t input_bits, std::uint32_t lookup_bits) {
  quant::QuantizeOptions q;
  q.n_bits = {input_bits, lookup_bits, 8, 2};
  q.max_lookup_bits = lookup_bits;
  q.rounding_threshold_bits = lookup_bits;
  q.rounding_method = quant::RoundingMethod::kExact;
  return q;
}

compiler::Circuit compile_step(bool gemm, double t, std::uint32_t input_bits,
                               std::uint32_t lookup_bits) {
  compiler::CompileOptions o;
  o.quantization = exact_rounding(input_bits, lookup_bits);
  return compiler::compile(step_model(gemm, t), calibration(gemm), o);
}

struct Lookups {
  std::size_t count = 0;
  std::uint32_t widest = 0;
  std::uint32_t input_bits = 0;  // of the value the comparison reads (the first lookup's input)
};

Lookups lookups_of(const compiler::Circuit& c) {
  Lookups out;
  for (const ir::IntNode& n : c.graph.nodes) {
    if (n.op != ir::IntOp::kLookup) continue;
    if (out.count++ == 0) out.input_bits = c.graph.node(n.inputs[0]).range.bits();
    out.widest = std::max(out.widest, n.lookup.bits);
  }
  return out;
}

// Input levels: q0 (and q1 for the gemm model).
runtime::IntSample level(bool gemm, std::int64_t q0, std::int64_t q1 = 0) {
  return {gemm ? ir::IntTensor({1, 2}, {q0, q1}) : ir::IntTensor({1, 1}, {q0})};
}

// The comparison on the values the input levels stand for, as the float graph computes it.
bool expected(const compiler::Circuit& c, const runtime::IntSample& q, bool gemm, double t) {
  const quant::InputQuantizer& in = c.inputs[0];
  std::vector<double> x;
  for (std::size_t e = 0; e < q[0].data.size(); ++e) {
    x.push_back(in.scale_of(e) * (static_cast<double>(q[0].data[e]) - in.zero_point_of(e)));
  }
  return (gemm ? x[0] * kW0 + x[1] * kW1 + kB : x[0]) >= t;
}

// Every level of the input in the clear: the output is one of two values, the one the
// comparison says.
void expect_exact_on_every_level(const compiler::Circuit& c, double t) {
  const std::int64_t top = (std::int64_t{1} << c.inputs[0].bits) - 1;
  std::vector<runtime::IntSample> all;
  for (std::int64_t q = 0; q <= top; ++q) all.push_back(level(false, q));
  const auto out = runtime::run_clear(c, all);
  std::optional<std::int64_t> below, above;
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::int64_t got = out[i][0].data[0];
    auto& slot = expected(c, all[i], false, t) ? above : below;
    if (!slot) slot = got;
    if (got != *slot && ++wrong <= 5) {
      ADD_FAILURE() << "level " << all[i][0].data[0] << ": " << got << ", expected " << *slot;
    }
  }
  ASSERT_TRUE(below && above) << "the comparison never changes over the levels tried";
  EXPECT_NE(*below, *above);
  EXPECT_EQ(wrong, 0u);
}

TEST(WideSteps, SmallWidthsExactOnEveryInputEncrypted) {
  // 6-bit inputs, 2-bit lookups: every level, encrypted.
  const double t = 0.1234;
  const compiler::Circuit c = compile_step(false, t, 6, 2);
  const Lookups l = lookups_of(c);
  EXPECT_LE(l.widest, 2u) << ir::to_string(c.graph);
  EXPECT_GE(l.count, 3u) << ir::to_string(c.graph);  // chunks were removed
  expect_exact_on_every_level(c, t);
  std::vector<runtime::IntSample> all;
  for (std::int64_t q = 0; q < 64; ++q) all.push_back(level(false, q));
  runtime::FheCircuit fhe(c);
  EXPECT_EQ(fhe.run_integers(all, runtime::Mode::kExecute),
            fhe.run_integers(all, runtime::Mode::kDisable));
}

// Levels around the step (the second input at its middle level), both ends and another.
std::vector<runtime::IntSample> around_step(const compiler::Circuit& c, bool gemm, double t) {
  const std::int64_t top = (std::int64_t{1} << c.inputs[0].bits) - 1;
  std::int64_t s = 0;
  while (s < top && !expected(c, level(gemm, s, top / 2), gemm, t)) ++s;
  std::vector<runtime::IntSample> out;
  for (const std::int64_t q : {s - 2, s - 1, s, s + 1, std::int64_t{0}, top, top / 3})
    out.push_back(level(gemm, q, top / 2));
  return out;
}

TEST(WideSteps, SixteenBitComparisonInAtMostEightFiveBitBootstraps) {
  const double t = 0.1234;  // not on the grid: the step's level is not a multiple of a chunk
  for (const std::uint32_t bits : {4u, 5u}) {
    const compiler::Circuit c = compile_step(false, t, 16, bits);
    const Lookups l = lookups_of(c);
    EXPECT_EQ(l.input_bits, 16u);
    EXPECT_LE(l.widest, bits) << ir::to_string(c.graph);
    // 16 bits, one more for the alignment: 3 chunks of 5 bits (or 4 of 4) at 2 bootstraps
    // each, then the comparison.
    EXPECT_EQ(l.count, bits == 5 ? 7u : 9u) << ir::to_string(c.graph);
    expect_exact_on_every_level(c, t);
    if (bits == 5) {
      runtime::FheCircuit fhe(c);
      const auto xs = around_step(c, false, t);
      EXPECT_EQ(fhe.run_integers(xs, runtime::Mode::kExecute),
                fhe.run_integers(xs, runtime::Mode::kDisable));
    }
  }
}

// A comparison on a gemm's accumulator (8-bit inputs and weights: 16 bits) rounded to 4-bit
// lookups equals the unrounded 16-bit lookup of the same accumulator on every pair of input
// levels: the step is where the quantized model has it, not only near it.
TEST(WideSteps, GemmStepEqualsTheUnroundedLookupOnEveryInput) {
  const double t = 0.2718;
  const ir::FloatGraph g = step_model(true, t);
  quant::QuantizeOptions plain = exact_rounding(8, 4);
  plain.max_lookup_bits = 16;
  plain.rounding_threshold_bits.reset();
  const quant::QuantizedGraph reference = quant::quantize(g, calibration(true), plain);
  const quant::QuantizedGraph rounded = quant::quantize(g, calibration(true), exact_rounding(8, 4));
  std::uint32_t accumulator_bits = 0;
  for (const ir::IntNode& n : reference.graph.nodes)
    if (n.op == ir::IntOp::kLookup) accumulator_bits = n.lookup.bits;
  EXPECT_GE(accumulator_bits, 15u) << ir::to_string(reference.graph);
  std::size_t wrong = 0, above = 0;
  for (std::int64_t q0 = 0; q0 < 256; ++q0) {
    for (std::int64_t q1 = 0; q1 < 256; ++q1) {
      const runtime::IntSample x = level(true, q0, q1);
      const std::int64_t want = ir::evaluate(reference.graph, x)[0].data[0];
      const std::int64_t got = ir::evaluate(rounded.graph, x)[0].data[0];
      above += want != ir::evaluate(reference.graph, level(true, 0, 255))[0].data[0];
      if (got != want && ++wrong <= 5) ADD_FAILURE() << q0 << ", " << q1 << ": " << got;
    }
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_GT(above, 1000u);  // both sides of the step are exercised
  EXPECT_LT(above, 65536u - 1000u);
}

// 3-bit lookups: every bootstrapped output is added to the wide value and read with its low
// bits on top, so its noise is amplified 2^(width - p); at 24 bits 4-bit chunks find no 128-bit
// set (docs/compiler.md, "Step functions on wide values").
TEST(WideSteps, TwentyFourBitAccumulatorComparedExactlyEncrypted) {
  const double t = -0.3141;
  const compiler::Circuit c = compile_step(true, t, 16, 3);
  const Lookups l = lookups_of(c);
  EXPECT_EQ(l.input_bits, 24u) << ir::to_string(c.graph);
  EXPECT_LE(l.widest, 3u);
  // In the clear, over every level of the first input (the second at three levels): a step of
  // the accumulator, at 0 of the aligned copy the lookups read.
  const std::int64_t top = (std::int64_t{1} << c.inputs[0].bits) - 1;
  std::vector<runtime::IntSample> all;
  for (const std::int64_t q1 : {std::int64_t{0}, top / 2, top})
    for (std::int64_t q0 = 0; q0 <= top; ++q0) all.push_back(level(true, q0, q1));
  const auto out = runtime::run_clear(c, all);
  std::uint32_t first_input = 0;
  for (std::uint32_t i = 0; i < c.graph.nodes.size() && !first_input; ++i)
    if (c.graph.nodes[i].op == ir::IntOp::kLookup) first_input = c.graph.nodes[i].inputs[0].index;
  std::int64_t below_hi = INT64_MIN, above_lo = INT64_MAX;
  std::optional<std::int64_t> above;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::int64_t x = ir::evaluate_all(c.graph, all[i])[first_input].data[0];
    if (!above && x >= 0) above = out[i][0].data[0];
    if (x < 0) below_hi = std::max(below_hi, x);
    if (x >= 0) above_lo = std::min(above_lo, x);
    if (x >= 0 ? out[i][0].data[0] != *above : out[i][0].data[0] == *above) {
      ADD_FAILURE() << "aligned accumulator " << x << ": " << out[i][0].data[0];
      break;
    }
  }
  EXPECT_LT(below_hi, 0);
  EXPECT_LT(above_lo, 1000);  // levels near the step on both sides were tried
  runtime::FheCircuit fhe(c);
  const auto xs = around_step(c, true, t);
  EXPECT_EQ(fhe.run_integers(xs, runtime::Mode::kExecute),
            fhe.run_integers(xs, runtime::Mode::kDisable));
}

// Without the alignment the same rounding reads f at bucket centres: a relu (not a step) keeps
// the centred rounding, and encrypted still equals clear.
TEST(WideSteps, NonStepFunctionsKeepCentredRounding) {
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 1});
  g.mark_output(g.unary(FloatOp::kRelu, x));
  std::vector<runtime::FloatSample> calibration;
  for (int i = 0; i <= 100; ++i) calibration.push_back({FloatTensor({1, 1}, {-1.0 + i / 50.0})});
  compiler::CompileOptions o;
  o.quantization.n_bits = {12, 4, 8, 4};
  o.quantization.max_lookup_bits = 4;
  o.quantization.rounding_threshold_bits = 4;
  o.quantization.rounding_method = quant::RoundingMethod::kExact;
  const compiler::Circuit c = compiler::compile(g, calibration, o);
  for (const ir::IntNode& n : c.graph.nodes)
    EXPECT_EQ(n.origin.find("minus step"), std::string::npos) << ir::to_string(c.graph);
}

}  // namespace
}  // namespace fheml
