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

// GGSWs above this size (7 and 8 bits: 1 and 2 MiB) and their transformed digits do not fit in
// L2 together: their CMux runs row by row (cmux_rotate_add).
constexpr std::size_t kRowByRowBytes = std::size_t{256} << 10;

void cmux_rotate_add(std::span<Torus> acc, std::span<const double> fourier_ggsw,
                     std::size_t rotation, const GgswShape& shape, ExternalProductScratch& scratch,
                     std::span<const double> next_ggsw, std::span<const Torus> source) {
  const std::size_t n = shape.polynomial_size.value;
  const std::size_t size = glwe_size(shape.glwe_dimension);
  const std::size_t level = shape.level.value;
  FHEML_ASSERT_EQ(acc.size(), shape.row_length());
  if (source.empty()) source = acc;
  FHEML_ASSERT_EQ(source.size(), shape.row_length());
  FHEML_ASSERT_EQ(fourier_ggsw.size(), shape.length());
  const FftPlan& fft = FftPlan::get(shape.polynomial_size);
  const std::span<double> digits(scratch.fourier_digits_);
  if (shape.length() * sizeof(double) > kRowByRowBytes) {
    // Row by row: transform one digit, then add its products with that GGSW row at once, so the
    // transforms' working set is one digit instead of all (k+1) * level of them. Same sums, in
    // the same order, as multiply_sum's (bit for bit: CmuxRotateAdd test, 7 bits). KS+PBS
    // measured 0.91x at 7 bits and 0.93x at 8 (fheml bench, 2 rounds each way); prefetching each
    // GGSW row during its digit's transform made 8 bits slower (1.03x), so it is not done.
    const std::span<double> sums(scratch.accumulators_);
    const std::span<double> digit = digits.first(n);
    for (std::size_t r = 0; r < size; ++r) {
      for (std::size_t j = 0; j < level; ++j) {
        const std::size_t row = r * level + j;
        const auto ggsw_row = fourier_ggsw.subspan(row * size * n, size * n);
        fft.forward_rotated_digit(source.subspan(r * n, n), rotation, shape.base_log.value, level,
                                  j, digit, {}, acc.subspan(r * n, n));
        if (row == 0) {
          fft.multiply_sum(sums, digit, ggsw_row, 1, size);
        } else {
          for (std::size_t c = 0; c < size; ++c) {
            fft.multiply_accumulate(sums.subspan(c * n, n), digit, ggsw_row.subspan(c * n, n));
          }
        }
      }
    }
    for (std::size_t c = 0; c < size; ++c) {
      fft.backward_add_torus(sums.subspan(c * n, n), acc.subspan(c * n, n));
    }
    return;
  }
  PrefetchSlices prefetch(next_ggsw, size * level + size);
  // Every digit is transformed (reading acc) before the first inverse transform adds into acc.
  for (std::size_t r = 0; r < size; ++r) {
    for (std::size_t j = 0; j < level; ++j) {
      fft.forward_rotated_digit(source.subspan(r * n, n), rotation, shape.base_log.value, level, j,
                                digits.subspan((r * level + j) * n, n), prefetch.next(),
                                acc.subspan(r * n, n));
    }
  }
  multiply_and_add_back(acc, fourier_ggsw, shape, fft, digits, scratch.accumulators_, prefetch);
}

}  // namespace fheml::tfhe
