// GLWE secret keys and ciphertexts, and sample extraction to LWE.
//
// A GLWE ciphertext is k mask polynomials followed by the body polynomial, each of N
// coefficients: B = sum_r A_r S_r + M + E  in Z_q[X]/(X^N+1).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/lwe.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

// k binary polynomials of N coefficients, contiguous. Read as an LWE key of dimension k*N it is
// the key that sample extraction produces ciphertexts for (the "big" key).
struct GlweSecretKey {
  GlweDimension glwe_dimension{0};
  PolynomialSize polynomial_size{0};
  SecretWords bits;  // k * N, wiped when freed

  std::span<const std::uint64_t> polynomial(std::size_t r) const {
    return {bits.data() + r * polynomial_size.value, polynomial_size.value};
  }
  std::span<const std::uint64_t> as_lwe_key() const { return bits; }
  LweSecretKey to_lwe_key() const { return LweSecretKey{bits}; }
  bool operator==(const GlweSecretKey&) const = default;
};

GlweSecretKey generate_glwe_secret_key(GlweDimension k, PolynomialSize n, Csprng& secret_rng);

struct GlweCiphertext {
  GlweDimension glwe_dimension{0};
  PolynomialSize polynomial_size{0};
  std::vector<Torus> data;  // (k + 1) * N

  GlweCiphertext() = default;
  GlweCiphertext(GlweDimension k, PolynomialSize n)
      : glwe_dimension(k), polynomial_size(n), data(glwe_size(k) * n.value, 0) {}
  std::span<Torus> polynomial(std::size_t r) {
    return {data.data() + r * polynomial_size.value, polynomial_size.value};
  }
  std::span<const Torus> polynomial(std::size_t r) const {
    return {data.data() + r * polynomial_size.value, polynomial_size.value};
  }
  bool operator==(const GlweCiphertext&) const = default;
};

// Encrypts `plaintext` (N coefficients) into `out` ((k+1)*N coefficients).
void encrypt_glwe(std::span<Torus> out, const GlweSecretKey& key, std::span<const Torus> plaintext,
                  NoiseStdDev noise, Csprng& mask_rng, Csprng& noise_rng);
// out (N coefficients) = B - sum_r A_r S_r.
void decrypt_glwe_phase(std::span<Torus> out, const GlweSecretKey& key, std::span<const Torus> ct);

// LWE ciphertext (dimension k*N) of coefficient `index` of the GLWE plaintext.
void extract_lwe_sample(std::span<Torus> out, std::span<const Torus> glwe, GlweDimension k,
                        PolynomialSize n, std::size_t index);

}  // namespace fheml::tfhe
