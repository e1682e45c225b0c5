#include "fheml/tfhe/keyswitch.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameters.h"
#include "test_support.h"

namespace fheml::tfhe {
namespace {

// Mean square of the key switch's output noise over `samples` fresh 4-bit encryptions, each
// decrypted to its message.
double measured_keyswitch_variance(const ClientKey& client, const KeyswitchKey32& key, int samples,
                                   std::uint64_t seed) {
  Csprng rng(test_seed(seed));
  const MessageBits bits{4};
  LweCiphertext small(client.parameters.lwe_dimension);
  double sum_sq = 0;
  for (int s = 0; s < samples; ++s) {
    const std::uint64_t m = rng.next_u64() % 16;
    const LweCiphertext big = encrypt(client, m, bits, rng);
    keyswitch(small.data, big.data, key);
    const Torus phase = decrypt_lwe_phase(small.data, client.small_key.bits);
    EXPECT_EQ(decode(phase, bits), m);
    const double e = std::ldexp(double(noise_of(phase, encode(m, bits))), -64);
    sum_sq += e * e;
  }
  return sum_sq / samples;
}

// Key switching (the server's 32-bit form) preserves the message and adds the variance the noise
// model states. The 4-bit parameter set is used with its real keys, whose small key is the big
// key's first n coefficients: only the k*N - n others are switched.
TEST(Keyswitch, PreservesMessagesAndAddsTheModelledVariance) {
  const PbsParameters& p = default_parameters(MessageBits{4});
  const auto& keys = test::keys_for(p);
  ASSERT_EQ(keys.server.keyswitch_key.shape.shared_prefix, p.lwe_dimension.value);
  const int samples = test::sanitize_profile() ? 200 : 4000;
  const double measured =
      measured_keyswitch_variance(keys.client, keys.server.keyswitch_key, samples, 21);
  const LweDimension switched{keys.client.big_dimension().value - p.lwe_dimension.value};
  const double expected =
      fresh_encryption_variance(p.glwe_noise) +
      keyswitch_variance(switched, p.ks_base_log, p.ks_level, p.lwe_noise) +
      keyswitch_rounding_variance(switched, p.lwe_dimension, p.ks_base_log, p.ks_level) +
      shared_prefix_rounding_variance(p.lwe_dimension);
  EXPECT_DOUBLE_EQ(expected, fresh_encryption_variance(p.glwe_noise) + variance_at_lookup(p, 0.0) -
                                 modulus_switch_variance(p.lwe_dimension, p.polynomial_size));
  // Sampling alone gives a relative error of sqrt(2/samples) (2.2% at 4000); the model is
  // expected to hold within 10% beyond that.
  EXPECT_NEAR(measured / expected, 1.0, 0.10 + 4 * std::sqrt(2.0 / samples));
}

// The same keys with a key switching key that switches every coefficient (what keys of
// serialization format 1 have, and what a key switch from another big key does): the noise is
// the full k*N model's, (k*N)/(k*N - n) times the shared one's key switch term, and the key
// has k*N / (k*N - n) times the rows.
TEST(Keyswitch, WithoutTheSharedPrefixSwitchesEveryCoefficient) {
  const PbsParameters& p = default_parameters(MessageBits{4});
  const auto& keys = test::keys_for(p);
  Csprng rng(test_seed(23));
  const SeededKeyswitchKey full = generate_seeded_keyswitch_key(
      keys.client.glwe_key.as_lwe_key(), keys.client.small_key, p.ks_base_log, p.ks_level,
      p.lwe_noise, test_seed(24), rng, /*shared_prefix=*/false);
  EXPECT_EQ(full.shape.shared_prefix, 0u);
  EXPECT_EQ(full.bodies.size(), keys.client.big_dimension().value * p.ks_level.value);
  EXPECT_EQ(keys.server.keyswitch_key.shape.entry_count(),
            (keys.client.big_dimension().value - p.lwe_dimension.value) * p.ks_level.value);
  const int samples = test::sanitize_profile() ? 200 : 4000;
  const double measured =
      measured_keyswitch_variance(keys.client, expand_to_compute_form(full), samples, 25);
  const LweDimension big = keys.client.big_dimension();
  const double expected =
      fresh_encryption_variance(p.glwe_noise) +
      keyswitch_variance(big, p.ks_base_log, p.ks_level, p.lwe_noise) +
      keyswitch_rounding_variance(big, p.lwe_dimension, p.ks_base_log, p.ks_level);
  EXPECT_NEAR(measured / expected, 1.0, 0.10 + 4 * std::sqrt(2.0 / samples));
  // The model's saving, in variance: the key switch term scales with the switched coefficients.
  const double shared = variance_at_lookup(p, 0.0);
  const double unshared = variance_at_lookup(p, LweDimension{big.value + 1}, 0.0);
  EXPECT_LT(shared, unshared);
}

// A key that claims a shared prefix its output key does not have is refused when made, and a
// shape whose shared prefix is neither 0 nor n is refused.
TEST(Keyswitch, RefusesAPrefixTheKeysDoNotShare) {
  const PbsParameters& p = default_parameters(MessageBits{4});
  const auto& keys = test::keys_for(p);
  Csprng rng(test_seed(26));
  const LweSecretKey other = generate_lwe_secret_key(p.lwe_dimension, rng);
  try {
    (void)generate_seeded_keyswitch_key(keys.client.glwe_key.as_lwe_key(), other, p.ks_base_log,
                                        p.ks_level, p.lwe_noise, test_seed(27), rng, true);
    ADD_FAILURE() << "a key switching key for keys that share nothing claimed a shared prefix";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("first n coefficients"), std::string::npos) << e.what();
  }
  KeyswitchShape odd = keys.server.keyswitch_key.shape;
  odd.shared_prefix = 5;
  EXPECT_THROW(check_keyswitch_shape(odd), std::invalid_argument);
  ClientKey independent = keys.client;
  independent.small_key = other;
  EXPECT_THROW(check_shared_prefix(independent), std::invalid_argument);
  EXPECT_THROW((void)generate_compressed_server_key(independent, rng), std::invalid_argument);
}

// A group shares the key's streaming; each member's result is its own key switch, bit for bit
// (groups of 1 to 5, messages and noise different per member).
TEST(Keyswitch, GroupEqualsOneByOne) {
  const PbsParameters& p = default_parameters(MessageBits{4});
  const auto& keys = test::keys_for(p);
  Csprng rng(test_seed(22));
  for (std::size_t members = 1; members <= 5; ++members) {
    std::vector<LweCiphertext> bigs;
    std::vector<LweCiphertext> smalls(members, LweCiphertext(p.lwe_dimension));
    std::vector<std::span<Torus>> outs;
    std::vector<std::span<const Torus>> ins;
    for (std::size_t c = 0; c < members; ++c) {
      bigs.push_back(encrypt(keys.client, rng.next_u64() % 16, MessageBits{4}, rng));
    }
    for (std::size_t c = 0; c < members; ++c) {
      outs.push_back(smalls[c].data);
      ins.push_back(bigs[c].data);
    }
    keyswitch_group(outs, ins, keys.server.keyswitch_key);
    for (std::size_t c = 0; c < members; ++c) {
      LweCiphertext one(p.lwe_dimension);
      keyswitch(one.data, bigs[c].data, keys.server.keyswitch_key);
      ASSERT_EQ(smalls[c].data, one.data) << "member " << c << " of " << members;
    }
  }
  LweCiphertext wrong(LweDimension{10});
  LweCiphertext small(p.lwe_dimension);
  const std::span<Torus> outs[] = {small.data};
  const std::span<const Torus> bad_in[] = {wrong.data};
  EXPECT_THROW(keyswitch_group(outs, bad_in, keys.server.keyswitch_key), std::invalid_argument);
  EXPECT_THROW(keyswitch_group(outs, {}, keys.server.keyswitch_key), std::invalid_argument);
}

TEST(Keyswitch, RefusesWrongInputSize) {
  const auto& keys = test::keys_for(default_parameters(MessageBits{4}));
  LweCiphertext wrong(LweDimension{10});
  LweCiphertext small(keys.client.parameters.lwe_dimension);
  EXPECT_THROW(keyswitch(small.data, wrong.data, keys.server.keyswitch_key), std::invalid_argument);
}

}  // namespace
}  // namespace fheml::tfhe

namespace fheml::tfhe {
namespace {

// The server expands seeded keys straight into its compute forms; they must equal the forms
// obtained through the full standard-domain keys.
TEST(ServerKeyExpansion, DirectFormsEqualTheTwoStepForms) {
  Csprng rng(test_seed(23));
  const PbsParameters& p = default_parameters(MessageBits{2});
  const ClientKey client = generate_client_key(p, rng);
  const CompressedServerKey compressed = generate_compressed_server_key(client, rng, test_seed(24));
  const KeyswitchKey32 direct_ks = expand_to_compute_form(compressed.keyswitch_key);
  const KeyswitchKey32 two_step_ks = to_compute_form(expand(compressed.keyswitch_key));
  EXPECT_EQ(direct_ks.shape, two_step_ks.shape);
  EXPECT_EQ(direct_ks.data, two_step_ks.data);
  ThreadPool pool(3);
  const FourierBootstrapKey direct_bsk = expand_to_fourier(compressed.bootstrap_key, pool);
  const FourierBootstrapKey two_step_bsk = to_fourier(expand(compressed.bootstrap_key));
  EXPECT_EQ(direct_bsk.shape, two_step_bsk.shape);
  // Bit-identical: same FFT plan, same inputs, whichever thread converts a GGSW.
  EXPECT_TRUE(std::memcmp(direct_bsk.data.data(), two_step_bsk.data.data(),
                          direct_bsk.data.size() * sizeof(double)) == 0);
}

}  // namespace
}  // namespace fheml::tfhe
