// Bad input at the engine's public entry points is refused with a clear exception, never a
// crash or a silent wrong answer; and the thread pool behaves under errors and nesting.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/tfhe/decomposition.h"
#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/thread_pool.h"
#include "test_support.h"

namespace fheml::tfhe {
namespace {

template <class F>
::testing::AssertionResult throws_with(F&& f, const std::string& fragment) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).find(fragment) != std::string::npos) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "message \"" << e.what() << "\" lacks \"" << fragment << "\"";
  }
  return ::testing::AssertionFailure() << "nothing thrown";
}

TEST(Validate, BuiltInSetsPassAndBrokenOnesAreNamed) {
  for (std::size_t p = 1; p <= 8; ++p) {
    EXPECT_NO_THROW(validate(default_parameters(MessageBits{p})));
    EXPECT_NO_THROW(validate(default_parameters(MessageBits{p}, FailureBound::k2m64)));
  }
  const PbsParameters good = default_parameters(MessageBits{4});
  auto broken = [&](auto mutate) {
    PbsParameters p = good;
    mutate(p);
    return p;
  };
  EXPECT_TRUE(
      throws_with([&] { validate(broken([](auto& p) { p.lwe_dimension = LweDimension{400}; })); },
                  "128-bit security curve for n = 400"));
  EXPECT_TRUE(throws_with(
      [&] { validate(broken([](auto& p) { p.lwe_noise = NoiseStdDev{p.lwe_noise.value / 4}; })); },
      "LWE noise is below the 128-bit"));
  EXPECT_TRUE(throws_with(
      [&] {
        validate(broken([](auto& p) { p.glwe_noise = NoiseStdDev{p.glwe_noise.value / 4}; }));
      },
      "GLWE noise is below the 128-bit"));
  EXPECT_TRUE(throws_with(
      [&] { validate(broken([](auto& p) { p.polynomial_size = PolynomialSize{3000}; })); },
      "power of two"));
  EXPECT_TRUE(throws_with(
      [&] { validate(broken([](auto& p) { p.pbs_level = DecompositionLevelCount{3}; })); },
      "bootstrap decomposition"));
  EXPECT_TRUE(throws_with(
      [&] { validate(broken([](auto& p) { p.ks_base_log = DecompositionBaseLog{33}; })); },
      "key switching decomposition"));
  EXPECT_TRUE(throws_with(
      [&] { validate(broken([](auto& p) { p.glwe_noise = NoiseStdDev{0.5}; })); }, "(0, 2^-10]"));
  EXPECT_TRUE(throws_with(
      [&] { validate(broken([](auto& p) { p.lwe_noise = NoiseStdDev{std::nan("")}; })); },
      "(0, 2^-10]"));
  // Insecure but runnable: allowed only when a test says so.
  const PbsParameters toy = broken([](auto& p) { p.lwe_dimension = LweDimension{16}; });
  EXPECT_THROW(validate(toy), std::invalid_argument);
  EXPECT_NO_THROW(validate(toy, SecurityCheck::kUnsafeAllowInsecure));
  Csprng rng(test_seed(1));
  EXPECT_THROW((void)generate_client_key(toy, rng), std::invalid_argument);
}

TEST(Validate, MessagesAndDecodingRefuseImpossiblePrecisions) {
  EXPECT_THROW((void)decode(0, MessageBits{63}), std::invalid_argument);
  EXPECT_THROW((void)decode(0, MessageBits{64}), std::invalid_argument);
  EXPECT_THROW((void)decode(0, MessageBits{0}), std::invalid_argument);
  Csprng rng(test_seed(2));
  EXPECT_THROW((void)rng.gaussian_noise(NoiseStdDev{0.25}), std::invalid_argument);
}

TEST(Validate, LookupTablesAndBatchesAreChecked) {
  const PbsParameters& params = default_parameters(MessageBits{2});
  const auto& keys = test::keys_for(params);
  const std::size_t n = params.polynomial_size.value;
  std::vector<std::uint64_t> identity = {0, 1, 2, 3};
  const LookupTable good =
      make_lookup_table(lookup_polynomial_size(params), MessageBits{2}, identity, MessageBits{2});
  // Too many bits for N, refused before any shift.
  std::vector<std::vector<Torus>> huge(1);
  EXPECT_TRUE(throws_with(
      [&] { (void)make_lookup_table(lookup_polynomial_size(params), MessageBits{40}, huge); },
      "polynomial size of at least"));
  Csprng rng(test_seed(3));
  const LweCiphertext ct = encrypt(keys.client, 1, MessageBits{2}, rng);
  PbsWorkspace workspace(keys.server);
  std::vector<Torus> out(lwe_size(keys.client.big_dimension()));
  for (const std::size_t count : {0u, 3u, 1024u}) {
    LookupTable tampered = good;
    tampered.function_count = count;
    out.assign(count * lwe_size(keys.client.big_dimension()), 0);
    EXPECT_TRUE(
        throws_with([&] { keyswitch_bootstrap(out, ct.data, keys.server, tampered, workspace); },
                    "does not fit polynomial size"))
        << count;
  }
  LookupTable short_table = good;
  short_table.polynomial.resize(n / 2);
  out.assign(lwe_size(keys.client.big_dimension()), 0);
  EXPECT_TRUE(
      throws_with([&] { keyswitch_bootstrap(out, ct.data, keys.server, short_table, workspace); },
                  "lookup table coefficients"));

  LweCiphertextList inputs(keys.client.big_dimension(), 2);
  EXPECT_TRUE(throws_with([&] { (void)keyswitch_bootstrap_batch(keys.server, inputs, {}); },
                          "at least one lookup table"));
  const LookupTable* null_table[] = {nullptr};
  EXPECT_TRUE(throws_with([&] { (void)keyswitch_bootstrap_batch(keys.server, inputs, null_table); },
                          "null lookup"));
  inputs.data.push_back(0);
  const LookupTable* tables[] = {&good};
  EXPECT_TRUE(throws_with([&] { (void)keyswitch_bootstrap_batch(keys.server, inputs, tables); },
                          "whole number of ciphertexts"));
}

TEST(Validate, AHandBuiltClientKeyIsCheckedBeforeItMakesEvaluationKeys) {
  // Issue 15: a ClientKey assembled by hand used to pass generate_compressed_server_key.
  const PbsParameters& params = default_parameters(MessageBits{2});
  const auto& keys = test::keys_for(params);
  Csprng rng(test_seed(40));
  ClientKey toy = keys.client;
  toy.parameters.lwe_dimension = LweDimension{16};
  toy.small_key.bits.resize(16);
  EXPECT_TRUE(
      throws_with([&] { (void)generate_compressed_server_key(toy, rng, test_seed(41)); }, "128"));
  ClientKey short_key = keys.client;
  short_key.small_key.bits.pop_back();
  EXPECT_TRUE(throws_with(
      [&] { (void)generate_compressed_server_key(short_key, rng, test_seed(42)); }, "small LWE"));
  ClientKey not_binary = keys.client;
  not_binary.glwe_key.bits[7] = 3;
  EXPECT_TRUE(throws_with(
      [&] { (void)generate_compressed_server_key(not_binary, rng, test_seed(43)); }, "binary"));
  CompressedServerKey insecure = generate_compressed_server_key(keys.client, rng, test_seed(44));
  insecure.parameters.lwe_noise = NoiseStdDev{insecure.parameters.lwe_noise.value / 4};
  EXPECT_TRUE(throws_with([&] { (void)decompress(insecure); }, "128"));
}

TEST(Validate, KeysWithWrongSizesAreRefused) {
  const PbsParameters& params = default_parameters(MessageBits{2});
  const auto& keys = test::keys_for(params);
  Csprng rng(test_seed(4));
  const LweCiphertext big = encrypt(keys.client, 1, MessageBits{2}, rng);
  LweCiphertext small(params.lwe_dimension);
  KeyswitchKey32 truncated = keys.server.keyswitch_key;
  truncated.data.resize(truncated.data.size() / 2);
  EXPECT_TRUE(
      throws_with([&] { keyswitch(small.data, big.data, truncated); }, "key switching key length"));
  CompressedServerKey wrong = generate_compressed_server_key(keys.client, rng, test_seed(5));
  wrong.keyswitch_key.shape.level =
      DecompositionLevelCount{wrong.keyswitch_key.shape.level.value + 1};
  EXPECT_TRUE(throws_with([&] { (void)decompress(wrong); }, "server key shapes"));
  GlweCiphertext glwe(params.glwe_dimension, params.polynomial_size);
  LweCiphertext extracted(keys.client.big_dimension());
  EXPECT_THROW(extract_lwe_sample(extracted.data, glwe.data, params.glwe_dimension,
                                  params.polynomial_size, params.polynomial_size.value),
               std::invalid_argument);
}

TEST(Keyswitch, BothFormsAgreeAndCompressedEncryptionDecrypts) {
  const PbsParameters& params = default_parameters(MessageBits{4});
  const auto& keys = test::keys_for(params);
  Csprng rng(test_seed(6));
  const CompressedServerKey compressed =
      generate_compressed_server_key(keys.client, rng, test_seed(7));
  const KeyswitchKey key64 = expand(compressed.keyswitch_key);
  const KeyswitchKey32 key32 = to_compute_form(key64);
  LweCiphertext a(params.lwe_dimension), b(params.lwe_dimension);
  // The 32-bit form rounds every key entry to its top 32 bits (error uniform, variance
  // 2^64 / 12); each output coefficient sums k*N*levels of them times a digit (balanced, about
  // uniform in [-2^(B-1), 2^(B-1)]: E[d^2] ~ (4^B + 2) / 12), and the phase sums the body and
  // ~n/2 mask coefficients (key bits). The mask seed comes from OS entropy: bound at 7 sigma
  // (the former fixed 2^44 was 3 sigma, and failed one run in ten).
  const double terms = static_cast<double>(params.glwe_dimension.value) *
                       static_cast<double>(params.polynomial_size.value) *
                       static_cast<double>(params.ks_level.value);
  const double digit2 = (std::ldexp(1.0, 2 * static_cast<int>(params.ks_base_log.value)) + 2) / 12;
  const double sigma = std::sqrt((static_cast<double>(params.lwe_dimension.value) / 2 + 1) * terms *
                                 digit2 * std::ldexp(1.0, 64) / 12);
  std::vector<std::uint64_t> messages(16);
  for (std::uint64_t m = 0; m < 16; ++m) messages[m] = m;
  const LweCiphertextList list =
      expand(encrypt_compressed(keys.client, messages, MessageBits{4}, rng));
  for (std::uint64_t m = 0; m < 16; ++m) {
    EXPECT_EQ(decrypt(keys.client, list.at(m), MessageBits{4}), m);
    keyswitch(a.data, list.at(m), key64);
    keyswitch(b.data, list.at(m), key32);
    const Torus pa = decrypt_lwe_phase(a.data, keys.client.small_key.bits);
    const Torus pb = decrypt_lwe_phase(b.data, keys.client.small_key.bits);
    EXPECT_EQ(decode(pa, MessageBits{4}), m);
    EXPECT_EQ(decode(pb, MessageBits{4}), m);
    // The 32-bit form differs from the 64-bit one only by its small rounding noise.
    EXPECT_LT(std::abs(static_cast<double>(static_cast<std::int64_t>(pa - pb))), 7 * sigma);
  }
}

TEST(Keyswitch, SeededKeyEntriesEncryptTheGadgetTimesTheKeyBit) {
  Csprng rng(test_seed(22));
  const LweSecretKey in = generate_lwe_secret_key(LweDimension{600}, rng);
  const LweSecretKey out = generate_lwe_secret_key(LweDimension{500}, rng);
  const DecompositionBaseLog base{4};
  const DecompositionLevelCount level{3};
  const NoiseStdDev noise{std::ldexp(1.0, -20)};
  const auto seeded =
      generate_seeded_keyswitch_key(in.bits, out, base, level, noise, test_seed(5), rng, false);
  const KeyswitchKey key = expand(seeded);
  const Decomposer d(base, level);
  for (std::size_t i = 0; i < 600; ++i) {
    for (std::size_t j = 0; j < 3; ++j) {
      const std::span<const Torus> entry(key.data.data() + (i * 3 + j) * 501, 501);
      const auto e = noise_of(decrypt_lwe_phase(entry, out.bits), in.bits[i] * d.gadget(j));
      ASSERT_LT(std::abs(static_cast<double>(e)), 8 * noise.value * 0x1p64) << i << "," << j;
    }
  }
}

TEST(Decomposition, LargePolynomialsMatchScalarDigits) {
  std::mt19937_64 gen(11);
  for (const std::size_t n : {1000u, 2048u, 32768u}) {
    const Decomposer d{DecompositionBaseLog{15}, DecompositionLevelCount{2}};
    std::vector<Torus> poly(n);
    for (auto& x : poly) x = gen();
    std::vector<std::int64_t> out(2 * n), digits(2);
    d.decompose_polynomial(poly, out);
    for (std::size_t i = 0; i < n; ++i) {
      d.decompose(poly[i], digits);
      ASSERT_EQ(out[i], digits[0]) << n << " " << i;
      ASSERT_EQ(out[n + i], digits[1]) << n << " " << i;
    }
  }
}

TEST(ThreadPool, PropagatesExceptionsAndStaysUsable) {
  ThreadPool pool(3);
  for (int round = 0; round < 50; ++round) {
    EXPECT_THROW(pool.parallel_for(100,
                                   [](std::size_t i, std::size_t) {
                                     if (i == 37) throw std::runtime_error("boom");
                                   }),
                 std::runtime_error);
    std::atomic<std::size_t> sum{0};
    pool.parallel_for(1000, [&](std::size_t i, std::size_t worker) {
      ASSERT_LT(worker, pool.size());
      sum += i;
    });
    ASSERT_EQ(sum.load(), 999u * 1000u / 2);
  }
}

TEST(ThreadPool, NestedCallsRunInlineInsteadOfDeadlocking) {
  ThreadPool pool(2);
  std::atomic<std::size_t> count{0};
  pool.parallel_for(4, [&](std::size_t, std::size_t) {
    pool.parallel_for(10, [&](std::size_t, std::size_t worker) {
      EXPECT_EQ(worker, 0u);
      ++count;
    });
  });
  EXPECT_EQ(count.load(), 40u);
}

}  // namespace
}  // namespace fheml::tfhe
