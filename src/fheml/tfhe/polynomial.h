// Polynomials of Z_q[X]/(X^N + 1), q = 2^64, as spans of N coefficients.
#pragma once

#include <cstdint>
#include <span>

#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

// out = X^power * in, power taken modulo 2N (X^N = -1). out and in must not alias.
void polynomial_monomial_mul(std::span<Torus> out, std::span<const Torus> in, std::size_t power);

// out = X^power * in - in: the CMux difference of a blind rotation step.
void polynomial_monomial_mul_minus_one(std::span<Torus> out, std::span<const Torus> in,
                                       std::size_t power);

// out += a * b mod (X^N + 1) where b has binary coefficients, computed EXACTLY mod 2^64 (key
// generation and encryption must not add an error that depends on the secret). Uses the FFT on
// 16-bit limbs of a, so every Fourier-domain product is an exact integer well below 2^53.
void polynomial_mul_binary_add(std::span<Torus> out, std::span<const Torus> a,
                               std::span<const std::uint64_t> b);

// Reference O(N^2) product, exact mod 2^64, for tests.
void polynomial_mul_naive_add(std::span<Torus> out, std::span<const Torus> a,
                              std::span<const Torus> b);

}  // namespace fheml::tfhe
