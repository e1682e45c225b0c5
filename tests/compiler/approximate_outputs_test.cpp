// Approximate outputs (CompileOptions::output_noise_bits): the noise may change an output's
// lowest b bits. Checked here: what the compiler gives up (the output's noise site at W - b bits,
// a wider window, a cost that does not grow), that execute and simulate stay within 2^(b-1) of
// the exact integer interpreter and inside the output's range, the decoder's clamping at both
// ends of the window, and the errors for a b the output cannot carry.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "compiler/end_to_end_fixtures.h"
#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/runtime/detail.h"
#include "fheml/runtime/runtime.h"
#include "fheml/runtime/statistics.h"
#include "tfhe/test_support.h"

namespace fheml {
namespace {

using ir::FloatTensor;
using runtime::IntSample;
using ::testing::HasSubstr;

// x (8) -> gemm 8x16 -> relu -> gemm 16x6: the output is a wide dot product of 16 lookup outputs
// with 4-bit weights, the shape of an MLP's last layer.
struct Case {
  ir::FloatGraph graph;
  std::vector<quant::Sample> calibration;
};

Case mlp_case() {
  std::mt19937 rng(7);
  Case c;
  ir::FloatGraph& g = c.graph;
  const auto x = g.input("x", {1, 8});
  const auto h =
      g.unary(ir::FloatOp::kRelu,
              g.gemm(x, g.constant("w1", e2e::random_tensor({16, 8}, rng, -1, 1)),
                     g.constant("b1", e2e::random_tensor({16}, rng, -0.2, 0.2)), true, "fc1"));
  g.mark_output(g.gemm(h, g.constant("w2", e2e::random_tensor({6, 16}, rng, -1, 1)),
                       g.constant("b2", e2e::random_tensor({6}, rng, -0.2, 0.2)), true, "fc2"));
  for (int i = 0; i < 200; ++i) c.calibration.push_back({e2e::random_tensor({1, 8}, rng, -1, 1)});
  return c;
}

compiler::CompileOptions options(std::uint32_t noise_bits) {
  compiler::CompileOptions o;
  o.quantization.n_bits = quant::NBits::uniform(3);
  o.quantization.n_bits.op_weights = 4;
  o.quantization.rounding_threshold_bits = 4;
  o.quantization.max_lookup_bits = 4;
  // Exact rounding: the lookups are deterministic, so only the output's noise is left.
  o.quantization.rounding_method = quant::RoundingMethod::kExact;
  o.output_noise_bits = noise_bits;
  return o;
}

const compiler::NoiseSite& output_site(const compiler::Circuit& c) {
  const auto it = std::find_if(c.noise_sites.begin(), c.noise_sites.end(),
                               [](const compiler::NoiseSite& s) { return s.is_output; });
  EXPECT_NE(it, c.noise_sites.end());
  return *it;
}

std::vector<IntSample> inputs(std::size_t count, std::mt19937& rng) {
  std::vector<IntSample> samples;
  for (std::size_t s = 0; s < count; ++s) {
    ir::IntTensor t({1, 8});
    for (auto& v : t.data) v = static_cast<std::int64_t>(rng() % 8);
    samples.push_back({t});
  }
  return samples;
}

TEST(ApproximateOutputs, TheOutputSiteIsCheckedAtWMinusBAndCostsNoMore) {
  const Case c = mlp_case();
  const compiler::Circuit exact = compiler::compile(c.graph, c.calibration, options(0));
  const compiler::Circuit approx = compiler::compile(c.graph, c.calibration, options(4));
  const ir::ValueId out = approx.graph.outputs[0];
  const ir::IntRange range = approx.graph.node(out).range;
  EXPECT_EQ(exact.output_noise_bits, 0u);
  EXPECT_EQ(approx.output_noise_bits, 4u);
  EXPECT_EQ(output_site(exact).bits, exact.width[out.index]);
  EXPECT_EQ(output_site(approx).bits, approx.width[out.index] - 4);
  // The window holds the range widened by 2^3 at each end.
  EXPECT_GE(std::int64_t{2} << approx.width[out.index], range.hi - range.lo + 1 + 16);
  // The looser output constraint can only let the search pick cheaper sets.
  EXPECT_LE(runtime::compute_statistics(approx).estimated_latency_ms,
            runtime::compute_statistics(exact).estimated_latency_ms * (1 + 1e-9));
  EXPECT_THAT(runtime::report(approx, runtime::compute_statistics(approx)),
              HasSubstr("outputs: approximate, the noise may change their lowest 4 bits"));
  EXPECT_THAT(runtime::report(exact, runtime::compute_statistics(exact)),
              ::testing::Not(HasSubstr("outputs: approximate")));
  // The client learns it with the encoding.
  EXPECT_EQ(runtime::client_view(approx).outputs[0].noise_bits, 4u);
  EXPECT_EQ(runtime::client_view(exact).outputs[0].noise_bits, 0u);
}

// Every element of `actual` within `tolerance` of `exact` and inside the output's range; returns
// how many differ at all.
std::size_t check_within(const std::vector<IntSample>& actual, const std::vector<IntSample>& exact,
                         std::int64_t tolerance, ir::IntRange range) {
  EXPECT_EQ(actual.size(), exact.size());
  std::size_t differ = 0;
  for (std::size_t s = 0; s < actual.size(); ++s) {
    for (std::size_t e = 0; e < actual[s][0].data.size(); ++e) {
      const std::int64_t a = actual[s][0].data[e], x = exact[s][0].data[e];
      EXPECT_LE(std::llabs(a - x), tolerance) << "sample " << s << " element " << e;
      EXPECT_GE(a, range.lo);
      EXPECT_LE(a, range.hi);
      differ += a != x;
    }
  }
  return differ;
}

TEST(ApproximateOutputs, ExecuteAndSimulateStayWithinHalfTheNoiseBits) {
  const Case c = mlp_case();
  // A generous p_error so that the chosen parameters leave visible noise in the low bits.
  compiler::CompileOptions o = options(4);
  o.p_error = 0x1p-20;
  const runtime::Program program(compiler::compile(c.graph, c.calibration, o));
  const ir::IntRange range = program.circuit().graph.node(program.circuit().graph.outputs[0]).range;
  std::mt19937 rng(11);
  const std::vector<IntSample> simulated_inputs = inputs(400, rng);
  const std::vector<IntSample> exact = runtime::run_clear(program.circuit(), simulated_inputs);
  tfhe::Csprng noise(tfhe::test_seed(5));
  const std::size_t differ =
      check_within(runtime::run_simulate(program, simulated_inputs, noise), exact, 8, range);
  // The relaxed site lets noise reach the low bits: some of 2400 outputs must show it (an exact
  // decoder, or a site still checked at W bits, would leave every one equal).
  EXPECT_GT(differ, 0u);

  const std::vector<IntSample> encrypted_inputs(simulated_inputs.begin(),
                                                simulated_inputs.begin() + 6);
  const runtime::Keys keys = runtime::keygen(program.circuit(), {tfhe::test_seed(21)});
  tfhe::Csprng rng2(tfhe::test_seed(22));
  const auto outputs =
      runtime::run(program, runtime::decompress(keys.evaluation),
                   runtime::encrypt(program.circuit(), keys.client, encrypted_inputs, rng2));
  check_within(runtime::decrypt(program.circuit(), keys.client, outputs),
               runtime::run_clear(program.circuit(), encrypted_inputs), 8, range);
}

TEST(ApproximateOutputs, TheDecoderClampsWhatTheNoiseMovesOutOfTheRange) {
  const ir::IntRange range{-20, 100};
  const std::uint32_t width = 7;  // window of 256: [-28, 228) with b = 4
  const auto phase = [&](std::int64_t v) { return runtime::detail::encode_at(v, width); };
  for (std::int64_t v = -28; v <= range.lo; ++v) {
    EXPECT_EQ(runtime::detail::decode_output(phase(v), width, range, 4), range.lo) << v;
  }
  for (std::int64_t v = range.hi; v < range.hi + 8; ++v) {
    EXPECT_EQ(runtime::detail::decode_output(phase(v), width, range, 4), range.hi) << v;
  }
  for (std::int64_t v = range.lo; v <= range.hi; ++v) {
    EXPECT_EQ(runtime::detail::decode_output(phase(v), width, range, 4), v);
    EXPECT_EQ(runtime::detail::decode_output(phase(v), width, range, 0), v);
  }
  // Exact outputs keep the window that starts at the range: lo - 1 wraps to the top.
  EXPECT_EQ(runtime::detail::decode_output(phase(range.lo - 1), width, range, 0), range.lo + 255);
}

TEST(ApproximateOutputs, ABTheOutputCannotCarryIsAnError) {
  const Case c = mlp_case();
  try {
    compiler::compile(c.graph, c.calibration, options(compiler::kMaxOutputNoiseBits + 1));
    ADD_FAILURE() << "17 noise bits accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("output_noise_bits must be in 0..16, found 17"));
  }
  // A 3-bit output (relu requantized to n_bits) cannot lose 3 bits to noise.
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 8});
  std::mt19937 rng(3);
  g.mark_output(
      g.unary(ir::FloatOp::kRelu,
              g.gemm(x, g.constant("w", e2e::random_tensor({4, 8}, rng, -1, 1)),
                     g.constant("b", e2e::random_tensor({4}, rng, -0.2, 0.2)), true, "fc")));
  try {
    compiler::compile(g, c.calibration, options(3));
    ADD_FAILURE() << "3 noise bits accepted on a 3-bit output";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("would leave none of it exact; lower output_noise_bits"));
  }
  EXPECT_NO_THROW(compiler::compile(g, c.calibration, options(2)));
}

TEST(ApproximateOutputs, TheClientRefusesNoiseBitsItsEncodingCannotHold) {
  const Case c = mlp_case();
  runtime::ClientCircuit view =
      runtime::client_view(compiler::compile(c.graph, c.calibration, options(4)));
  EXPECT_NO_THROW(runtime::validate(view));
  runtime::ClientCircuit wide = view;
  wide.outputs[0].noise_bits = wide.outputs[0].width;
  EXPECT_THROW(runtime::validate(wide), std::invalid_argument);
  runtime::ClientCircuit input = view;
  input.inputs[0].noise_bits = 1;
  EXPECT_THROW(runtime::validate(input), std::invalid_argument);
}

}  // namespace
}  // namespace fheml
