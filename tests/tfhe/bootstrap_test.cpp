// Programmable bootstrapping on the built-in parameter sets, with real keys: exhaustive lookups
// for every precision, many-LUT, batches, and noise/failure statistics against the model.
#include "fheml/tfhe/bootstrap.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/noise.h"
#include "test_support.h"

namespace fheml::tfhe {
namespace {

std::vector<std::uint64_t> random_table(std::size_t bits, Csprng& rng) {
  std::vector<std::uint64_t> table(std::size_t{1} << bits);
  for (auto& v : table) v = rng.next_u64() % table.size();
  return table;
}

// Every input of every precision, through a fresh random table at each repetition. Inputs are
// fresh encryptions; a failure rate of 2^-40 would show no failure here, so any failure is a bug.
void check_every_input(std::size_t p, FailureBound bound, std::size_t repetitions) {
  const MessageBits bits{p};
  const PbsParameters& params = default_parameters(bits, bound);
  const auto& keys = test::keys_for(params);
  Csprng rng(test_seed(100 + p));
  const std::size_t messages = std::size_t{1} << p;
  for (std::size_t r = 0; r < repetitions; ++r) {
    const auto table = random_table(p, rng);
    const LookupTable lut = make_lookup_table(lookup_polynomial_size(params), bits, table, bits);
    LweCiphertextList inputs(keys.client.big_dimension(), messages);
    for (std::size_t m = 0; m < messages; ++m) {
      const LweCiphertext ct = encrypt(keys.client, m, bits, rng);
      std::copy(ct.data.begin(), ct.data.end(), inputs.at(m).begin());
    }
    const LookupTable* tables[] = {&lut};
    const LweCiphertextList out = keyswitch_bootstrap_batch(keys.server, inputs, tables);
    for (std::size_t m = 0; m < messages; ++m) {
      ASSERT_EQ(decrypt(keys.client, out.at(m), bits), table[m])
          << p << "-bit lookup of " << m << ", repetition " << r;
    }
  }
}

class ExhaustivePbs : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ExhaustivePbs, EveryInputThroughRandomTables) {
  const std::size_t p = GetParam();
  if (test::sanitize_profile() && p > 4) GTEST_SKIP() << "sanitizer profile stops at 4 bits";
  // 7 and 8 bits cost 0.3-0.9 s per bootstrap: one pass over every input.
  check_every_input(p, FailureBound::k2m40, test::sanitize_profile() ? 1 : (p >= 7 ? 1 : 3));
}

INSTANTIATE_TEST_SUITE_P(Precisions, ExhaustivePbs, ::testing::Range<std::size_t>(1, 9));

class ExhaustivePbs64 : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ExhaustivePbs64, EveryInputAtTheStricterBound) {
  const std::size_t p = GetParam();
  if (test::sanitize_profile() && p > 3) GTEST_SKIP() << "sanitizer profile stops at 3 bits";
  check_every_input(p, FailureBound::k2m64, 1);
}

INSTANTIATE_TEST_SUITE_P(Precisions, ExhaustivePbs64, ::testing::Range<std::size_t>(1, 7));

// 2^m tables from one bootstrap of a p-bit input, on the parameter set of precision p + m.
struct ManyLutCase {
  std::size_t input_bits, log2_tables;
};
class ManyLut : public ::testing::TestWithParam<ManyLutCase> {};

TEST_P(ManyLut, EveryTableOnEveryInput) {
  const auto [p, m] = GetParam();
  if (test::sanitize_profile() && p + m > 4) GTEST_SKIP();
  const MessageBits bits{p};
  const PbsParameters& params = default_parameters(many_lut_precision(bits, m));
  const auto& keys = test::keys_for(params);
  Csprng rng(test_seed(200 + 10 * p + m));
  const std::size_t count = std::size_t{1} << m;
  std::vector<std::vector<std::uint64_t>> tables(count);
  std::vector<std::vector<Torus>> encoded(count);
  for (std::size_t f = 0; f < count; ++f) {
    tables[f] = random_table(p, rng);
    for (const auto v : tables[f]) encoded[f].push_back(encode(v, bits));
  }
  const LookupTable lut = make_lookup_table(lookup_polynomial_size(params), bits, encoded);
  EXPECT_EQ(lut.bootstrap_bits(), p + m);
  PbsWorkspace workspace(keys.server);
  const std::size_t out_len = lwe_size(keys.client.big_dimension());
  std::vector<Torus> outputs(count * out_len);
  for (int r = 0; r < 2; ++r) {
    for (std::uint64_t x = 0; x < (1u << p); ++x) {
      const LweCiphertext ct = encrypt(keys.client, x, bits, rng);
      keyswitch_bootstrap(outputs, ct.data, keys.server, lut, workspace);
      for (std::size_t f = 0; f < count; ++f) {
        ASSERT_EQ(decrypt(keys.client,
                          std::span<const Torus>(outputs).subspan(f * out_len, out_len), bits),
                  tables[f][x])
            << "table " << f << " of " << count << ", input " << x;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ManyLut,
                         ::testing::Values(ManyLutCase{1, 1}, ManyLutCase{2, 2}, ManyLutCase{3, 1},
                                           ManyLutCase{2, 1}, ManyLutCase{4, 2}));

TEST(Batch, IdenticalToOneByOneWithPerInputTables) {
  const MessageBits bits{3};
  const PbsParameters& params = default_parameters(bits);
  const auto& keys = test::keys_for(params);
  Csprng rng(test_seed(300));
  const std::size_t count = 9;
  LweCiphertextList inputs(keys.client.big_dimension(), count);
  std::vector<LookupTable> luts;
  std::vector<const LookupTable*> tables;
  for (std::size_t i = 0; i < count; ++i) {
    const LweCiphertext ct = encrypt(keys.client, i % 8, bits, rng);
    std::copy(ct.data.begin(), ct.data.end(), inputs.at(i).begin());
    luts.push_back(
        make_lookup_table(lookup_polynomial_size(params), bits, random_table(3, rng), bits));
  }
  for (const auto& l : luts) tables.push_back(&l);
  ThreadPool pool(3);
  const LweCiphertextList batch = keyswitch_bootstrap_batch(keys.server, inputs, tables, pool);
  for (std::size_t i = 0; i < count; ++i) {
    const LweCiphertextList single = keyswitch_bootstrap(keys.server, inputs.at(i), luts[i]);
    ASSERT_TRUE(std::ranges::equal(single.at(0), batch.at(i))) << "ciphertext " << i;
  }
  // A table count that matches neither 1 nor the batch is refused.
  std::vector<const LookupTable*> two = {tables[0], tables[1]};
  EXPECT_THROW(keyswitch_bootstrap_batch(keys.server, inputs, two, pool), std::invalid_argument);
}

TEST(LookupTables, RefuseShapesTheyCannotHold) {
  std::vector<std::vector<Torus>> three(3, std::vector<Torus>(4));
  EXPECT_THROW(make_lookup_table(PolynomialSize{1024}, MessageBits{2}, three),
               std::invalid_argument);
  std::vector<std::vector<Torus>> wrong(1, std::vector<Torus>(5));
  EXPECT_THROW(make_lookup_table(PolynomialSize{1024}, MessageBits{2}, wrong),
               std::invalid_argument);
  std::vector<std::vector<Torus>> big(1, std::vector<Torus>(1024));
  EXPECT_THROW(make_lookup_table(PolynomialSize{1024}, MessageBits{10}, big),
               std::invalid_argument);
}

// A bootstrap reads tables of the key's N times 1, 2, 4, ... kMaxExtension, and says so for
// others instead of reading a ring the key does not divide.
TEST(LookupTables, BootstrapRefusesTablesTheKeyDoesNotDivide) {
  const LweDimension n{16};
  Csprng rng(test_seed(700));
  const LweSecretKey small_key = generate_lwe_secret_key(n, rng);
  const GlweSecretKey glwe_key =
      generate_glwe_secret_key(GlweDimension{1}, PolynomialSize{512}, rng);
  const FourierBootstrapKey bsk = to_fourier(expand(generate_seeded_bootstrap_key(
      small_key, glwe_key, DecompositionBaseLog{15}, DecompositionLevelCount{2},
      NoiseStdDev{0x1p-45}, test_seed(701), rng)));
  BootstrapScratch scratch(bsk.shape);
  std::vector<Torus> small(lwe_size(n));
  const std::vector<std::uint64_t> identity = {0, 1, 2, 3};
  for (const std::size_t size : {256u, 512u * 128u}) {
    const LookupTable lut =
        make_lookup_table(PolynomialSize{size}, MessageBits{2}, identity, MessageBits{2});
    std::vector<Torus> out(lwe_size(bsk.shape.output_dimension()));
    try {
      programmable_bootstrap(out, small, bsk, lut, scratch);
      ADD_FAILURE() << "a table of " << size << " coefficients was read with a key of N = 512";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("times a power of two"), std::string::npos) << e.what();
    }
  }
}

// The output noise of a bootstrap has the variance the model states (thousands of samples).
TEST(PbsNoise, OutputVarianceMatchesTheModel) {
  const MessageBits bits{2};
  const PbsParameters& params = default_parameters(bits);
  const auto& keys = test::keys_for(params);
  Csprng rng(test_seed(400));
  const std::size_t samples = test::sanitize_profile() ? 64 : 2000;
  LweCiphertextList inputs(keys.client.big_dimension(), samples);
  std::vector<std::uint64_t> messages(samples);
  for (std::size_t i = 0; i < samples; ++i) {
    messages[i] = rng.next_u64() % 4;
    const LweCiphertext ct = encrypt(keys.client, messages[i], bits, rng);
    std::copy(ct.data.begin(), ct.data.end(), inputs.at(i).begin());
  }
  const std::vector<std::uint64_t> identity = {0, 1, 2, 3};
  const LookupTable lut = make_lookup_table(lookup_polynomial_size(params), bits, identity, bits);
  const LookupTable* tables[] = {&lut};
  const LweCiphertextList out = keyswitch_bootstrap_batch(keys.server, inputs, tables);
  double sum_sq = 0;
  for (std::size_t i = 0; i < samples; ++i) {
    const Torus phase = decrypt_lwe_phase(out.at(i), keys.client.glwe_key.as_lwe_key());
    const double e = std::ldexp(double(noise_of(phase, encode(messages[i], bits))), -64);
    sum_sq += e * e;
  }
  const double measured = sum_sq / double(samples);
  const double model = pbs_output_variance(params);
  RecordProperty("measured_log2_variance", std::to_string(std::log2(measured)));
  RecordProperty("model_log2_variance", std::to_string(std::log2(model)));
  // The model is an upper-bound style estimate (FFT term fitted on other machines): it must not
  // underestimate by more than sampling error, and must not be off by more than 2x.
  EXPECT_LE(measured, model * (1 + 5 * std::sqrt(2.0 / double(samples))))
      << "log2 measured " << std::log2(measured) << ", model " << std::log2(model);
  EXPECT_GE(measured, model / 2) << "log2 measured " << std::log2(measured) << ", model "
                                 << std::log2(model);
}

// With messages squeezed into more bits than the parameters were chosen for, failures become
// frequent enough to count: their number must agree with the noise model's probability. This is
// what makes the 2^-40 claim testable.
TEST(PbsFailures, CountAgreesWithTheModelWhenFailuresAreFrequent) {
  if (test::sanitize_profile()) GTEST_SKIP();
  const PbsParameters& params = default_parameters(MessageBits{2});
  const auto& keys = test::keys_for(params);
  // Variance at blind-rotation input for fresh inputs (no linear combination): encryption noise,
  // key switch, modulus switch.
  const double variance = variance_at_lookup(params, fresh_encryption_variance(params.glwe_noise));
  std::size_t p = 2;
  while (p < 12 &&
         log2_failure_probability_for_variance(MessageBits{p}, variance) < std::log2(0.03))
    ++p;
  const double p_fail = std::exp2(log2_failure_probability_for_variance(MessageBits{p}, variance));
  ASSERT_GT(p_fail, 0.05);
  ASSERT_LE(std::size_t{2} << p, params.polynomial_size.value)
      << "parameters leave no room to squeeze";
  const MessageBits bits{p};
  Csprng rng(test_seed(500));
  const std::size_t samples = 4000;  // >= 200 expected failures: both bounds below bite
  LweCiphertextList inputs(keys.client.big_dimension(), samples);
  std::vector<std::uint64_t> messages(samples);
  const std::size_t range = std::size_t{1} << p;
  for (std::size_t i = 0; i < samples; ++i) {
    messages[i] = rng.next_u64() % range;
    const LweCiphertext ct = encrypt(keys.client, messages[i], bits, rng);
    std::copy(ct.data.begin(), ct.data.end(), inputs.at(i).begin());
  }
  std::vector<std::uint64_t> identity(range);
  for (std::size_t m = 0; m < range; ++m) identity[m] = m;
  const LookupTable lut = make_lookup_table(lookup_polynomial_size(params), bits, identity, bits);
  const LookupTable* tables[] = {&lut};
  const LweCiphertextList out = keyswitch_bootstrap_batch(keys.server, inputs, tables);
  std::size_t failures = 0;
  for (std::size_t i = 0; i < samples; ++i)
    failures += decrypt(keys.client, out.at(i), bits) != messages[i];
  const double expected = p_fail * double(samples);
  const double sigma = std::sqrt(expected * (1 - p_fail));
  RecordProperty("squeezed_precision", std::to_string(p));
  RecordProperty("failures", std::to_string(failures));
  RecordProperty("expected_failures", std::to_string(expected));
  // Binomial slack of 5 sigma, and a factor 2 for the model's approximations in the tail.
  ASSERT_GT(expected / 2 - 5 * sigma, 0.0) << "the lower bound would be vacuous";
  EXPECT_LE(double(failures), 2 * expected + 5 * sigma)
      << "p = " << p << ", model p_fail " << p_fail;
  EXPECT_GE(double(failures), expected / 2 - 5 * sigma)
      << "p = " << p << ", model p_fail " << p_fail;
}

// lookup_clear is the clear model of a bootstrap: for any small-key ciphertext, the bootstrap's
// output phase must equal lookup_clear at the ciphertext's modulus-switched phase, up to the
// bootstrap's own noise. Uniformly random ciphertexts (random phases, not just encodings of
// messages) through random tables, single and many-LUT, under a tiny INSECURE key (n = 16) with
// a precise bootstrap key, so the noise is far below the gap between table values. Tables of the
// key's N and extended ones (2, 4 and 16 times N, bootstrap.h): random phases give every shift
// of the extended accumulator's components, those that keep each in place included.
class LookupClear : public ::testing::TestWithParam<std::size_t> {};

TEST_P(LookupClear, EqualsTheBootstrapOnRandomPhases) {
  const std::size_t extension = GetParam();
  const LweDimension n{16};
  const GlweDimension k{1};
  const PolynomialSize key_n{512};
  const PolynomialSize big_n{key_n.value * extension};  // the tables' size
  Csprng rng(test_seed(600 + extension));
  const LweSecretKey small_key = generate_lwe_secret_key(n, rng);
  const GlweSecretKey glwe_key = generate_glwe_secret_key(k, key_n, rng);
  const FourierBootstrapKey bsk = to_fourier(expand(generate_seeded_bootstrap_key(
      small_key, glwe_key, DecompositionBaseLog{15}, DecompositionLevelCount{2},
      NoiseStdDev{0x1p-45}, test_seed(601), rng)));
  // 8 standard deviations of the bootstrap's noise, far below the gaps of 2^48 and more between
  // the random table values.
  const double variance = blind_rotation_variance(n, k, key_n, DecompositionBaseLog{15},
                                                  DecompositionLevelCount{2}, NoiseStdDev{0x1p-45});
  const double tolerance = 8 * std::sqrt(variance) * 0x1p64;
  ASSERT_LT(tolerance, std::exp2(44));
  BootstrapScratch scratch(bsk.shape);
  const std::size_t out_size = lwe_size(bsk.shape.output_dimension());
  struct Case {
    std::size_t input_bits, function_count;
  };
  for (const Case shape : {Case{3, 1}, Case{5, 1}, Case{2, 4}, Case{8, 1}, Case{4, 8}}) {
    if ((std::size_t{2} << shape.input_bits) * shape.function_count > big_n.value) continue;
    std::vector<std::vector<Torus>> outputs(shape.function_count);
    for (auto& table : outputs) {
      table.resize(std::size_t{1} << shape.input_bits);
      for (auto& v : table) v = rng.next_u64() & ~((Torus{1} << 48) - 1);  // arbitrary torus
    }
    const LookupTable lut = make_lookup_table(big_n, MessageBits{shape.input_bits}, outputs);
    std::vector<Torus> small(lwe_size(n));
    std::vector<Torus> out(shape.function_count * out_size);
    for (std::size_t trial = 0; trial < 200; ++trial) {
      rng.fill_u64(small);  // uniform mask and body: a uniformly random phase
      std::size_t ms_index = modulus_switch(small.back(), big_n);
      for (std::size_t i = 0; i < n.value; ++i) {
        ms_index += small_key.bits[i] * (2 * big_n.value - modulus_switch(small[i], big_n));
      }
      ms_index %= 2 * big_n.value;
      programmable_bootstrap(out, small, bsk, lut, scratch);
      for (std::size_t f = 0; f < shape.function_count; ++f) {
        const Torus phase = decrypt_lwe_phase(
            std::span<const Torus>(out).subspan(f * out_size, out_size), glwe_key.as_lwe_key());
        const std::int64_t error = noise_of(phase, lookup_clear(lut, ms_index, f));
        ASSERT_LT(std::abs(static_cast<double>(error)), tolerance)
            << shape.input_bits << "-bit table " << f << " of " << shape.function_count
            << ", rotation " << ms_index << ", trial " << trial << ", tables of " << extension
            << " N";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Extensions, LookupClear, ::testing::Values(1, 2, 4, 16));

// On noiseless encodings, lookup_clear reads T[m] for m < 2^p and -T[m - 2^p] above: the
// negacyclic wrap that ir::apply_lookup mirrors.
TEST(LookupClearTable, ReadsTheTableAndItsNegacyclicWrap) {
  const PolynomialSize big_n{256};
  const MessageBits p{3};
  std::vector<std::vector<Torus>> outputs(1);
  for (std::size_t m = 0; m < 8; ++m) outputs[0].push_back(encode(m * 5 % 8, MessageBits{4}));
  const LookupTable lut = make_lookup_table(big_n, p, outputs);
  for (std::size_t m = 0; m < 16; ++m) {
    const Torus plaintext = Torus{m} << (63 - p.value);
    const Torus expected = m < 8 ? outputs[0][m] : Torus{0} - outputs[0][m - 8];
    EXPECT_EQ(lookup_clear(lut, modulus_switch(plaintext, big_n)), expected) << m;
    // Anywhere inside the box: the rounding noise of the modulus switch is absorbed.
    EXPECT_EQ(lookup_clear(lut, modulus_switch(plaintext + (Torus{1} << 58), big_n)), expected);
    EXPECT_EQ(lookup_clear(lut, modulus_switch(plaintext - (Torus{1} << 58), big_n)), expected);
  }
}

}  // namespace
}  // namespace fheml::tfhe
