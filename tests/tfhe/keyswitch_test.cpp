#include "fheml/tfhe/keyswitch.h"

#include <gtest/gtest.h>

#include <cmath>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameters.h"
#include "test_support.h"

namespace fheml::tfhe {
namespace {

// Key switching (the server's 32-bit form) preserves the message and adds the variance the noise
// model states. The 4-bit parameter set is used with its real keys.
TEST(Keyswitch, PreservesMessagesAndAddsTheModelledVariance) {
  const PbsParameters& p = default_parameters(MessageBits{4});
  const auto& keys = test::keys_for(p);
  Csprng rng(test_seed(21));
  const MessageBits bits{4};
  const int samples = test::sanitize_profile() ? 200 : 4000;
  LweCiphertext small(p.lwe_dimension);
  double sum_sq = 0;
  for (int s = 0; s < samples; ++s) {
    const std::uint64_t m = rng.next_u64() % 16;
    const LweCiphertext big = encrypt(keys.client, m, bits, rng);
    keyswitch(small.data, big.data, keys.server.keyswitch_key);
    const Torus phase = decrypt_lwe_phase(small.data, keys.client.small_key.bits);
    ASSERT_EQ(decode(phase, bits), m);
    const double e = std::ldexp(double(noise_of(phase, encode(m, bits))), -64);
    sum_sq += e * e;
  }
  const double expected =
      fresh_encryption_variance(p.glwe_noise) +
      keyswitch_variance(keys.client.big_dimension(), p.ks_base_log, p.ks_level, p.lwe_noise) +
      keyswitch_rounding_variance(keys.client.big_dimension(), p.lwe_dimension, p.ks_base_log,
                                  p.ks_level);
  // Sampling alone gives a relative error of sqrt(2/samples) (2.2% at 4000); the model is
  // expected to hold within 10% beyond that.
  EXPECT_NEAR(sum_sq / samples / expected, 1.0, 0.10 + 4 * std::sqrt(2.0 / samples));
}

TEST(Keyswitch, SeededKeyExpandsDeterministically) {
  Csprng rng(test_seed(22));
  const LweSecretKey in = generate_lwe_secret_key(LweDimension{600}, rng);
  const LweSecretKey out = generate_lwe_secret_key(LweDimension{500}, rng);
  const auto seeded = generate_seeded_keyswitch_key(
      in.bits, out, DecompositionBaseLog{4}, DecompositionLevelCount{3},
      NoiseStdDev{std::ldexp(1.0, -20)}, test_seed(5), rng);
  EXPECT_EQ(seeded.bodies.size(), 600u * 3u);
  EXPECT_EQ(expand(seeded), expand(seeded));
  EXPECT_EQ(expand(seeded).data.size(), seeded.shape.length());
}

TEST(Keyswitch, RefusesWrongInputSize) {
  const auto& keys = test::keys_for(default_parameters(MessageBits{4}));
  LweCiphertext wrong(LweDimension{10});
  LweCiphertext small(keys.client.parameters.lwe_dimension);
  EXPECT_THROW(keyswitch(small.data, wrong.data, keys.server.keyswitch_key), std::invalid_argument);
}

}  // namespace
}  // namespace fheml::tfhe
