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
