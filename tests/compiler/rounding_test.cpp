// Rounding of wide accumulators, encrypted: exact rounding equals the clear graph on every
// input; approximate rounding may give the neighbouring table entry near a tie, never more.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/runtime/runtime.h"

namespace fheml {
namespace {

using ir::FloatOp;
using ir::FloatTensor;

// x[1,6] -> gemm -> sigmoid: a 3-bit lookup on a ~9-bit accumulator.
ir::FloatGraph wide_model() {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> d(-1, 1);
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 6});
  FloatTensor w({3, 6}), b({3});
  for (auto& v : w.data) v = d(rng);
  for (auto& v : b.data) v = 0.1 * d(rng);
  const auto h = g.gemm(x, g.constant("w", w), g.constant("b", b), true, "fc");
  g.mark_output(g.unary(FloatOp::kSigmoid, h));
  return g;
}

std::vector<runtime::FloatSample> samples(std::size_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(-2, 2);
  std::vector<runtime::FloatSample> out;
  for (std::size_t i = 0; i < count; ++i) {
    FloatTensor t({1, 6});
    for (auto& v : t.data) v = d(rng);
    out.push_back({t});
  }
  return out;
}

compiler::CompileOptions options(quant::RoundingMethod method) {
  compiler::CompileOptions o;
  o.quantization.n_bits = quant::NBits::uniform(3);
  o.quantization.max_lookup_bits = 3;
  o.quantization.rounding_threshold_bits = 3;
  o.quantization.rounding_method = method;
  return o;
}

std::vector<runtime::IntSample> quantized(const compiler::Circuit& c,
                                          const std::vector<runtime::FloatSample>& xs) {
  std::vector<runtime::IntSample> q;
  for (const auto& x : xs) q.push_back({c.inputs[0].quantize(x[0])});
  return q;
}

TEST(Rounding, ExactRoundingEncryptedEqualsClear) {
  const auto calib = samples(200, 1);
  const auto circuit =
      compiler::compile(wide_model(), calib, options(quant::RoundingMethod::kExact));
  std::size_t shifted = 0;
  for (const auto& n : circuit.graph.nodes)
    shifted += n.op == ir::IntOp::kLookup && n.lookup.shift > 0;
  ASSERT_GE(shifted, 1u) << ir::to_string(circuit.graph);
  runtime::FheCircuit fhe(circuit);
  const auto xs = quantized(circuit, samples(12, 2));
  EXPECT_EQ(fhe.run_integers(xs, runtime::Mode::kExecute),
            fhe.run_integers(xs, runtime::Mode::kDisable));
}

TEST(Rounding, ApproximateRoundingIsOffByAtMostOneEntry) {
  const auto calib = samples(200, 1);
  const auto circuit =
      compiler::compile(wide_model(), calib, options(quant::RoundingMethod::kApproximate));
  const ir::IntNode* lookup = nullptr;
  for (const auto& n : circuit.graph.nodes) {
    if (n.op == ir::IntOp::kLookup) lookup = &n;
  }
  ASSERT_NE(lookup, nullptr);
  ASSERT_TRUE(lookup->lookup.round_to_nearest);
  ASSERT_EQ(circuit.graph.outputs[0].index,
            static_cast<std::uint32_t>(lookup - circuit.graph.nodes.data()));
  runtime::FheCircuit fhe(circuit);
  const auto xs = quantized(circuit, samples(24, 3));
  const auto enc = fhe.run_integers(xs, runtime::Mode::kExecute);
  std::size_t differ = 0;
  for (std::size_t s = 0; s < xs.size(); ++s) {
    const auto values = ir::evaluate_all(circuit.graph, xs[s]);
    const auto& acc = values[lookup->inputs[0].index];
    for (std::size_t e = 0; e < acc.size(); ++e) {
      const std::int64_t step = std::int64_t{1} << lookup->lookup.shift;
      const std::int64_t got = enc[s][0].data[e];
      const std::int64_t exact = ir::apply_lookup(lookup->lookup, e, acc.data[e]);
      differ += got != exact;
      EXPECT_TRUE(got == exact || got == ir::apply_lookup(lookup->lookup, e, acc.data[e] - step) ||
                  got == ir::apply_lookup(lookup->lookup, e, acc.data[e] + step))
          << "sample " << s << " element " << e << " accumulator " << acc.data[e];
    }
  }
  RecordProperty("approximate_differences", static_cast<int>(differ));
}

// x[1,6] -> gemm -> relu, three neurons whose integer accumulators sit apart: weights all
// positive, all negative, mixed (the inputs' integers are >= 0).
ir::FloatGraph distant_neurons_model() {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> d(0.5, 1);
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 6});
  FloatTensor w({3, 6}), b({3}, {0.0, 0.0, 0.0});
  for (std::size_t i = 0; i < 6; ++i) {
    w.data[i] = d(rng);
    w.data[6 + i] = -d(rng);
    w.data[12 + i] = i % 2 ? d(rng) : -d(rng);
  }
  const auto h = g.gemm(x, g.constant("w", w), g.constant("b", b), true, "fc");
  g.mark_output(g.unary(FloatOp::kRelu, h));
  return g;
}

// Each neuron centred on its own range: the lookup's window is the widest neuron's, not the
// union of the three, so the rounding keeps finer steps; encrypted still equals clear.
TEST(Rounding, NeuronsFarApartAreCentredOnOneNarrowWindow) {
  const auto calib = samples(200, 1);
  for (const auto method : {quant::RoundingMethod::kExact, quant::RoundingMethod::kApproximate}) {
    const auto circuit = compiler::compile(distant_neurons_model(), calib, options(method));
    const ir::IntNode* lookup = nullptr;
    for (const auto& n : circuit.graph.nodes) {
      if (n.op == ir::IntOp::kLookup && n.origin.find("round") == std::string::npos) lookup = &n;
    }
    ASSERT_NE(lookup, nullptr) << ir::to_string(circuit.graph);
    // The accumulator the rounding reads: each element's calibrated values, centred (the
    // uncentred copy pruned: nothing else reads it).
    std::size_t acc_index = circuit.graph.nodes.size(), gemms = 0;
    for (std::size_t i = 0; i < circuit.graph.nodes.size(); ++i) {
      const std::string& origin = circuit.graph.nodes[i].origin;
      if (origin.find("centred") != std::string::npos) acc_index = i;
      gemms += origin.rfind("gemm fc", 0) == 0;
    }
    ASSERT_LT(acc_index, circuit.graph.nodes.size()) << ir::to_string(circuit.graph);
    EXPECT_EQ(gemms, 1u) << ir::to_string(circuit.graph);
    if (method == quant::RoundingMethod::kApproximate) {
      EXPECT_EQ(lookup->inputs[0].index, acc_index);
    }
    std::vector<std::int64_t> lo(3, INT64_MAX), hi(3, INT64_MIN);
    std::int64_t all_lo = INT64_MAX, all_hi = INT64_MIN;
    for (const auto& x : quantized(circuit, calib)) {
      const auto values = ir::evaluate_all(circuit.graph, x);
      const auto& v = values[acc_index];
      for (std::size_t e = 0; e < 3; ++e) {
        lo[e] = std::min(lo[e], v.data[e]);
        hi[e] = std::max(hi[e], v.data[e]);
        all_lo = std::min(all_lo, v.data[e]);
        all_hi = std::max(all_hi, v.data[e]);
      }
    }
    std::int64_t widest = 0;
    for (std::size_t e = 0; e < 3; ++e) widest = std::max(widest, hi[e] - lo[e]);
    EXPECT_LE(all_hi - all_lo, widest + 3) << "centred window wider than the widest neuron";
    if (method == quant::RoundingMethod::kExact) {
      runtime::FheCircuit fhe(circuit);
      const auto xs = quantized(circuit, samples(3, 2));
      EXPECT_EQ(fhe.run_integers(xs, runtime::Mode::kExecute),
                fhe.run_integers(xs, runtime::Mode::kDisable));
    }
  }
}

}  // namespace
}  // namespace fheml
