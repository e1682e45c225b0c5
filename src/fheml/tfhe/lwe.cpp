#include "fheml/tfhe/lwe.h"

#include <string>

#include "fheml/tfhe/errors.h"

namespace fheml::tfhe {

LweSecretKey generate_lwe_secret_key(LweDimension n, Csprng& secret_rng) {
  LweSecretKey key;
  key.bits.resize(n.value);
  secret_rng.fill_bits(key.bits);
  return key;
}

Torus delta(MessageBits p) {
  if (p.value < 1 || p.value > 62) {
    throw_invalid_argument("message bits must be between 1 and 62, found " +
                           std::to_string(p.value));
  }
  return Torus{1} << (63 - p.value);
}

Torus encode(std::uint64_t message, MessageBits p) {
  const Torus d = delta(p);
  if (message >> p.value) {
    throw_invalid_argument("message " + std::to_string(message) + " does not fit in " +
                           std::to_string(p.value) + " bits");
  }
  return message * d;
}

std::uint64_t decode(Torus plaintext, MessageBits p) {
  (void)delta(p);  // validates p
  const int shift = 63 - static_cast<int>(p.value);
  const Torus rounded = (plaintext + (Torus{1} << (shift - 1))) >> shift;
  return rounded & ((std::uint64_t{1} << p.value) - 1);
}

std::int64_t noise_of(Torus phase, Torus expected_plaintext) {
  return static_cast<std::int64_t>(phase - expected_plaintext);
}

void encrypt_lwe(std::span<Torus> out, std::span<const std::uint64_t> key, Torus plaintext,
                 NoiseStdDev noise, Csprng& mask_rng, Csprng& noise_rng) {
  require_size("LWE ciphertext length", key.size() + 1, out.size());
  const auto mask = out.first(key.size());
  mask_rng.fill_u64(mask);
  Torus body = plaintext + noise_rng.gaussian_noise(noise);
  for (std::size_t i = 0; i < key.size(); ++i) body += mask[i] * key[i];
  out.back() = body;
}

LweCiphertext allocate_and_encrypt_lwe(const LweSecretKey& key, Torus plaintext, NoiseStdDev noise,
                                       Csprng& mask_rng, Csprng& noise_rng) {
  LweCiphertext ct(key.dimension());
  encrypt_lwe(ct.data, key.bits, plaintext, noise, mask_rng, noise_rng);
  return ct;
}

LweCiphertext trivial_lwe(LweDimension n, Torus plaintext) {
  LweCiphertext ct(n);
  ct.data.back() = plaintext;
  return ct;
}

Torus decrypt_lwe_phase(std::span<const Torus> ct, std::span<const std::uint64_t> key) {
  require_size("LWE ciphertext length", key.size() + 1, ct.size());
  Torus dot = 0;
  for (std::size_t i = 0; i < key.size(); ++i) dot += ct[i] * key[i];
  return ct.back() - dot;
}

void lwe_add_assign(std::span<Torus> lhs, std::span<const Torus> rhs) {
  require_size("LWE ciphertext length", lhs.size(), rhs.size());
  for (std::size_t i = 0; i < lhs.size(); ++i) lhs[i] += rhs[i];
}

void lwe_sub_assign(std::span<Torus> lhs, std::span<const Torus> rhs) {
  require_size("LWE ciphertext length", lhs.size(), rhs.size());
  for (std::size_t i = 0; i < lhs.size(); ++i) lhs[i] -= rhs[i];
}

void lwe_negate_assign(std::span<Torus> ct) {
  for (auto& x : ct) x = Torus{0} - x;
}

void lwe_mul_scalar_assign(std::span<Torus> ct, std::int64_t scalar) {
  const auto s =
      static_cast<Torus>(scalar);  // two's complement: wrapping product is exact mod 2^64
  for (auto& x : ct) x *= s;
}

void lwe_add_scaled_assign(std::span<Torus> lhs, std::span<const Torus> rhs, std::int64_t scalar) {
  require_size("LWE ciphertext length", lhs.size(), rhs.size());
  const auto s = static_cast<Torus>(scalar);  // wrapping product, exact mod 2^64
  for (std::size_t i = 0; i < lhs.size(); ++i) lhs[i] += rhs[i] * s;
}

void lwe_add_plaintext_assign(std::span<Torus> ct, Torus plaintext) { ct.back() += plaintext; }

LweCiphertextList encrypt_lwe_list(std::span<const std::uint64_t> key,
                                   std::span<const Torus> plaintexts, NoiseStdDev noise,
                                   Csprng& mask_rng, Csprng& noise_rng) {
  LweCiphertextList out(LweDimension{key.size()}, plaintexts.size());
  for (std::size_t i = 0; i < plaintexts.size(); ++i) {
    encrypt_lwe(out.at(i), key, plaintexts[i], noise, mask_rng, noise_rng);
  }
  return out;
}

SeededLweCiphertextList encrypt_seeded_lwe_list(const LweSecretKey& key,
                                                std::span<const Torus> plaintexts,
                                                NoiseStdDev noise, const Seed& mask_seed,
                                                Csprng& noise_rng) {
  return encrypt_seeded_lwe_list(std::span<const std::uint64_t>(key.bits), plaintexts, noise,
                                 mask_seed, noise_rng);
}

SeededLweCiphertextList encrypt_seeded_lwe_list(std::span<const std::uint64_t> key,
                                                std::span<const Torus> plaintexts,
                                                NoiseStdDev noise, const Seed& mask_seed,
                                                Csprng& noise_rng) {
  SeededLweCiphertextList out;
  out.dimension = LweDimension{key.size()};
  out.seed = mask_seed;
  out.bodies.resize(plaintexts.size());
  std::vector<Torus> ct(lwe_size(out.dimension));
  for (std::size_t i = 0; i < plaintexts.size(); ++i) {
    Csprng mask_rng(mask_seed, i);
    encrypt_lwe(ct, key, plaintexts[i], noise, mask_rng, noise_rng);
    out.bodies[i] = ct.back();
  }
  return out;
}

LweCiphertextList expand(const SeededLweCiphertextList& seeded) {
  LweCiphertextList out(seeded.dimension, seeded.count());
  for (std::size_t i = 0; i < seeded.count(); ++i) {
    auto ct = out.at(i);
    Csprng mask_rng(seeded.seed, i);
    mask_rng.fill_u64(ct.first(seeded.dimension.value));
    ct.back() = seeded.bodies[i];
  }
  return out;
}

}  // namespace fheml::tfhe
