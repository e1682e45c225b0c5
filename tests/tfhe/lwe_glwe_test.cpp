#include "fheml/tfhe/lwe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "fheml/tfhe/glwe.h"
#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/polynomial.h"

namespace fheml::tfhe {
namespace {

const PbsParameters& params4() { return default_parameters(MessageBits{4}); }

TEST(Encoding, RoundTripsEveryMessageWithNoiseBelowHalfABox) {
  for (std::size_t p = 1; p <= 8; ++p) {
    const MessageBits bits{p};
    const Torus quarter = delta(bits) / 2 - 1;
    for (std::uint64_t m = 0; m < (1u << p); ++m) {
      EXPECT_EQ(decode(encode(m, bits), bits), m);
      EXPECT_EQ(decode(encode(m, bits) + quarter, bits), m);
      EXPECT_EQ(decode(encode(m, bits) - quarter, bits), m);
    }
  }
}

TEST(Encoding, RejectsOutOfRangeMessages) {
  EXPECT_THROW(encode(16, MessageBits{4}), std::invalid_argument);
  EXPECT_THROW(delta(MessageBits{0}), std::invalid_argument);
}

TEST(Lwe, EncryptDecryptAndLinearOperations) {
  Csprng rng(test_seed(11));
  const auto& p = params4();
  const LweSecretKey key = generate_lwe_secret_key(p.lwe_dimension, rng);
  const MessageBits bits{4};
  for (std::uint64_t a = 0; a < 16; a += 3) {
    for (std::uint64_t b = 0; b < 16; b += 5) {
      LweCiphertext x = allocate_and_encrypt_lwe(key, encode(a, bits), p.lwe_noise, rng, rng);
      const LweCiphertext y = allocate_and_encrypt_lwe(key, encode(b, bits), p.lwe_noise, rng, rng);
      EXPECT_EQ(decode(decrypt_lwe_phase(x.data, key.bits), bits), a);
      LweCiphertext sum = x;
      lwe_add_assign(sum.data, y.data);
      EXPECT_EQ(decode(decrypt_lwe_phase(sum.data, key.bits), bits), (a + b) % 16);
      LweCiphertext diff = x;
      lwe_sub_assign(diff.data, y.data);
      EXPECT_EQ(decode(decrypt_lwe_phase(diff.data, key.bits), bits), (a + 16 - b) % 16);
      LweCiphertext neg = x;
      lwe_negate_assign(neg.data);
      EXPECT_EQ(decode(decrypt_lwe_phase(neg.data, key.bits), bits), (16 - a) % 16);
      LweCiphertext scaled = x;
      lwe_mul_scalar_assign(scaled.data, -3);
      EXPECT_EQ(decode(decrypt_lwe_phase(scaled.data, key.bits), bits), (16 * 3 - 3 * a) % 16);
      lwe_add_plaintext_assign(x.data, encode(b, bits));
      EXPECT_EQ(decode(decrypt_lwe_phase(x.data, key.bits), bits), (a + b) % 16);
    }
  }
}

TEST(Lwe, SizeMismatchIsRefused) {
  LweCiphertext a(LweDimension{10}), b(LweDimension{11});
  EXPECT_THROW(lwe_add_assign(a.data, b.data), std::invalid_argument);
  const std::vector<std::uint64_t> key(12, 1);
  EXPECT_THROW(decrypt_lwe_phase(a.data, key), std::invalid_argument);
}

TEST(Lwe, FreshNoiseVarianceMatchesTheModel) {
  Csprng rng(test_seed(12));
  const auto& p = params4();
  const LweSecretKey key = generate_lwe_secret_key(p.lwe_dimension, rng);
  const int samples = 20000;
  double sum_sq = 0;
  for (int i = 0; i < samples; ++i) {
    const LweCiphertext ct = allocate_and_encrypt_lwe(key, 0, p.lwe_noise, rng, rng);
    const double e = std::ldexp(double(noise_of(decrypt_lwe_phase(ct.data, key.bits), 0)), -64);
    sum_sq += e * e;
  }
  EXPECT_NEAR(sum_sq / samples / fresh_encryption_variance(p.lwe_noise), 1.0,
              5 * std::sqrt(2.0 / samples));
}

TEST(Lwe, SeededListExpandsToCiphertextsThatDecrypt) {
  Csprng rng(test_seed(13));
  const auto& p = params4();
  const LweSecretKey key = generate_lwe_secret_key(p.lwe_dimension, rng);
  std::vector<Torus> plaintexts;
  for (std::uint64_t m = 0; m < 16; ++m) plaintexts.push_back(encode(m, MessageBits{4}));
  const SeededLweCiphertextList seeded =
      encrypt_seeded_lwe_list(key, plaintexts, p.lwe_noise, test_seed(99), rng);
  const LweCiphertextList list = expand(seeded);
  ASSERT_EQ(list.count(), 16u);
  for (std::uint64_t m = 0; m < 16; ++m) {
    EXPECT_EQ(decode(decrypt_lwe_phase(list.at(m), key.bits), MessageBits{4}), m);
  }
  // Expansion is deterministic: what travels is the seed and the bodies.
  EXPECT_EQ(expand(seeded), list);
}

TEST(Polynomial, BinaryProductMatchesNaiveProduct) {
  std::mt19937_64 gen(5);
  for (std::size_t n : {16u, 256u, 2048u}) {
    std::vector<Torus> a(n), b(n), fast(n), naive(n);
    for (auto& x : a) x = gen();
    for (auto& x : b) x = gen() & 1;
    for (std::size_t i = 0; i < n; ++i) fast[i] = naive[i] = gen();
    polynomial_mul_binary_add(fast, a, b);
    polynomial_mul_naive_add(naive, a, b);
    EXPECT_EQ(fast, naive) << "N = " << n;
  }
}

TEST(Polynomial, MonomialProductWrapsNegacyclically) {
  const std::size_t n = 8;
  std::vector<Torus> in(n), out(n), diff(n);
  for (std::size_t i = 0; i < n; ++i) in[i] = i + 1;
  polynomial_monomial_mul(out, in, 3);  // X^3 * (1 + 2X + ... + 8X^7)
  EXPECT_EQ(out, (std::vector<Torus>{Torus(0) - 6, Torus(0) - 7, Torus(0) - 8, 1, 2, 3, 4, 5}));
  polynomial_monomial_mul(out, in, n + 3);  // X^(N+3) = -X^3
  EXPECT_EQ(out, (std::vector<Torus>{6, 7, 8, Torus(0) - 1, Torus(0) - 2, Torus(0) - 3,
                                     Torus(0) - 4, Torus(0) - 5}));
  for (std::size_t power = 0; power < 2 * n; ++power) {
    polynomial_monomial_mul(out, in, power);
    polynomial_monomial_mul_minus_one(diff, in, power);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(diff[i], out[i] - in[i]) << power;
  }
}

TEST(Glwe, EncryptDecryptAndSampleExtractEveryCoefficient) {
  Csprng rng(test_seed(14));
  const auto& p = params4();
  const GlweSecretKey key = generate_glwe_secret_key(p.glwe_dimension, p.polynomial_size, rng);
  const std::size_t n = p.polynomial_size.value;
  const MessageBits bits{4};
  std::vector<Torus> plaintext(n);
  for (std::size_t i = 0; i < n; ++i) plaintext[i] = encode((i * 7) % 16, bits);
  GlweCiphertext ct(p.glwe_dimension, p.polynomial_size);
  encrypt_glwe(ct.data, key, plaintext, p.glwe_noise, rng, rng);
  std::vector<Torus> phase(n);
  decrypt_glwe_phase(phase, key, ct.data);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(decode(phase[i], bits), (i * 7) % 16);
  LweCiphertext extracted(extracted_lwe_dimension(p.glwe_dimension, p.polynomial_size));
  for (std::size_t i = 0; i < n; i += 97) {
    extract_lwe_sample(extracted.data, ct.data, p.glwe_dimension, p.polynomial_size, i);
    // Same phase exactly: extraction is a rearrangement of the mask.
    EXPECT_EQ(decrypt_lwe_phase(extracted.data, key.as_lwe_key()), phase[i]) << i;
  }
}

}  // namespace
}  // namespace fheml::tfhe
