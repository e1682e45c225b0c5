// The blind rotation's fused kernels (FftPlan::forward_rotated_digit, FftPlan::multiply_sum,
// cmux_rotate_add) against the unfused path they replace, at every SIMD level this CPU has.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/tfhe/bootstrap.h"
#include "fheml/tfhe/decomposition.h"
#include "fheml/tfhe/fft.h"
#include "fheml/tfhe/ggsw.h"
#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/polynomial.h"

namespace fheml::tfhe {
namespace {

std::vector<SimdLevel> supported_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2Fma, SimdLevel::kAvx512}) {
    if (cpu_supports(l)) levels.push_back(l);
  }
  return levels;
}

class CmuxKernels : public ::testing::TestWithParam<SimdLevel> {};

// Test data only (not keys or noise): a seeded generator keeps failures reproducible.
std::vector<Torus> random_torus(std::size_t n, std::mt19937_64& rng) {
  std::vector<Torus> a(n);
  for (auto& x : a) x = rng();
  return a;
}

TEST_P(CmuxKernels, RotatedDigitTransformIsTheUnfusedPathBitForBit) {
  std::mt19937_64 rng(7);
  struct Decomposition {
    std::size_t base_log;
    std::size_t levels;
  };
  for (const std::size_t n : {64u, 512u, 2048u}) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
    // Rotations on and off the vector width, either side of N (X^N = -1), and the ends.
    std::vector<std::size_t> rotations = {0, 1, 3, 8, 13, n - 1, n, n + 1, n + 9, 2 * n - 1};
    for (int i = 0; i < 4; ++i) rotations.push_back(rng() % (2 * n));
    for (const Decomposition d :
         {Decomposition{23, 1}, Decomposition{22, 1}, Decomposition{15, 2}, Decomposition{10, 3},
          Decomposition{4, 4}, Decomposition{1, 6}, Decomposition{31, 2}}) {
      const Decomposer decomposer(DecompositionBaseLog{d.base_log},
                                  DecompositionLevelCount{d.levels});
      // Random words, and words on the rounding and carry boundaries of every level.
      std::vector<Torus> poly = random_torus(n, rng);
      for (std::size_t i = 0; i < n; i += 5) {
        const std::size_t level = rng() % d.levels;
        const std::size_t bit = 64 - d.base_log * (level + 1);
        poly[i] = (poly[i] >> bit << bit) | (bit > 0 ? Torus{1} << (bit - 1) : 0);
      }
      for (const std::size_t rotation : rotations) {
        std::vector<Torus> difference(n);
        polynomial_monomial_mul_minus_one(difference, poly, rotation);
        std::vector<std::int64_t> digits(n * d.levels);
        decomposer.decompose_polynomial(difference, digits);
        for (std::size_t level = 0; level < d.levels; ++level) {
          std::vector<double> want(n);
          plan.forward_int(std::span<const std::int64_t>(digits).subspan(level * n, n), want);
          std::vector<double> got(n);
          plan.forward_rotated_digit(poly, rotation, d.base_log, d.levels, level, got);
          ASSERT_EQ(got, want) << "N=" << n << " base_log " << d.base_log << " levels " << d.levels
                               << " level " << level << " rotation " << rotation;
        }
        // With another polynomial subtracted (an extended accumulator's CMux, bootstrap.h):
        // X^rotation * poly - other.
        const std::vector<Torus> other = random_torus(n, rng);
        polynomial_monomial_mul(difference, poly, rotation);
        for (std::size_t i = 0; i < n; ++i) difference[i] -= other[i];
        decomposer.decompose_polynomial(difference, digits);
        for (std::size_t level = 0; level < d.levels; ++level) {
          std::vector<double> want(n);
          plan.forward_int(std::span<const std::int64_t>(digits).subspan(level * n, n), want);
          std::vector<double> got(n);
          plan.forward_rotated_digit(poly, rotation, d.base_log, d.levels, level, got, {}, other);
          ASSERT_EQ(got, want) << "N=" << n << " base_log " << d.base_log << " levels " << d.levels
                               << " level " << level << " rotation " << rotation
                               << " with a subtrahend";
        }
      }
    }
  }
}

TEST_P(CmuxKernels, MultiplySumEqualsTheAccumulatedProducts) {
  std::mt19937_64 rng(8);
  std::uniform_real_distribution<double> value(-0x1p40, 0x1p40);
  struct Shape {
    std::size_t rows;
    std::size_t cols;
  };
  // The unrolled shapes and two that take the general loop.
  for (const Shape s :
       {Shape{2, 2}, Shape{4, 2}, Shape{3, 3}, Shape{4, 4}, Shape{1, 1}, Shape{6, 3}}) {
    for (const std::size_t n : {32u, 2048u}) {
      const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
      std::vector<double> a(s.rows * n);
      std::vector<double> b(s.rows * s.cols * n);
      for (auto& x : a) x = value(rng);
      for (auto& x : b) x = value(rng);
      std::vector<double> want(s.cols * n, 0.0);
      for (std::size_t r = 0; r < s.rows; ++r) {
        for (std::size_t c = 0; c < s.cols; ++c) {
          plan.multiply_accumulate(std::span<double>(want).subspan(c * n, n),
                                   std::span<const double>(a).subspan(r * n, n),
                                   std::span<const double>(b).subspan((r * s.cols + c) * n, n));
        }
      }
      std::vector<double> got(s.cols * n, -1.0);  // overwritten, not accumulated
      plan.multiply_sum(got, a, b, s.rows, s.cols);
      // Each output is a sum of 2 * rows products of magnitude <= 2^80: both orders of summation
      // (and FMA contraction) stay within a few units of 2^(80 - 52).
      for (std::size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 0x1p32 * static_cast<double>(s.rows))
            << s.rows << "x" << s.cols << " N=" << n << " index " << i;
      }
    }
  }
}

// A prefetch region is a hint to the caches: the transforms give the same bits with one (of
// any size: less or more than the transform's loop iterations can spread) as without.
TEST_P(CmuxKernels, PrefetchRegionsChangeNoBit) {
  std::mt19937_64 rng(9);
  for (const std::size_t n : {32u, 2048u, 16384u}) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
    const std::vector<Torus> poly = random_torus(n, rng);
    std::vector<double> other(5 * n + 3, 1.0);
    for (const std::size_t doubles :
         {std::size_t{0}, std::size_t{1}, std::size_t{8 * 4 + 1}, n, other.size()}) {
      const std::span<const double> region = std::span<const double>(other).first(doubles);
      std::vector<double> want(n);
      std::vector<double> got(n);
      plan.forward_rotated_digit(poly, 5, 23, 1, 0, want);
      plan.forward_rotated_digit(poly, 5, 23, 1, 0, got, region);
      ASSERT_EQ(got, want) << "forward, N=" << n << ", " << doubles << " doubles";
      std::vector<double> fourier_want = want;
      std::vector<Torus> out_want(n, 7);
      std::vector<Torus> out_got(n, 7);
      plan.backward_add_torus(fourier_want, out_want);
      plan.backward_add_torus(got, out_got, region);
      ASSERT_EQ(out_got, out_want) << "backward, N=" << n << ", " << doubles << " doubles";
    }
  }
}

TEST_P(CmuxKernels, RefuseBadSizesAndDecompositions) {
  const FftPlan& plan = FftPlan::get(PolynomialSize{1024}, GetParam());
  std::vector<Torus> poly(1024);
  std::vector<double> fourier(1024);
  std::vector<double> short_fourier(1000);
  EXPECT_THROW(plan.forward_rotated_digit(std::vector<Torus>(512), 3, 23, 1, 0, fourier),
               std::invalid_argument);
  EXPECT_THROW(plan.forward_rotated_digit(poly, 3, 23, 1, 0, short_fourier), std::invalid_argument);
  const std::vector<Torus> short_subtrahend(256);
  EXPECT_THROW(plan.forward_rotated_digit(poly, 3, 23, 1, 0, fourier, {}, short_subtrahend),
               std::invalid_argument);
  EXPECT_THROW(plan.forward_rotated_digit(poly, 3, 0, 1, 0, fourier), std::invalid_argument);
  EXPECT_THROW(plan.forward_rotated_digit(poly, 3, 23, 0, 0, fourier), std::invalid_argument);
  EXPECT_THROW(plan.forward_rotated_digit(poly, 3, 23, 1, 1, fourier), std::invalid_argument);
  EXPECT_THROW(plan.forward_rotated_digit(poly, 3, 16, 4, 0, fourier), std::invalid_argument);
  std::vector<double> two(2 * 1024);
  std::vector<double> four(4 * 1024);
  EXPECT_THROW(plan.multiply_sum(two, two, four, 2, 0), std::invalid_argument);
  EXPECT_THROW(plan.multiply_sum(two, two, two, 2, 2), std::invalid_argument);
  EXPECT_THROW(plan.multiply_sum(fourier, two, four, 2, 2), std::invalid_argument);
  try {
    plan.forward_rotated_digit(poly, 3, 23, 1, 2, fourier);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("digit 2"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, CmuxKernels, ::testing::ValuesIn(supported_levels()),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// The blind rotation's CMux equals the external product of the rotated difference it replaces,
// bit for bit, for the key shapes of the built-in sets (1 and 2 levels, k = 1..3).
TEST(CmuxRotateAdd, EqualsTheExternalProductOfTheRotatedDifference) {
  for (const std::size_t bits : {1u, 3u, 4u, 7u}) {
    const PbsParameters& p = default_parameters(MessageBits{bits});
    const GgswShape shape{p.glwe_dimension, p.polynomial_size, p.pbs_base_log, p.pbs_level};
    const std::size_t n = p.polynomial_size.value;
    Csprng rng(test_seed(90 + bits));
    const GlweSecretKey key = generate_glwe_secret_key(p.glwe_dimension, p.polynomial_size, rng);
    std::vector<Torus> ggsw(shape.length());
    encrypt_ggsw(ggsw, key, 1, shape, p.glwe_noise, rng, rng);
    std::vector<double> fourier(shape.length());
    ggsw_to_fourier(fourier, ggsw, shape);
    std::vector<Torus> acc(shape.row_length());
    rng.fill_u64(acc);
    ExternalProductScratch scratch(shape);
    for (const std::size_t rotation : {std::size_t{0}, std::size_t{5}, n - 3, n + 17}) {
      std::vector<Torus> difference(acc.size());
      for (std::size_t r = 0; r < glwe_size(p.glwe_dimension); ++r) {
        polynomial_monomial_mul_minus_one(std::span<Torus>(difference).subspan(r * n, n),
                                          std::span<const Torus>(acc).subspan(r * n, n), rotation);
      }
      std::vector<Torus> want = acc;
      external_product_add(want, fourier, difference, shape, scratch);
      std::vector<Torus> got = acc;
      cmux_rotate_add(got, fourier, rotation, shape, scratch);
      ASSERT_EQ(got, want) << "p=" << bits << " rotation " << rotation;
      // The blind rotation passes its next GGSW to prefetch: same bits.
      std::vector<Torus> prefetching = acc;
      cmux_rotate_add(prefetching, fourier, rotation, shape, scratch, fourier);
      ASSERT_EQ(prefetching, want) << "p=" << bits << " rotation " << rotation << ", prefetching";
      if (rotation == 0) {
        ASSERT_EQ(got, acc) << "a rotation by 0 adds nothing";
      }
    }
  }
}

}  // namespace
}  // namespace fheml::tfhe
