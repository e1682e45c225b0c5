#include "fheml/tfhe/ggsw.h"

#include <gtest/gtest.h>

#include <vector>

#include "fheml/tfhe/bootstrap.h"
#include "fheml/tfhe/parameters.h"

namespace fheml::tfhe {
namespace {

// External product of GGSW(mu) with a GLWE encryption of a polynomial m gives mu * m, for both
// a GGSW encrypted directly and one regenerated from a seeded bootstrap key (whose masks come
// from the seed: a GGSW that hid mu in its masks would break there, as an early version did).
TEST(ExternalProduct, MultipliesByTheEncryptedBitDirectAndSeeded) {
  for (const std::size_t bits_p : {2u, 4u, 7u}) {
    const PbsParameters& p = default_parameters(MessageBits{bits_p});
    Csprng rng(test_seed(31 + bits_p));
    const GlweSecretKey key = generate_glwe_secret_key(p.glwe_dimension, p.polynomial_size, rng);
    const std::size_t n = p.polynomial_size.value;
    const GgswShape shape{p.glwe_dimension, p.polynomial_size, p.pbs_base_log, p.pbs_level};
    const MessageBits bits{4};
    std::vector<Torus> message(n);
    for (std::size_t i = 0; i < n; ++i) message[i] = encode((i * 5 + 3) % 16, bits);
    GlweCiphertext ct(p.glwe_dimension, p.polynomial_size);
    encrypt_glwe(ct.data, key, message, p.glwe_noise, rng, rng);

    // Two small keys of a single bit each, 0 and 1, through the seeded bootstrap key path.
    for (const std::uint64_t mu : {0u, 1u}) {
      const LweSecretKey one_bit{{mu}};
      const SeededBootstrapKey seeded = generate_seeded_bootstrap_key(
          one_bit, key, p.pbs_base_log, p.pbs_level, p.glwe_noise, test_seed(77), rng);
      const FourierBootstrapKey fourier = to_fourier(expand(seeded));
      std::vector<Torus> direct(shape.length());
      encrypt_ggsw(direct, key, static_cast<std::int64_t>(mu), shape, p.glwe_noise, rng, rng);
      std::vector<double> direct_fourier(shape.length());
      ggsw_to_fourier(direct_fourier, direct, shape);
      const std::span<const double> forms[] = {fourier.data, direct_fourier};
      for (const std::span<const double>& ggsw : forms) {
        std::vector<Torus> out(ct.data.size(), 0);
        ExternalProductScratch scratch(shape);
        external_product_add(out, ggsw, ct.data, shape, scratch);
        std::vector<Torus> phase(n);
        decrypt_glwe_phase(phase, key, out);
        for (std::size_t i = 0; i < n; ++i) {
          ASSERT_EQ(decode(phase[i], bits), mu ? (i * 5 + 3) % 16 : 0)
              << "p=" << bits_p << " mu=" << mu << " coefficient " << i
              << (ggsw.data() == fourier.data.data() ? " (seeded)" : " (direct)");
        }
      }
    }
  }
}

}  // namespace
}  // namespace fheml::tfhe
