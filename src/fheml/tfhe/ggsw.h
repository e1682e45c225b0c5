// GGSW ciphertexts, their Fourier-domain form, and the external product / CMux.
//
// A GGSW encryption of a small integer mu is (k+1)*level GLWE rows; row (r, j) has the phase
// mu * g_j * (-S_r) for a mask row r < k and mu * g_j for the body row, g_j = q/B^(j+1) (the
// gadget matrix times mu, plus encryptions of zero). The external product with a GLWE ciphertext
// c decomposes every polynomial of c and sums digit * row, which yields a GLWE encryption of
// mu * c.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fheml/tfhe/aligned.h"
#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/glwe.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

struct GgswShape {
  GlweDimension glwe_dimension;
  PolynomialSize polynomial_size;
  DecompositionBaseLog base_log;
  DecompositionLevelCount level;

  std::size_t row_count() const { return glwe_size(glwe_dimension) * level.value; }
  std::size_t row_length() const { return glwe_size(glwe_dimension) * polynomial_size.value; }
  // Torus words of one GGSW ciphertext; also doubles of its Fourier form.
  std::size_t length() const { return row_count() * row_length(); }
  bool operator==(const GgswShape&) const = default;
};

// Encrypts mu into `out` (shape.length() words). Row masks come from `mask_rng` in row order.
void encrypt_ggsw(std::span<Torus> out, const GlweSecretKey& key, std::int64_t mu,
                  const GgswShape& shape, NoiseStdDev noise, Csprng& mask_rng, Csprng& noise_rng);

// Standard domain -> Fourier domain (shape.length() doubles).
void ggsw_to_fourier(std::span<double> out, std::span<const Torus> ggsw, const GgswShape& shape);

// Scratch for one external product; reuse it across calls (one per thread).
class ExternalProductScratch {
 public:
  explicit ExternalProductScratch(const GgswShape& shape);

 private:
  friend void external_product_add(std::span<Torus>, std::span<const double>,
                                   std::span<const Torus>, const GgswShape&,
                                   ExternalProductScratch&);
  friend void cmux_rotate_add(std::span<Torus>, std::span<const double>, std::size_t,
                              const GgswShape&, ExternalProductScratch&, std::span<const double>,
                              std::span<const Torus>);
  // Cache-line aligned: the transforms read and write them a vector at a time.
  AlignedVector<std::int64_t> digits_;
  AlignedVector<double> fourier_digits_;  // one transformed digit per GGSW row
  AlignedVector<double> accumulators_;
};

// out += ggsw (x) glwe. out and glwe are (k+1)*N words and must not alias.
void external_product_add(std::span<Torus> out, std::span<const double> fourier_ggsw,
                          std::span<const Torus> glwe, const GgswShape& shape,
                          ExternalProductScratch& scratch);

// acc += ggsw (x) (X^rotation * acc - acc): the blind rotation's CMux, which multiplies acc by
// X^(rotation * s) when the GGSW encrypts the bit s. Same result as external_product_add on
// polynomial_monomial_mul_minus_one's output, bit for bit, without that polynomial or its digits:
// the forward transforms read the rotation and the decomposition on the fly
// (FftPlan::forward_rotated_digit). `next_ggsw` (optional) is brought into L2 while the
// transforms compute, spread over them: the blind rotation passes the GGSW of its next step,
// whose products would otherwise wait on memory (bench/README.md, "Key prefetch").
// With a `source` ((k+1)*N words, must not alias acc), acc += ggsw (x) (X^rotation * source -
// acc) instead: the CMux of an extended accumulator's component (bootstrap.h).
void cmux_rotate_add(std::span<Torus> acc, std::span<const double> fourier_ggsw,
                     std::size_t rotation, const GgswShape& shape, ExternalProductScratch& scratch,
                     std::span<const double> next_ggsw = {}, std::span<const Torus> source = {});

}  // namespace fheml::tfhe
