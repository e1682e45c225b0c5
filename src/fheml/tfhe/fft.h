// Negacyclic FFT: products in Z_{2^64}[X]/(X^N + 1) through an N/2-point complex FFT in doubles.
//
// A real polynomial a of degree < N is folded into the complex polynomial
// z_j = a_j + i a_{j+N/2} (this is a mod (X^{N/2} - i)), twisted by exp(i pi j / N) so that the
// negacyclic wrap becomes a cyclic one, and transformed by a forward DIF FFT. The inverse runs the
// same steps backwards. Pointwise products do not depend on the order of the frequencies, so the
// forward transform leaves them in a scrambled (bit-reversed, then lane-interleaved or, with
// AVX-512, transposed in blocks of 64 points) order and the inverse reads that order directly:
// no permutation pass is ever made.
//
// The Fourier layout is private to a plan: N doubles per polynomial, the N/2 real parts followed
// by the N/2 imaginary parts, in an order that depends on the plan's SimdLevel. Fourier data must
// only be consumed by a plan with the same size AND level that produced it.
//
// Each level is deterministic (same input, same bits, on every call and thread), but levels are
// NOT bit-identical to each other: the AVX2 and AVX-512 kernels use FMA contraction, so their
// results differ from the scalar ones by a few rounding errors (well within the FFT error
// bound). The mod 2^64 reduction in backward_add_torus is exact on every level.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

enum class SimdLevel { kScalar, kAvx2Fma, kAvx512 };

// The widest level this CPU (and OS) supports, capped by the environment variable
// FHEML_SIMD=scalar|avx2|avx512 (read once per process).
SimdLevel best_simd_level();
// Whether this CPU can run `level` (ignores FHEML_SIMD).
bool cpu_supports(SimdLevel level);
const char* to_string(SimdLevel level);

namespace detail {
struct FftTables;
}

class FftPlan {
 public:
  // Smallest and largest supported N (powers of two).
  static constexpr std::size_t kMinSize = std::size_t{1} << 5;
  static constexpr std::size_t kMaxSize = std::size_t{1} << 17;

  // Plans are built once per process per (size, level) and cached; thread-safe; never freed.
  // Throws std::invalid_argument when N is not a supported power of two.
  static const FftPlan& get(PolynomialSize n);  // best_simd_level()
  // Explicit level (tests, benchmarks); throws std::runtime_error if the CPU lacks it.
  static const FftPlan& get(PolynomialSize n, SimdLevel level);

  FftPlan(const FftPlan&) = delete;
  FftPlan& operator=(const FftPlan&) = delete;
  ~FftPlan();

  PolynomialSize polynomial_size() const { return n_; }
  SimdLevel simd_level() const { return level_; }
  // Doubles per polynomial in the Fourier domain (N: N/2 complex values).
  std::size_t fourier_doubles() const { return n_.value; }

  // All spans must have exactly N elements (std::invalid_argument otherwise).
  // Torus polynomial, each coefficient read as a signed int64 (two's complement) -> Fourier.
  void forward_torus(std::span<const Torus> poly, std::span<double> fourier) const;
  // Signed integer polynomial -> Fourier. Exact for any int64, but the error analysis assumes
  // small values (gadget digits, |x| <= 2^31).
  void forward_int(std::span<const std::int64_t> poly, std::span<double> fourier) const;
  // Fourier -> coefficients: ADDS round(value) mod 2^64 into poly (ties to even).
  // The reduction is exact for any finite double. `fourier` is scratch and is clobbered.
  // `prefetch` (optional): memory to bring into L2 while the transform computes, a few cache
  // lines per butterfly loop iteration (the blind rotation passes its next GGSW).
  void backward_add_torus(std::span<double> fourier, std::span<Torus> poly,
                          std::span<const double> prefetch = {}) const;
  // Fourier transform of digit `level` (0: the most significant) of the balanced gadget
  // decomposition (base 2^base_log, `levels` digits) of X^rotation * poly - poly (negacyclic,
  // rotation taken mod 2N): bit for bit what forward_int gives on the digits of
  // Decomposer::decompose_polynomial applied to polynomial_monomial_mul_minus_one's output, but
  // the rotation and the decomposition are read on the fly by the transform's first pass (the
  // blind rotation's CMux without two passes over intermediate polynomials).
  // With a `subtrahend` (N words, empty: poly), the same for X^rotation * poly - subtrahend: the
  // CMux of an extended accumulator, whose components rotate into each other (bootstrap.h).
  // std::invalid_argument on bad sizes or a decomposition the Decomposer would refuse.
  void forward_rotated_digit(std::span<const Torus> poly, std::size_t rotation,
                             std::size_t base_log, std::size_t levels, std::size_t level,
                             std::span<double> fourier, std::span<const double> prefetch = {},
                             std::span<const Torus> subtrahend = {}) const;
  // out[c] = sum_r a[r] (.) b[r * cols + c] for c < cols, r < rows, each a polynomial of N
  // doubles (out is overwritten, must not alias a or b): an external product's products in one
  // pass over the GGSW, every point of the inputs loaded once.
  void multiply_sum(std::span<double> out, std::span<const double> a, std::span<const double> b,
                    std::size_t rows, std::size_t cols) const;
  // acc += a (.) b, the pointwise complex product. acc may alias a or b.
  void multiply_accumulate(std::span<double> acc, std::span<const double> a,
                           std::span<const double> b) const;

 private:
  FftPlan(PolynomialSize n, SimdLevel level);

  PolynomialSize n_;
  SimdLevel level_;
  std::unique_ptr<const detail::FftTables> tables_;
};

}  // namespace fheml::tfhe
