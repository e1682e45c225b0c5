// The runtime's three modes on small circuits built by hand: execute and simulate must equal
// disable (the integer interpreter) on every input of small ranges, wrap-around included; a
// batch must equal its samples one by one; simulate's failure rate must match execute's when the
// noise is inflated until failures are frequent.
#include "fheml/runtime/runtime.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/compiler/encoding.h"
#include "fheml/tfhe/noise.h"
#include "tfhe/test_support.h"

namespace fheml::runtime {
namespace {

using ir::IntGraph;
using ir::IntNode;
using ir::IntOp;
using ir::IntRange;
using ir::ValueId;

// --- Building circuits by hand.

struct Term {
  std::uint32_t source;  // index into the node's inputs
  std::uint32_t element;
  std::int64_t coefficient;
};

ValueId add_input(IntGraph& g, ir::Shape shape, std::int64_t lo, std::int64_t hi) {
  IntNode n;
  n.op = IntOp::kInput;
  n.shape = std::move(shape);
  n.range = {lo, hi};
  n.origin = "x";
  return g.add(std::move(n));
}

// Each row: bias + sum of terms; the range is exact interval arithmetic over the sources' ranges.
ValueId add_linear(IntGraph& g, std::vector<ValueId> inputs,
                   const std::vector<std::vector<Term>>& rows, std::vector<std::int64_t> bias,
                   std::string origin) {
  IntNode n;
  n.op = IntOp::kLinear;
  n.inputs = std::move(inputs);
  n.shape = {rows.size()};
  n.linear.row_begin = {0};
  n.linear.bias = std::move(bias);
  std::int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::int64_t row_lo = n.linear.bias[r], row_hi = n.linear.bias[r];
    for (const Term& t : rows[r]) {
      n.linear.entries.push_back({t.source, t.element, t.coefficient});
      const IntRange& in = g.node(n.inputs[t.source]).range;
      row_lo += std::min(t.coefficient * in.lo, t.coefficient * in.hi);
      row_hi += std::max(t.coefficient * in.lo, t.coefficient * in.hi);
    }
    n.linear.row_begin.push_back(n.linear.entries.size());
    lo = std::min(lo, row_lo);
    hi = std::max(hi, row_hi);
  }
  n.range = {lo, hi};
  n.origin = std::move(origin);
  return g.add(std::move(n));
}

// The range is that of the table entries the in-range inputs reach.
ValueId add_lookup(IntGraph& g, ValueId input, std::int64_t offset, std::uint32_t shift,
                   std::uint32_t bits, std::vector<std::vector<std::int64_t>> tables,
                   std::vector<std::uint32_t> table_of_element, std::string origin) {
  IntNode n;
  n.op = IntOp::kLookup;
  n.inputs = {input};
  n.shape = g.node(input).shape;
  n.lookup = {offset, shift, bits, std::move(tables), std::move(table_of_element)};
  std::int64_t lo = INT64_MAX, hi = INT64_MIN;
  const IntRange in = g.node(input).range;
  for (std::size_t e = 0; e < n.lookup.table_of_element.size(); ++e) {
    for (std::int64_t x = in.lo; x <= in.hi; ++x) {
      if (((x + offset) & ((std::int64_t{1} << shift) - 1)) != 0) continue;
      const std::int64_t y = ir::apply_lookup(n.lookup, e, x);
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
  }
  n.range = {lo, hi};
  n.origin = std::move(origin);
  return g.add(std::move(n));
}

compiler::Circuit finish(IntGraph graph, std::size_t parameter_bits) {
  compiler::Circuit c;
  c.graph = std::move(graph);
  compiler::assign_encoding(c);
  c.parameters = tfhe::default_parameters(tfhe::MessageBits{parameter_bits});
  return c;
}

// %0 x[2] in [0,7] -> %1 linear[3] -> %2 lookup (4 bits, one table per channel)
//                  -> %3 linear[2] (reads %2 and %0) -> %4 lookup (4 bits)
// %0 -> %5 lookup (3 bits, reads the input directly, two channels)
// %4, %5 -> %6 linear[2]; outputs %6 and %2.
compiler::Circuit chain_circuit() {
  IntGraph g;
  const ValueId x = add_input(g, {2}, 0, 7);
  const ValueId r = add_linear(g, {x},
                               {{{0, 0, 1}, {0, 1, 1}},    // x0 + x1 - 7
                                {{0, 0, 1}, {0, 1, -1}},   // x0 - x1
                                {{0, 1, 1}, {0, 0, -1}}},  // x1 - x0 + 1
                               {-7, 0, 1}, "gemm fc1");
  std::vector<std::vector<std::int64_t>> tables(3, std::vector<std::int64_t>(16));
  for (std::int64_t m = 0; m < 16; ++m) {
    tables[0][m] = (m * m) % 5 - 2;
    tables[1][m] = std::clamp<std::int64_t>(m - 7, 0, 3);
    tables[2][m] = 2 - m / 4;
  }
  const ValueId t = add_lookup(g, r, 7, 0, 4, tables, {0, 1, 2}, "relu-ish(gemm fc1)");
  const ValueId z = add_linear(g, {t, x},
                               {{{0, 0, 1}, {0, 1, 1}, {0, 2, -1}},  // t0 + t1 - t2
                                {{1, 0, 1}, {0, 1, 1}}},             // x0 + t1 - 4
                               {0, -4}, "gemm fc2");
  const IntRange zr = g.node(z).range;
  std::vector<std::vector<std::int64_t>> sq(1, std::vector<std::int64_t>(16));
  for (std::int64_t m = 0; m < 16; ++m) sq[0][m] = (m - 8) * (m - 8) / 4;
  const std::int64_t z_offset = -zr.lo;
  EXPECT_LE(zr.hi - zr.lo, 15) << "the test circuit's second lookup must fit 4 bits";
  const ValueId u = add_lookup(g, z, z_offset, 0, 4, sq, {0, 0}, "square(gemm fc2)");
  const ValueId q = add_lookup(
      g, x, 0, 0, 3, {{3, -1, 4, -1, 5, -9, 2, 6}, {0, 1, 2, 3, 0, 1, 2, 3}}, {0, 1}, "quirk(x)");
  const ValueId o = add_linear(
      g, {u, q}, {{{0, 0, 1}, {0, 1, 3}, {1, 0, 1}}, {{1, 1, -2}, {0, 0, 1}}}, {0, 4}, "gemm out");
  g.outputs = {o, t};
  return finish(std::move(g), 4);
}

// %0 x[1] in [0,7] -> %1 linear 4x + 4 -> %2 lookup (offset -4, shift 2, 3 bits): reads x
// exactly; %3 = 20x shares %0's class and widens it to 7 bits, so the lookup also multiplies by
// 2^(W - p - shift) = 4. Outputs %2 and %3.
compiler::Circuit shift_circuit() {
  IntGraph g;
  const ValueId x = add_input(g, {1}, 0, 7);
  const ValueId y = add_linear(g, {x}, {{{0, 0, 4}}}, {4}, "4x+4");
  const ValueId t = add_lookup(g, y, -4, 2, 3, {{-5, 7, 2, 0, 11, -3, 6, 1}}, {0}, "f(x)");
  const ValueId w = add_linear(g, {x}, {{{0, 0, 20}}}, {0}, "20x");
  g.outputs = {t, w};
  return finish(std::move(g), 3);
}

// --- Keys shared by all tests: one generation per parameter set and process.

struct RuntimeKeys {
  ClientKeys client;
  EvaluationKeys evaluation;
};

const RuntimeKeys& keys_for(const compiler::Circuit& circuit) {
  static std::mutex mutex;
  static std::map<std::pair<std::uint64_t, bool>, std::unique_ptr<RuntimeKeys>> cache;
  std::lock_guard lock(mutex);
  auto& slot = cache[{tfhe::fingerprint(circuit.parameters), circuit.has_lookups}];
  if (!slot) {
    Keys keys = keygen(circuit, {tfhe::test_seed(tfhe::fingerprint(circuit.parameters))});
    slot = std::make_unique<RuntimeKeys>(
        RuntimeKeys{std::move(keys.client), decompress(keys.evaluation)});
  }
  return *slot;
}

std::vector<IntSample> execute(const Program& program, std::span<const IntSample> samples,
                               ExecutionTrace* trace = nullptr) {
  const RuntimeKeys& keys = keys_for(program.circuit());
  tfhe::Csprng rng(tfhe::test_seed(samples.size()));
  const auto inputs = encrypt(program.circuit(), keys.client, samples, rng);
  const auto outputs = run(program, keys.evaluation, inputs, {nullptr, trace});
  return decrypt(program.circuit(), keys.client, outputs);
}

// Every pair (x0, x1) in [lo, hi]^2.
std::vector<IntSample> pairs(std::int64_t lo, std::int64_t hi) {
  std::vector<IntSample> samples;
  for (std::int64_t a = lo; a <= hi; ++a) {
    for (std::int64_t b = lo; b <= hi; ++b) samples.push_back({ir::IntTensor({2}, {a, b})});
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

void expect_same(const std::vector<IntSample>& actual, const std::vector<IntSample>& expected,
                 std::span<const IntSample> inputs, const char* what) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t s = 0; s < actual.size(); ++s) {
    ASSERT_EQ(actual[s], expected[s])
        << what << " on input " << describe(inputs[s]) << ": got " << describe(actual[s])
        << "expected " << describe(expected[s]);
  }
}

// --- Disable mode itself.

TEST(Disable, DecodesOutputsIntoTheirWindowLikeDecryption) {
  const compiler::Circuit c = shift_circuit();
  // %3 = 20x has width 7: the window of [0, 140] is [0, 256).
  ASSERT_EQ(c.width[3], 7u);
  const std::vector<IntSample> in = {{ir::IntTensor({1}, {15})}};
  const auto out = run_clear(c, in);
  EXPECT_EQ(out[0][1].data[0], 300 - 256);
  // Negacyclic: m = 15 >= 2^3 reads -T[7] = -1, inside %2's window [-5, -5 + 32).
  EXPECT_EQ(out[0][0].data[0], -1);
}

// --- Execute and simulate against disable.

TEST(Execute, EqualsDisableOnEveryInputOfTheChain) {
  const Program program(chain_circuit());
  const auto samples = pairs(0, 7);  // every input of the 3-bit range
  ExecutionTrace trace;
  const auto encrypted = execute(program, samples, &trace);
  expect_same(encrypted, run_clear(program.circuit(), samples), samples, "execute");
  // All lookups of one depth of all 64 samples in one batch call: depth 1 holds %2 (3 elements)
  // and %5 (2), depth 2 holds %4 (2).
  EXPECT_EQ(trace.batch_sizes, (std::vector<std::size_t>{64 * 5, 64 * 2}));
}

TEST(Execute, BatchEqualsOneByOne) {
  const Program program(chain_circuit());
  const std::vector<IntSample> samples = {{ir::IntTensor({2}, {0, 7})},
                                          {ir::IntTensor({2}, {7, 0})},
                                          {ir::IntTensor({2}, {3, 3})},
                                          {ir::IntTensor({2}, {12, 5})},  // out of range
                                          {ir::IntTensor({2}, {6, 1})}};
  const auto batch = execute(program, samples);
  for (std::size_t s = 0; s < samples.size(); ++s) {
    ExecutionTrace trace;
    const auto one = execute(program, std::span(samples).subspan(s, 1), &trace);
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0], batch[s]) << "sample " << s;
    EXPECT_EQ(trace.batch_sizes, (std::vector<std::size_t>{5, 2}));
  }
  expect_same(batch, run_clear(program.circuit(), samples), samples, "batch");
}

// Inputs outside the calibrated range wrap on the torus exactly as the interpreter says
// (modular linear parts, negacyclic lookups): execute still equals disable.
TEST(Execute, OutOfRangeInputsWrapLikeTheInterpreter) {
  const Program chain(chain_circuit());
  std::vector<IntSample> samples;
  tfhe::Csprng rng(tfhe::test_seed(7));
  for (int i = 0; i < 24; ++i) {
    samples.push_back({ir::IntTensor({2}, {static_cast<std::int64_t>(rng.next_u64() % 16),
                                           static_cast<std::int64_t>(rng.next_u64() % 16)})});
  }
  expect_same(execute(chain, samples), run_clear(chain.circuit(), samples), samples, "chain");

  // The shifted lookup on every value of 4 bits: 8..15 read -T[m - 8].
  const Program shifted(shift_circuit());
  std::vector<IntSample> all;
  for (std::int64_t v = 0; v < 16; ++v) all.push_back({ir::IntTensor({1}, {v})});
  const auto expected = run_clear(shifted.circuit(), all);
  // 9 reads -T[1] = -7, which the window [-5, 27) of %2 holds as 25.
  EXPECT_EQ(expected[9][0].data[0], 25) << "the wrap must show in the test";
  expect_same(execute(shifted, all), expected, all, "shift");
}

TEST(Simulate, EqualsDisableAtDefaultParameters) {
  const Program chain(chain_circuit());
  const auto samples = pairs(0, 15);  // in range and wrapped
  tfhe::Csprng rng(tfhe::test_seed(11));
  expect_same(run_simulate(chain, samples, rng), run_clear(chain.circuit(), samples), samples,
              "simulate chain");
  const Program shifted(shift_circuit());
  std::vector<IntSample> all;
  for (std::int64_t v = 0; v < 16; ++v) all.push_back({ir::IntTensor({1}, {v})});
  expect_same(run_simulate(shifted, all, rng), run_clear(shifted.circuit(), all), all,
              "simulate shift");
}

// No lookup: no server key; a 20-bit output class decodes exactly.
TEST(Execute, LinearOnlyCircuitWithAWideOutput) {
  IntGraph g;
  const ValueId x = add_input(g, {3}, 0, 255);
  const ValueId y =
      add_linear(g, {x}, {{{0, 0, 1000}, {0, 1, 3000}, {0, 2, -2000}}, {{0, 0, 1}, {0, 1, -1}}},
                 {12345, 0}, "gemm");
  g.outputs = {y};
  const compiler::Circuit c = finish(std::move(g), 1);
  ASSERT_FALSE(c.has_lookups);
  ASSERT_EQ(c.width[y.index], 20u);
  // The test only means something if the noise model says this decodes.
  const double variance = (1000.0 * 1000 + 3000.0 * 3000 + 2000.0 * 2000) *
                          tfhe::fresh_encryption_variance(c.parameters.glwe_noise);
  ASSERT_LT(tfhe::log2_failure_probability_for_variance(tfhe::MessageBits{20}, variance), -30);

  const RuntimeKeys& keys = keys_for(c);
  EXPECT_FALSE(keys.evaluation.server_key.has_value());
  std::vector<IntSample> samples;
  tfhe::Csprng rng(tfhe::test_seed(3));
  for (const std::int64_t a : {0, 255}) {
    for (const std::int64_t b : {0, 255}) {
      for (const std::int64_t d : {0, 255}) samples.push_back({ir::IntTensor({3}, {a, b, d})});
    }
  }
  for (int i = 0; i < 200; ++i) {
    samples.push_back({ir::IntTensor({3}, {static_cast<std::int64_t>(rng.next_u64() % 256),
                                           static_cast<std::int64_t>(rng.next_u64() % 256),
                                           static_cast<std::int64_t>(rng.next_u64() % 256)})});
  }
  const Program program(c);
  const auto expected = run_clear(c, samples);
  for (std::size_t s = 0; s < samples.size(); ++s) {  // the window holds the exact values
    const auto& x3 = samples[s][0].data;
    ASSERT_EQ(expected[s][0].data[0], 12345 + 1000 * x3[0] + 3000 * x3[1] - 2000 * x3[2]);
  }
  ExecutionTrace trace;
  expect_same(execute(program, samples, &trace), expected, samples, "execute");
  EXPECT_TRUE(trace.batch_sizes.empty());
  expect_same(run_simulate(program, samples, rng), expected, samples, "simulate");
}

// One lookup whose input carries more bits than the parameters were chosen for, so that it
// fails often: the failure rates of simulate and execute must agree within binomial noise.
TEST(Simulate, FailureRateMatchesExecuteWhenFailuresAreFrequent) {
  const tfhe::PbsParameters& params = tfhe::default_parameters(tfhe::MessageBits{2});
  const double variance =
      tfhe::variance_at_lookup(params, tfhe::fresh_encryption_variance(params.glwe_noise));
  std::uint32_t bits = 2;
  while (bits < 8 && tfhe::log2_failure_probability_for_variance(tfhe::MessageBits{bits},
                                                                 variance) < std::log2(0.05)) {
    ++bits;
  }
  const double model =
      std::exp2(tfhe::log2_failure_probability_for_variance(tfhe::MessageBits{bits}, variance));
  ASSERT_GE(model, 0.05);
  ASSERT_LE(model, 0.4) << bits << " bits";

  IntGraph g;
  const std::int64_t size = std::int64_t{1} << bits;
  const ValueId x = add_input(g, {1}, 0, size - 1);
  std::vector<std::vector<std::int64_t>> identity(1);
  for (std::int64_t m = 0; m < size; ++m) identity[0].push_back(m);
  const ValueId t = add_lookup(g, x, 0, 0, bits, identity, {0}, "identity");
  g.outputs = {t};
  compiler::Circuit c = finish(std::move(g), 2);
  ASSERT_EQ(c.width[x.index], bits);
  const Program program(c);

  const std::size_t samples = test::sanitize_profile() ? 300 : 1500;
  std::vector<IntSample> in;
  tfhe::Csprng rng(tfhe::test_seed(21));
  for (std::size_t i = 0; i < samples; ++i) {
    in.push_back({ir::IntTensor({1}, {static_cast<std::int64_t>(rng.next_u64() % size)})});
  }
  const auto count_errors = [&](const std::vector<IntSample>& out) {
    std::size_t errors = 0;
    for (std::size_t i = 0; i < samples; ++i) errors += out[i][0].data[0] != in[i][0].data[0];
    return static_cast<double>(errors) / static_cast<double>(samples);
  };
  const double executed = count_errors(execute(program, in));
  const double simulated = count_errors(run_simulate(program, in, rng));
  const double pooled = (executed + simulated) / 2;
  const double sigma = std::sqrt(pooled * (1 - pooled) * 2.0 / static_cast<double>(samples));
  RecordProperty("lookup_bits", std::to_string(bits));
  RecordProperty("model_rate", std::to_string(model));
  RecordProperty("execute_rate", std::to_string(executed));
  RecordProperty("simulate_rate", std::to_string(simulated));
  EXPECT_LE(std::abs(executed - simulated), 4 * sigma)
      << "execute " << executed << ", simulate " << simulated << ", model " << model << " (" << bits
      << "-bit lookup on 2-bit parameters)";
  // Both must really fail often, or the comparison says nothing.
  EXPECT_GT(executed, 0.02);
  EXPECT_GT(simulated, 0.02);
}

// --- Statistics and report.

TEST(Statistics, CountsOfTheChain) {
  const compiler::Circuit c = chain_circuit();
  const Statistics s = compute_statistics(c, 2);
  EXPECT_EQ(s.lookups_per_bits, (std::map<std::uint32_t, std::size_t>{{3, 2}, {4, 5}}));
  EXPECT_EQ(s.bootstraps, 7u);
  EXPECT_EQ(s.key_switches, 7u);
  EXPECT_EQ(s.depth, 2u);
  EXPECT_EQ(s.bootstraps_per_stage, (std::vector<std::size_t>{5, 2}));
  EXPECT_EQ(s.max_lookup_bits, 4u);
  EXPECT_EQ(s.max_width, *std::max_element(c.width.begin(), c.width.end()));
  // Linear terms 6 + 5 + 5, biases 3 + 2 + 2, lookup offsets 7, and the shift of %5 (3 bits
  // read from a 4-bit class) on its 2 elements.
  ASSERT_EQ(c.width[0], 4u);
  EXPECT_EQ(s.linear_ops, 16u + 7u + 7u + 2u);
  EXPECT_GT(s.key_sizes.bootstrap_compressed, 0u);
  EXPECT_EQ(s.ciphertext_bytes, (2048u + 1u) * 8u);
  EXPECT_DOUBLE_EQ(s.bootstrap_ms, 13.25);  // bench/README.md, 4 bits
  EXPECT_DOUBLE_EQ(s.estimated_latency_ms, 7 * 13.25);
  EXPECT_DOUBLE_EQ(s.estimated_parallel_latency_ms, (3 + 1) * 13.25);

  const std::string text = report(c, s);
  EXPECT_NE(text.find("relu-ish(gemm fc1)"), std::string::npos) << text;
  EXPECT_NE(text.find("lookup p=4 x3"), std::string::npos) << text;
  EXPECT_NE(text.find("n=771"), std::string::npos) << text;
}

TEST(Statistics, LinearOnlyHasNoKeysAndNoBootstraps) {
  IntGraph g;
  const ValueId x = add_input(g, {2}, 0, 3);
  g.outputs = {add_linear(g, {x}, {{{0, 0, 2}, {0, 1, 1}}}, {1}, "gemm")};
  const Statistics s = compute_statistics(finish(std::move(g), 1));
  EXPECT_EQ(s.bootstraps, 0u);
  EXPECT_EQ(s.depth, 0u);
  EXPECT_EQ(s.key_sizes.bootstrap_compressed, 0u);
  EXPECT_EQ(s.key_sizes.keyswitch_expanded, 0u);
  EXPECT_EQ(s.estimated_latency_ms, 0.0);
  EXPECT_EQ(s.linear_ops, 3u);
}

// --- The convenience class: quantize, run, dequantize, keys made once.

TEST(FheCircuit, PredictAgreesAcrossModes) {
  compiler::Circuit c = chain_circuit();
  c.inputs = {quant::InputQuantizer{"x", {2}, {0.5}, {0.0}, 3}};
  c.outputs = {quant::OutputDequantizer{{2}, {0.25, 0.5}, {1.0, -1.0}},
               quant::OutputDequantizer{{3}, {1.0, 1.0, 1.0}, {0.0, 0.0, 0.0}}};
  FheCircuit circuit(std::move(c), {tfhe::test_seed(5)});
  std::vector<FloatSample> samples;
  for (double a = 0; a < 4; a += 0.5) samples.push_back({ir::FloatTensor({2}, {a, 3.5 - a})});
  const auto clear = circuit.predict(samples, Mode::kDisable);
  const auto simulated = circuit.predict(samples, Mode::kSimulate);
  const auto executed = circuit.predict(samples, Mode::kExecute);
  ASSERT_EQ(clear.size(), samples.size());
  EXPECT_EQ(simulated, clear);
  EXPECT_EQ(executed, clear);
  const Statistics s = circuit.statistics();
  ASSERT_TRUE(s.last_run.has_value());
  EXPECT_EQ(s.last_run->mode, Mode::kExecute);
  EXPECT_EQ(s.last_run->samples, samples.size());
  EXPECT_GT(s.last_run->keygen_s, 0.0);
  EXPECT_GT(s.last_run->run_s, 0.0);
  EXPECT_NE(report(circuit.circuit(), s).find("last run (execute, 8 samples)"), std::string::npos);
  // The key is kept: a second run does not regenerate it (same timing recorded).
  const double keygen_s = s.last_run->keygen_s;
  (void)circuit.predict(std::span(samples).first(1), Mode::kExecute);
  EXPECT_EQ(circuit.statistics().last_run->keygen_s, keygen_s);
}

// --- Threads of FheCircuit, and execution on expanded inputs.

// x[1, F] -> gemm with F x 2 weights and a bias, at 8 bits: compiled like a model, no lookup.
compiler::Circuit compiled_linear(std::size_t features) {
  tfhe::Csprng rng(tfhe::test_seed(41));
  const auto uniform = [&] { return 2 * rng.next_unit_double() - 1; };
  ir::FloatGraph g;
  const ValueId x = g.input("x", {1, features});
  std::vector<double> coef(features * 2);
  for (double& w : coef) w = uniform();
  const ValueId w = g.constant("coef", ir::FloatTensor({features, 2}, coef));
  const ValueId b = g.constant("bias", ir::FloatTensor({2}, {0.5, -0.25}));
  g.mark_output(g.gemm(x, w, b, /*trans_b=*/false, "linear"));
  std::vector<quant::Sample> calibration;
  for (int i = 0; i < 64; ++i) {
    std::vector<double> row(features);
    for (double& v : row) v = uniform();
    calibration.push_back({ir::FloatTensor({1, features}, row)});
  }
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(8);
  return compiler::compile(g, calibration, options);
}

class FheCircuitThreads : public ::testing::TestWithParam<unsigned> {};

TEST_P(FheCircuitThreads, ExecuteEqualsDisableOnALinearModel) {
  constexpr std::size_t kFeatures = 12;
  FheCircuitOptions options{tfhe::test_seed(6)};
  options.threads = GetParam();
  FheCircuit circuit(compiled_linear(kFeatures), options);
  ASSERT_FALSE(circuit.circuit().has_lookups);
  EXPECT_EQ(circuit.threads(), GetParam());
  std::vector<FloatSample> samples;
  tfhe::Csprng rng(tfhe::test_seed(8));
  for (int s = 0; s < 24; ++s) {
    std::vector<double> row(kFeatures);
    for (double& v : row) v = 2.4 * rng.next_unit_double() - 1.2;  // a little out of range too
    samples.push_back({ir::FloatTensor({1, kFeatures}, row)});
  }
  const auto clear = circuit.predict(samples, Mode::kDisable);
  const auto executed = circuit.predict(samples, Mode::kExecute);
  ASSERT_EQ(executed.size(), samples.size());
  EXPECT_EQ(executed, clear);
  const Statistics s = circuit.statistics();
  EXPECT_EQ(s.threads, GetParam());
  ASSERT_TRUE(s.last_run.has_value());
  EXPECT_EQ(s.last_run->mode, Mode::kExecute);
  EXPECT_GT(s.last_run->encrypt_s, 0.0);
}

TEST_P(FheCircuitThreads, ExecuteEqualsDisableOnTheChainWithLookups) {
  compiler::Circuit c = chain_circuit();
  c.inputs = {quant::InputQuantizer{"x", {2}, {0.5}, {0.0}, 3}};
  c.outputs = {quant::OutputDequantizer{{2}, {0.25, 0.5}, {1.0, -1.0}},
               quant::OutputDequantizer{{3}, {1.0, 1.0, 1.0}, {0.0, 0.0, 0.0}}};
  FheCircuitOptions options{tfhe::test_seed(5)};
  options.threads = GetParam();
  FheCircuit circuit(std::move(c), options);
  std::vector<FloatSample> samples;
  for (double a = 0; a < 4; a += 0.5) {
    for (double b = 0; b < 4; b += 1.5) samples.push_back({ir::FloatTensor({2}, {a, b})});
  }
  const auto clear = circuit.predict(samples, Mode::kDisable);
  EXPECT_EQ(circuit.predict(samples, Mode::kExecute), clear);
  EXPECT_EQ(circuit.statistics().threads, GetParam());
  EXPECT_EQ(circuit.predict(samples, Mode::kSimulate), clear);
}

INSTANTIATE_TEST_SUITE_P(Threads, FheCircuitThreads, ::testing::Values(1u, 2u));

TEST(FheCircuit, ZeroThreadsIsTheGlobalPool) {
  FheCircuit circuit(chain_circuit());
  EXPECT_EQ(circuit.threads(), tfhe::ThreadPool::global().size());
  EXPECT_EQ(circuit.statistics().threads, tfhe::ThreadPool::global().size());
}

// Masks generated once at encryption (expanded) or from seeds twice (seeded): after decryption
// the same results, and the same bootstrap batches.
TEST(Execute, ExpandedInputsEqualSeededInputs) {
  const Program program(chain_circuit());
  const RuntimeKeys& keys = keys_for(program.circuit());
  const auto samples = pairs(5, 9);  // in range and wrapped
  tfhe::Csprng rng(tfhe::test_seed(12));
  const auto seeded = encrypt(program.circuit(), keys.client, samples, rng);
  const auto expanded = encrypt_expanded(program.circuit(), keys.client, samples, rng);
  ASSERT_EQ(expanded.size(), seeded.size());
  for (std::size_t i = 0; i < expanded.size(); ++i) {
    EXPECT_EQ(expanded[i].batch, seeded[i].batch);
    EXPECT_EQ(expanded[i].ciphertexts.dimension, seeded[i].ciphertexts.dimension);
    EXPECT_EQ(expanded[i].ciphertexts.count(), seeded[i].ciphertexts.count());
  }
  ExecutionTrace seeded_trace, expanded_trace;
  tfhe::ThreadPool one(1);
  const auto from_seeded = decrypt(program.circuit(), keys.client,
                                   run(program, keys.evaluation, seeded, {&one, &seeded_trace}));
  const auto from_expanded =
      decrypt(program.circuit(), keys.client,
              run(program, keys.evaluation, std::span<const ExpandedInput>(expanded),
                  {nullptr, &expanded_trace}));
  const auto expected = run_clear(program.circuit(), samples);
  expect_same(from_seeded, expected, samples, "seeded");
  expect_same(from_expanded, expected, samples, "expanded");
  EXPECT_EQ(expanded_trace.batch_sizes, seeded_trace.batch_sizes);
}

// The masks come from a CSPRNG under a fresh seed: no two ciphertexts, within a call or across
// calls with the same noise generator state, share one.
TEST(Execute, ExpandedMasksAreFreshPerCiphertextAndPerCall) {
  const compiler::Circuit c = compiled_linear(4);
  const RuntimeKeys& keys = keys_for(c);
  const std::vector<IntSample> samples = {{ir::IntTensor({1, 4}, {1, 2, 3, 4})},
                                          {ir::IntTensor({1, 4}, {1, 2, 3, 4})}};
  tfhe::Csprng rng_a(tfhe::test_seed(13)), rng_b(tfhe::test_seed(13));
  const auto a = encrypt_expanded(c, keys.client, samples, rng_a);
  const auto b = encrypt_expanded(c, keys.client, samples, rng_b);
  ASSERT_EQ(a.size(), 1u);
  const tfhe::LweCiphertextList& list = a[0].ciphertexts;
  ASSERT_EQ(list.count(), 8u);
  const std::size_t n = list.dimension.value;
  std::vector<std::span<const tfhe::Torus>> masks;
  for (std::size_t i = 0; i < list.count(); ++i) masks.push_back(list.at(i).first(n));
  masks.push_back(b[0].ciphertexts.at(0).first(n));
  for (std::size_t i = 0; i < masks.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      EXPECT_FALSE(std::equal(masks[i].begin(), masks[i].end(), masks[j].begin()))
          << "masks " << i << " and " << j;
    }
  }
  EXPECT_EQ(
      run_clear(c, samples),
      decrypt(c, keys.client, run(Program(c), keys.evaluation, std::span<const ExpandedInput>(a))));
}

TEST(Validation, RunOnExpandedInputsRefusesMismatches) {
  const Program program(chain_circuit());
  const RuntimeKeys& keys = keys_for(program.circuit());
  tfhe::Csprng rng(tfhe::test_seed(14));
  const std::vector<IntSample> samples = pairs(0, 1);
  const auto inputs = encrypt_expanded(program.circuit(), keys.client, samples, rng);
  const auto run_on = [&](const std::vector<ExpandedInput>& in) {
    return run(program, keys.evaluation, std::span<const ExpandedInput>(in));
  };
  EXPECT_EQ(decrypt(program.circuit(), keys.client, run_on(inputs)),
            run_clear(program.circuit(), samples));

  EXPECT_THROW(run_on({}), std::invalid_argument);  // one graph input, none given
  EXPECT_THROW(run_on({inputs[0], inputs[0]}), std::invalid_argument);
  const std::size_t length = tfhe::lwe_size(inputs[0].ciphertexts.dimension);
  auto short_batch = inputs;  // one ciphertext missing
  short_batch[0].ciphertexts.data.resize(short_batch[0].ciphertexts.data.size() - length);
  EXPECT_THROW(run_on(short_batch), std::invalid_argument);
  auto partial = inputs;  // a ciphertext cut short
  partial[0].ciphertexts.data.pop_back();
  EXPECT_THROW(run_on(partial), std::invalid_argument);
  auto wrong_batch = inputs;
  wrong_batch[0].batch = 1000000;
  EXPECT_THROW(run_on(wrong_batch), std::invalid_argument);
  auto wrong_dimension = inputs;
  wrong_dimension[0].ciphertexts.dimension = tfhe::LweDimension{1024};
  EXPECT_THROW(run_on(wrong_dimension), std::invalid_argument);
  // A forged dimension whose ciphertext size wraps to 0 must not reach the count (a division).
  auto forged_dimension = inputs;
  forged_dimension[0].ciphertexts.dimension = tfhe::LweDimension{~std::size_t{0}};
  EXPECT_THROW(run_on(forged_dimension), std::invalid_argument);
  try {
    run_on(wrong_batch);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expected 1000000 samples of 2 ciphertexts"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(run(program, EvaluationKeys{program.circuit().parameters, std::nullopt},
                   std::span<const ExpandedInput>(inputs)),
               std::invalid_argument);
  const std::vector<IntSample> wrong_shape = {{ir::IntTensor({3}, {1, 2, 3})}};
  EXPECT_THROW(encrypt_expanded(program.circuit(), keys.client, wrong_shape, rng),
               std::invalid_argument);
  const std::vector<IntSample> wrong_count = {{ir::IntTensor({2}, {1, 2}), ir::IntTensor({2})}};
  EXPECT_THROW(encrypt_expanded(program.circuit(), keys.client, wrong_count, rng),
               std::invalid_argument);
}

// --- A run split at its stages: the bootstraps of a stage run elsewhere (run_stage), in parts.

// Cuts each stage into `parts` pieces of uneven size, runs each with run_stage and joins them.
StageRunner split_runner(const Program& program, const EvaluationKeys& keys, std::size_t parts,
                         std::vector<std::size_t>& stage_sizes) {
  return [&program, &keys, parts, &stage_sizes](const tfhe::LweCiphertextList& inputs,
                                                std::span<const StageLookup> lookups) {
    stage_sizes.push_back(lookups.size());
    const std::size_t length = tfhe::lwe_size(inputs.dimension);
    tfhe::LweCiphertextList out(inputs.dimension, 0);
    std::size_t begin = 0;
    for (std::size_t p = 0; p < parts && begin < lookups.size(); ++p) {
      const std::size_t end =
          p + 1 == parts ? lookups.size() : std::min(lookups.size(), begin + 1 + 2 * p);
      tfhe::LweCiphertextList part(inputs.dimension, end - begin);
      std::copy(inputs.data.begin() + static_cast<std::ptrdiff_t>(begin * length),
                inputs.data.begin() + static_cast<std::ptrdiff_t>(end * length), part.data.begin());
      const tfhe::LweCiphertextList done =
          run_stage(program, keys, part, lookups.subspan(begin, end - begin));
      out.data.insert(out.data.end(), done.data.begin(), done.data.end());
      begin = end;
    }
    return out;
  };
}

TEST(Staged, StagesRunInPartsGiveTheRunsCiphertextsBitForBit) {
  const Program program(chain_circuit());
  const RuntimeKeys& keys = keys_for(program.circuit());
  const auto samples = pairs(2, 3);
  tfhe::Csprng rng(tfhe::test_seed(21));
  const auto inputs = encrypt(program.circuit(), keys.client, samples, rng);
  const auto whole = run(program, keys.evaluation, inputs);
  std::vector<std::size_t> stage_sizes;
  const StageRunner runner = split_runner(program, keys.evaluation, 3, stage_sizes);
  const auto staged = run_staged(program, inputs, runner);
  ASSERT_EQ(staged.size(), whole.size());
  for (std::size_t o = 0; o < whole.size(); ++o) {
    EXPECT_EQ(staged[o].batch, whole[o].batch);
    EXPECT_TRUE(staged[o].ciphertexts == whole[o].ciphertexts) << "output " << o;
  }
  // Depth 1: %2 (3 elements) and %5 (2) of 4 samples; depth 2: %4 (2).
  EXPECT_EQ(stage_sizes, (std::vector<std::size_t>{4 * 5, 4 * 2}));
  expect_same(decrypt(program.circuit(), keys.client, staged),
              run_clear(program.circuit(), samples), samples, "staged");
}

TEST(Staged, RefusesWhatIsNotTheCircuits) {
  const Program program(chain_circuit());
  const RuntimeKeys& keys = keys_for(program.circuit());
  tfhe::Csprng rng(tfhe::test_seed(22));
  const auto inputs = encrypt(program.circuit(), keys.client, pairs(0, 1), rng);
  // The first stage as the runner sees it.
  tfhe::LweCiphertextList stage;
  std::vector<StageLookup> lookups;
  const StageRunner capture = [&](const tfhe::LweCiphertextList& in,
                                  std::span<const StageLookup> l) -> tfhe::LweCiphertextList {
    stage = in;
    lookups.assign(l.begin(), l.end());
    throw std::runtime_error("runner stopped");
  };
  EXPECT_THROW(run_staged(program, inputs, capture), std::runtime_error);  // passes through
  ASSERT_EQ(lookups.size(), 4u * 5u);
  EXPECT_EQ(run_stage(program, keys.evaluation, stage, lookups).count(), lookups.size());

  const auto refused = [&](std::vector<StageLookup> l, const tfhe::LweCiphertextList& in,
                           const char* message) {
    try {
      run_stage(program, keys.evaluation, in, l);
      ADD_FAILURE() << "accepted: " << message;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  auto l = lookups;
  l[3].node = 0;  // the input
  refused(l, stage, "names node %0, not a lookup");
  l = lookups;
  l[0].node = 1000;
  refused(l, stage, "names node %1000");
  l = lookups;
  l[1] = StageLookup{4, 1};  // %4 has one table
  refused(l, stage, "names table 1 of node %4, which has 1");
  l = lookups;
  l.pop_back();
  refused(l, stage, "names 19 lookups");
  tfhe::LweCiphertextList cut = stage;
  cut.data.pop_back();
  refused(lookups, cut, "stage ciphertexts of dimension");
  EXPECT_THROW(run_stage(program, EvaluationKeys{program.circuit().parameters, std::nullopt}, stage,
                         lookups),
               std::invalid_argument);

  // A runner that loses a ciphertext or returns another dimension is refused by run_staged.
  const StageRunner short_runner = [&](const tfhe::LweCiphertextList& in,
                                       std::span<const StageLookup> l) {
    tfhe::LweCiphertextList out = run_stage(program, keys.evaluation, in, l);
    out.data.resize(out.data.size() - tfhe::lwe_size(out.dimension));
    return out;
  };
  EXPECT_THROW(run_staged(program, inputs, short_runner), std::invalid_argument);
  const StageRunner small_runner = [&](const tfhe::LweCiphertextList& in,
                                       std::span<const StageLookup>) {
    return tfhe::LweCiphertextList(tfhe::LweDimension{in.dimension.value - 1}, in.count() + 1);
  };
  EXPECT_THROW(run_staged(program, inputs, small_runner), std::invalid_argument);
}

// --- What comes from outside is checked.

TEST(Validation, RefusesMismatchedInputsKeysAndCircuits) {
  const Program program(chain_circuit());
  const RuntimeKeys& keys = keys_for(program.circuit());
  tfhe::Csprng rng(tfhe::test_seed(9));
  const std::vector<IntSample> samples = pairs(0, 1);
  auto inputs = encrypt(program.circuit(), keys.client, samples, rng);

  EXPECT_THROW(run(program, keys.evaluation, std::span(inputs).first(0)), std::invalid_argument);
  auto short_batch = inputs;
  short_batch[0].ciphertexts.bodies.pop_back();
  EXPECT_THROW(run(program, keys.evaluation, short_batch), std::invalid_argument);
  auto wrong_batch = inputs;
  wrong_batch[0].batch = 1000000;
  EXPECT_THROW(run(program, keys.evaluation, wrong_batch), std::invalid_argument);
  auto wrong_dimension = inputs;
  wrong_dimension[0].ciphertexts.dimension = tfhe::LweDimension{1024};
  EXPECT_THROW(run(program, keys.evaluation, wrong_dimension), std::invalid_argument);
  EXPECT_THROW(run(program, EvaluationKeys{program.circuit().parameters, std::nullopt}, inputs),
               std::invalid_argument);
  const compiler::Circuit linear_only = [] {
    IntGraph g;
    const ValueId x = add_input(g, {2}, 0, 3);
    g.outputs = {add_linear(g, {x}, {{{0, 0, 1}}}, {0}, "gemm")};
    return finish(std::move(g), 1);
  }();
  EXPECT_THROW(run(program, keys_for(linear_only).evaluation, inputs), std::invalid_argument);

  const std::vector<IntSample> wrong_shape = {{ir::IntTensor({3}, {1, 2, 3})}};
  EXPECT_THROW(encrypt(program.circuit(), keys.client, wrong_shape, rng), std::invalid_argument);

  auto outputs = run(program, keys.evaluation, inputs);
  EXPECT_EQ(decrypt(program.circuit(), keys.client, outputs),
            run_clear(program.circuit(), samples));
  outputs[1].ciphertexts.data.pop_back();
  EXPECT_THROW(decrypt(program.circuit(), keys.client, outputs), std::invalid_argument);

  compiler::Circuit no_widths = chain_circuit();
  no_widths.width.clear();
  EXPECT_THROW(Program{no_widths}, std::invalid_argument);
  compiler::Circuit too_small = chain_circuit();
  too_small.parameters.polynomial_size = tfhe::PolynomialSize{16};  // 4-bit tables need 32
  EXPECT_THROW(Program{too_small}, std::invalid_argument);
}

}  // namespace
}  // namespace fheml::runtime
