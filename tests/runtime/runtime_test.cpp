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
#include "fheml/tfhe/noise.h"
#include "runtime/runtime_fixtures.h"
#include "tfhe/test_support.h"

namespace fheml::runtime {
namespace {

using namespace fixtures;  // NOLINT(google-build-using-namespace): the circuits by hand

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
  // The cost model's nanoseconds (measured on the standard machine) of the 4-bit set.
  const double ms = tfhe::estimated_cost(tfhe::default_parameters(tfhe::MessageBits{4})) * 1e-6;
  EXPECT_NEAR(ms, 9.4, 0.1);
  EXPECT_DOUBLE_EQ(s.bootstrap_ms, ms);
  EXPECT_DOUBLE_EQ(s.estimated_latency_ms, 7 * ms);
  EXPECT_DOUBLE_EQ(s.estimated_parallel_latency_ms, (3 + 1) * ms);

  const std::string text = report(c, s);
  EXPECT_NE(text.find("relu-ish(gemm fc1)"), std::string::npos) << text;
  EXPECT_NE(text.find("lookup p=4 x3"), std::string::npos) << text;
  EXPECT_NE(text.find("n=757"), std::string::npos) << text;
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
