// Numeric vocabulary of the TFHE engine: the torus, and one distinct type per dimension so that
// an LWE dimension can never be passed where a polynomial size is expected (mixing them does not
// compile). Modelled on tfhe-rs `core_crypto/commons/parameters.rs`.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>

namespace fheml::tfhe {

// Elements of the discretised torus T_q with q = 2^64: wrapping unsigned arithmetic is exactly
// arithmetic modulo q.
using Torus = std::uint64_t;
inline constexpr int kTorusBits = 64;

// A size_t that only compares with and converts to the same tagged type.
template <class Tag>
struct StrongSize {
  std::size_t value = 0;
  constexpr StrongSize() = default;
  constexpr explicit StrongSize(std::size_t v) : value(v) {}
  constexpr auto operator<=>(const StrongSize&) const = default;
};

// Number of mask coefficients of an LWE ciphertext (the secret key length).
using LweDimension = StrongSize<struct LweDimensionTag>;
// Number of polynomials in a GLWE mask (k).
using GlweDimension = StrongSize<struct GlweDimensionTag>;
// Number of coefficients of each polynomial (N), a power of two.
using PolynomialSize = StrongSize<struct PolynomialSizeTag>;
// log2 of the gadget decomposition base (B = 2^base_log).
using DecompositionBaseLog = StrongSize<struct DecompositionBaseLogTag>;
// Number of levels of a gadget decomposition (l).
using DecompositionLevelCount = StrongSize<struct DecompositionLevelCountTag>;
// Number of bits of a cleartext message, not counting the padding bit.
using MessageBits = StrongSize<struct MessageBitsTag>;

// Length of the LWE ciphertext (mask plus body): n + 1.
constexpr std::size_t lwe_size(LweDimension n) { return n.value + 1; }
// Number of polynomials in a GLWE ciphertext (mask plus body): k + 1.
constexpr std::size_t glwe_size(GlweDimension k) { return k.value + 1; }
// Dimension of the LWE ciphertext obtained by sample extraction from a GLWE: k * N.
constexpr LweDimension extracted_lwe_dimension(GlweDimension k, PolynomialSize n) {
  return LweDimension{k.value * n.value};
}

// Standard deviation of a centred noise distribution, as a fraction of the torus (so a value
// of 2^-20 means 2^44 on the 64-bit integer scale).
struct NoiseStdDev {
  double value = 0.0;
  constexpr auto operator<=>(const NoiseStdDev&) const = default;
};

}  // namespace fheml::tfhe
