#include "fheml/tfhe/polynomial.h"

#include <algorithm>
#include <vector>

#include "fheml/tfhe/errors.h"
#include "fheml/tfhe/fft.h"
#include "fheml/tfhe/secret.h"

namespace fheml::tfhe {

void polynomial_monomial_mul(std::span<Torus> out, std::span<const Torus> in, std::size_t power) {
  const std::size_t n = in.size();
  FHEML_ASSERT_EQ(out.size(), n);
  power %= 2 * n;
  const bool negate_all = power >= n;
  if (negate_all) power -= n;
  // Coefficient i of X^power * in: in[i - power] for i >= power, -in[i - power + N] below.
  for (std::size_t i = 0; i < power; ++i) out[i] = Torus{0} - in[i + n - power];
  for (std::size_t i = power; i < n; ++i) out[i] = in[i - power];
  if (negate_all) {
    for (auto& x : out) x = Torus{0} - x;
  }
}

void polynomial_monomial_mul_minus_one(std::span<Torus> out, std::span<const Torus> in,
                                       std::size_t power) {
  const std::size_t n = in.size();
  FHEML_ASSERT_EQ(out.size(), n);
  power %= 2 * n;
  if (power < n) {
    for (std::size_t i = 0; i < power; ++i) out[i] = Torus{0} - in[i + n - power] - in[i];
    for (std::size_t i = power; i < n; ++i) out[i] = in[i - power] - in[i];
  } else {
    const std::size_t p = power - n;
    for (std::size_t i = 0; i < p; ++i) out[i] = in[i + n - p] - in[i];
    for (std::size_t i = p; i < n; ++i) out[i] = Torus{0} - in[i - p] - in[i];
  }
}

void polynomial_mul_naive_add(std::span<Torus> out, std::span<const Torus> a,
                              std::span<const Torus> b) {
  const std::size_t n = a.size();
  FHEML_ASSERT_EQ(b.size(), n);
  FHEML_ASSERT_EQ(out.size(), n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      const Torus prod = a[i] * b[j];
      if (i + j < n) {
        out[i + j] += prod;
      } else {
        out[i + j - n] -= prod;
      }
    }
  }
}

void polynomial_mul_binary_add(std::span<Torus> out, std::span<const Torus> a,
                               std::span<const std::uint64_t> b) {
  const std::size_t n = a.size();
  FHEML_ASSERT_EQ(b.size(), n);
  FHEML_ASSERT_EQ(out.size(), n);
  if (n < 256) {  // below the smallest FFT plan the quadratic loop is cheap and exact
    for (std::size_t j = 0; j < n; ++j) {
      // b[j] is a key bit: masked, never branched on (same time and memory accesses for 0 and 1).
      const Torus mask = Torus{0} - (b[j] & 1);
      for (std::size_t i = 0; i + j < n; ++i) out[i + j] += a[i] & mask;
      for (std::size_t i = n - j; i < n; ++i) out[i + j - n] -= a[i] & mask;
    }
    return;
  }
  // a = sum_l a_l 2^(16 l) with 16-bit limbs a_l. Each product a_l * b has coefficients of
  // magnitude at most 2^16 * N <= 2^33, so the double-precision FFT result rounds to the exact
  // integer (its error is ~2^-15 there); the limbs are recombined with wrapping shifts.
  const FftPlan& fft = FftPlan::get(PolynomialSize{n});
  // b (a key polynomial) and its Fourier form, and what is computed from them, are wiped when
  // freed.
  SecretVector<std::int64_t> ints(n);
  SecretVector<double> fourier_b(fft.fourier_doubles()), fourier_a(fft.fourier_doubles()),
      product(fft.fourier_doubles());
  SecretVector<Torus> limb_product(n);
  for (std::size_t i = 0; i < n; ++i) ints[i] = static_cast<std::int64_t>(b[i]);
  fft.forward_int(ints, fourier_b);
  for (int limb = 0; limb < 4; ++limb) {
    for (std::size_t i = 0; i < n; ++i)
      ints[i] = static_cast<std::int64_t>((a[i] >> (16 * limb)) & 0xFFFF);
    fft.forward_int(ints, fourier_a);
    std::fill(product.begin(), product.end(), 0.0);
    fft.multiply_accumulate(product, fourier_a, fourier_b);
    std::fill(limb_product.begin(), limb_product.end(), Torus{0});
    fft.backward_add_torus(product, limb_product);
    for (std::size_t i = 0; i < n; ++i) out[i] += limb_product[i] << (16 * limb);
  }
}

}  // namespace fheml::tfhe
