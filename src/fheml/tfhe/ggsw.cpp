#include "fheml/tfhe/ggsw.h"

#include <algorithm>

#include "fheml/tfhe/decomposition.h"
#include "fheml/tfhe/errors.h"
#include "fheml/tfhe/fft.h"

namespace fheml::tfhe {

void encrypt_ggsw(std::span<Torus> out, const GlweSecretKey& key, std::int64_t mu,
                  const GgswShape& shape, NoiseStdDev noise, Csprng& mask_rng, Csprng& noise_rng) {
  require_size("GGSW ciphertext length", shape.length(), out.size());
  FHEML_ASSERT_EQ(key.glwe_dimension.value, shape.glwe_dimension.value);
  FHEML_ASSERT_EQ(key.polynomial_size.value, shape.polynomial_size.value);
  const std::size_t n = shape.polynomial_size.value;
  const std::size_t level = shape.level.value;
  const Decomposer decomposer(shape.base_log, shape.level);
  const std::size_t k = shape.glwe_dimension.value;
  std::vector<Torus> plaintext(n);
  for (std::size_t r = 0; r <= k; ++r) {
    for (std::size_t j = 0; j < level; ++j) {
      // Row (r, j) must have phase -mu g_j S_r (mask rows) or mu g_j (body rows). Writing it as
      // the plaintext, rather than adding mu g_j to mask polynomial r, leaves every mask exactly
      // the keystream: the seeded (compressed) key can then regenerate it.
      const Torus scaled = static_cast<Torus>(mu) * decomposer.gadget(j);
      if (r < k) {
        const auto s = key.polynomial(r);
        for (std::size_t i = 0; i < n; ++i) plaintext[i] = Torus{0} - scaled * s[i];
      } else {
        std::fill(plaintext.begin(), plaintext.end(), Torus{0});
        plaintext[0] = scaled;
      }
      encrypt_glwe(out.subspan((r * level + j) * shape.row_length(), shape.row_length()), key,
                   plaintext, noise, mask_rng, noise_rng);
    }
  }
}

void ggsw_to_fourier(std::span<double> out, std::span<const Torus> ggsw, const GgswShape& shape) {
  require_size("GGSW ciphertext length", shape.length(), ggsw.size());
  require_size("Fourier GGSW length", shape.length(), out.size());
  const FftPlan& fft = FftPlan::get(shape.polynomial_size);
  const std::size_t n = shape.polynomial_size.value;
  for (std::size_t p = 0; p < shape.length() / n; ++p) {
    fft.forward_torus(ggsw.subspan(p * n, n), out.subspan(p * n, n));
  }
}

ExternalProductScratch::ExternalProductScratch(const GgswShape& shape)
    : digits_(shape.level.value * shape.polynomial_size.value),
      fourier_digits_(shape.row_count() * shape.polynomial_size.value),
      accumulators_(shape.row_length()) {}

namespace {

// A region cut into one slice per transform of a CMux, handed out in order.
class PrefetchSlices {
 public:
  PrefetchSlices() = default;
  PrefetchSlices(std::span<const double> region, std::size_t transforms)
      : rest_(region), slice_((region.size() + transforms - 1) / transforms) {}

  std::span<const double> next() {
    const std::span<const double> slice = rest_.first(std::min(slice_, rest_.size()));
    rest_ = rest_.subspan(slice.size());
    return slice;
  }

 private:
  std::span<const double> rest_;
  std::size_t slice_ = 0;
};

// out += the inverse transforms of the products of the transformed digits (row r * level + j of
// scratch.fourier_digits_) with the GGSW's rows.
void multiply_and_add_back(std::span<Torus> out, std::span<const double> fourier_ggsw,
                           const GgswShape& shape, const FftPlan& fft,
                           std::span<double> fourier_digits, std::span<double> accumulators,
                           PrefetchSlices prefetch = {}) {
  const std::size_t n = shape.polynomial_size.value;
  const std::size_t size = glwe_size(shape.glwe_dimension);
  fft.multiply_sum(accumulators, fourier_digits, fourier_ggsw, shape.row_count(), size);
  for (std::size_t c = 0; c < size; ++c) {
    fft.backward_add_torus(accumulators.subspan(c * n, n), out.subspan(c * n, n), prefetch.next());
  }
}

}  // namespace

void external_product_add(std::span<Torus> out, std::span<const double> fourier_ggsw,
                          std::span<const Torus> glwe, const GgswShape& shape,
                          ExternalProductScratch& scratch) {
  const std::size_t n = shape.polynomial_size.value;
  const std::size_t size = glwe_size(shape.glwe_dimension);
  const std::size_t level = shape.level.value;
  FHEML_ASSERT_EQ(out.size(), shape.row_length());
  FHEML_ASSERT_EQ(glwe.size(), shape.row_length());
  FHEML_ASSERT_EQ(fourier_ggsw.size(), shape.length());
  const FftPlan& fft = FftPlan::get(shape.polynomial_size);
  const Decomposer decomposer(shape.base_log, shape.level);
  const std::span<double> digits(scratch.fourier_digits_);
  for (std::size_t r = 0; r < size; ++r) {
    decomposer.decompose_polynomial(glwe.subspan(r * n, n), scratch.digits_);
    for (std::size_t j = 0; j < level; ++j) {
      fft.forward_int(std::span<const std::int64_t>(scratch.digits_).subspan(j * n, n),
                      digits.subspan((r * level + j) * n, n));
    }
  }
  multiply_and_add_back(out, fourier_ggsw, shape, fft, digits, scratch.accumulators_);
}

void cmux_rotate_add(std::span<Torus> acc, std::span<const double> fourier_ggsw,
                     std::size_t rotation, const GgswShape& shape, ExternalProductScratch& scratch,
                     std::span<const double> next_ggsw) {
  const std::size_t n = shape.polynomial_size.value;
  const std::size_t size = glwe_size(shape.glwe_dimension);
  const std::size_t level = shape.level.value;
  FHEML_ASSERT_EQ(acc.size(), shape.row_length());
  FHEML_ASSERT_EQ(fourier_ggsw.size(), shape.length());
  const FftPlan& fft = FftPlan::get(shape.polynomial_size);
  const std::span<double> digits(scratch.fourier_digits_);
  PrefetchSlices prefetch(next_ggsw, size * level + size);
  // Every digit is transformed (reading acc) before the first inverse transform adds into acc.
  for (std::size_t r = 0; r < size; ++r) {
    for (std::size_t j = 0; j < level; ++j) {
      fft.forward_rotated_digit(acc.subspan(r * n, n), rotation, shape.base_log.value, level, j,
                                digits.subspan((r * level + j) * n, n), prefetch.next());
    }
  }
  multiply_and_add_back(acc, fourier_ggsw, shape, fft, digits, scratch.accumulators_, prefetch);
}

}  // namespace fheml::tfhe
