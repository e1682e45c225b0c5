// End to end on small fixed graphs (see end_to_end_test.cpp for the random ones): simulate's
// failure rate against execute's at an inflated p_error (per partition too), the global failure
// budget, partitions, the ind-cpa-d profile, linear-only circuits, noise sites on fresh inputs,
// the printed report and the compiler's diagnostics.
//
// Keys are real 128-bit keys, generated once per parameter set and process from a fixed test
// seed (end_to_end_fixtures.h).
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
      "in 2^1.0    -40.2",
      "noise sites:",
      "  lookup %2 relu(gemm fc)                  bits  3  nu2         0  inputs     2^1.0  log2 "
      "p_fail -40.2",
      "p_error bound: 2^-40.0 per lookup, global 1.59e-12",
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
