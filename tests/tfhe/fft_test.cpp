#include "fheml/tfhe/fft.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace fheml::tfhe {
namespace {

__extension__ typedef __int128 Int128;

std::vector<SimdLevel> supported_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2Fma, SimdLevel::kAvx512}) {
    if (cpu_supports(l)) levels.push_back(l);
  }
  return levels;
}

std::vector<Torus> random_torus(std::size_t n, std::mt19937_64& rng) {
  std::vector<Torus> a(n);
  for (auto& x : a) x = rng();
  return a;
}

// Uniform in [-2^(bits-1), 2^(bits-1)].
std::vector<std::int64_t> random_digits(std::size_t n, int bits, std::mt19937_64& rng) {
  const std::int64_t half = std::int64_t{1} << (bits - 1);
  std::uniform_int_distribution<std::int64_t> dist(-half, half);
  std::vector<std::int64_t> b(n);
  for (auto& x : b) x = dist(rng);
  return b;
}

// Coefficient k of a * b mod (X^N + 1), exact mod 2^64 (wrapping arithmetic).
Torus naive_coefficient(const std::vector<Torus>& a, const std::vector<std::int64_t>& b,
                        std::size_t k) {
  const std::size_t n = a.size();
  Torus sum = 0;
  for (std::size_t i = 0; i <= k; ++i) sum += a[i] * static_cast<Torus>(b[k - i]);
  for (std::size_t i = k + 1; i < n; ++i) sum -= a[i] * static_cast<Torus>(b[n + k - i]);
  return sum;
}

std::vector<Torus> naive_product(const std::vector<Torus>& a, const std::vector<std::int64_t>& b) {
  const std::size_t n = a.size();
  std::vector<Torus> c(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      const Torus p = a[i] * static_cast<Torus>(b[j]);
      if (i + j < n) {
        c[i + j] += p;
      } else {
        c[i + j - n] -= p;
      }
    }
  }
  return c;
}

// a * b through the plan, added to `init`.
std::vector<Torus> fft_product(const FftPlan& plan, const std::vector<Torus>& a,
                               const std::vector<std::int64_t>& b, std::vector<Torus> init = {}) {
  const std::size_t n = plan.polynomial_size().value;
  std::vector<double> fa(plan.fourier_doubles());
  std::vector<double> fb(plan.fourier_doubles());
  std::vector<double> acc(plan.fourier_doubles(), 0.0);
  plan.forward_torus(a, fa);
  plan.forward_int(b, fb);
  plan.multiply_accumulate(acc, fa, fb);
  if (init.empty()) init.assign(n, 0);
  plan.backward_add_torus(acc, init);
  return init;
}

std::int64_t signed_error(Torus got, Torus want) { return static_cast<std::int64_t>(got - want); }

// Error bound: the exact coefficient has magnitude at most N * 2^63 * 2^(b-1); doubles carry
// 2^-52 relative precision, and the FFT error grows like sqrt(N log N) relative to that worst
// case, far below this linear-in-N bound. Safety factor 4 on top:
//   |error| <= 4 * N * 2^63 * 2^(b-1) * 2^-52 = 2^(log2 N + b + 12).
double error_bound(std::size_t n, int bits) {
  return 4.0 * static_cast<double>(n) * std::ldexp(1.0, 63 + bits - 1 - 52);
}

class FftLevelTest : public ::testing::TestWithParam<SimdLevel> {};

TEST_P(FftLevelTest, ProductMatchesNaiveConvolution) {
  std::mt19937_64 rng(20240601);
  // 32 and 64: in-register final pass; 128 and up (AVX-512): transposed 64-point blocks, with
  // an even (128, 2048) or odd (256, 1024, 4096) number of stages before them.
  for (std::size_t n : {32u, 64u, 128u, 256u, 1024u, 2048u, 4096u}) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
    for (int bits : {8, 16, 23}) {
      const auto a = random_torus(n, rng);
      const auto b = random_digits(n, bits, rng);
      const auto want = naive_product(a, b);
      const auto got = fft_product(plan, a, b);
      double max_error = 0;
      for (std::size_t k = 0; k < n; ++k) {
        max_error =
            std::max(max_error, std::fabs(static_cast<double>(signed_error(got[k], want[k]))));
      }
      EXPECT_LE(max_error, error_bound(n, bits)) << "N=" << n << " b=" << bits;
      EXPECT_GT(max_error, 0.0) << "suspiciously exact for full-size torus inputs";
    }
  }
}

TEST_P(FftLevelTest, LargeProductMatchesSampledCoefficients) {
  // N = 32768: the full naive product is 10^9 multiplications; check 128 sampled coefficients.
  std::mt19937_64 rng(77);
  const std::size_t n = 32768;
  const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
  for (int bits : {8, 22}) {
    const auto a = random_torus(n, rng);
    const auto b = random_digits(n, bits, rng);
    const auto got = fft_product(plan, a, b);
    for (int s = 0; s < 128; ++s) {
      const std::size_t k = (s < 2) ? (s == 0 ? 0 : n - 1) : rng() % n;
      const double error =
          std::fabs(static_cast<double>(signed_error(got[k], naive_coefficient(a, b, k))));
      EXPECT_LE(error, error_bound(n, bits)) << "N=" << n << " b=" << bits << " k=" << k;
    }
  }
}

TEST_P(FftLevelTest, SmallProductsByMonomialsAreExact) {
  std::mt19937_64 rng(5);
  for (std::size_t n : {256u, 2048u, 32768u}) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
    // Small signed coefficients stored as torus elements (two's complement).
    std::vector<Torus> a(n);
    for (auto& x : a)
      x = static_cast<Torus>(static_cast<std::int64_t>(rng() % (1u << 21)) - (1 << 20));
    for (std::size_t shift : {std::size_t{0}, std::size_t{1}, n - 1}) {
      std::vector<std::int64_t> monomial(n, 0);
      monomial[shift] = 1;
      const auto got = fft_product(plan, a, monomial);
      // a * X^shift: coefficient i moves to i + shift, negated when it wraps past X^N.
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t j = i + shift;
        const Torus want = j < n ? a[i] : Torus{0} - a[i];
        ASSERT_EQ(got[j % n], want) << "N=" << n << " shift=" << shift << " i=" << i;
      }
    }
    // X * X^(N-1) = X^N = -1.
    std::vector<Torus> x(n, 0);
    x[1] = 1;
    std::vector<std::int64_t> x_last(n, 0);
    x_last[n - 1] = 1;
    const auto got = fft_product(plan, x, x_last);
    EXPECT_EQ(got[0], ~Torus{0});
    for (std::size_t i = 1; i < n; ++i) ASSERT_EQ(got[i], 0u) << i;
  }
}

TEST_P(FftLevelTest, EverySupportedSizeRoundTrips) {
  std::mt19937_64 rng(11);
  for (std::size_t n = FftPlan::kMinSize; n <= (std::size_t{1} << 16); n *= 2) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
    std::vector<Torus> a(n);
    for (auto& x : a) x = static_cast<Torus>(static_cast<std::int64_t>(rng() % 2001) - 1000);
    const std::size_t shift = rng() % n;
    std::vector<std::int64_t> monomial(n, 0);
    monomial[shift] = -3;
    const auto got = fft_product(plan, a, monomial);
    for (std::size_t i = 0; i < n; ++i) {
      const Torus term = Torus{0} - 3 * a[i];
      ASSERT_EQ(got[(i + shift) % n], i + shift < n ? term : Torus{0} - term)
          << "N=" << n << " shift=" << shift << " i=" << i;
    }
  }
}

TEST_P(FftLevelTest, BackwardAddsIntoThePolynomial) {
  std::mt19937_64 rng(9);
  const std::size_t n = 1024;
  const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
  const auto a = random_torus(n, rng);
  const auto b = random_digits(n, 8, rng);
  const auto init = random_torus(n, rng);
  const auto plain = fft_product(plan, a, b);
  const auto added = fft_product(plan, a, b, init);
  for (std::size_t k = 0; k < n; ++k) ASSERT_EQ(added[k], plain[k] + init[k]) << k;
}

// round(v) mod 2^64 (ties to even) computed independently (v an integer or |v| < 2^52).
Torus reference_reduction(double v) {
  const double r = std::nearbyint(v);  // ties to even; exact: such doubles are integers or small
  return static_cast<Torus>(static_cast<Int128>(r));
}

TEST_P(FftLevelTest, BackwardReducesLargeValuesExactly) {
  // The constant polynomial 1 has the all-ones Fourier transform, and the forward and inverse
  // transforms of a constant are exact in doubles (only twiddles equal to 1 touch non-zeros).
  // Scaling that transform by v therefore makes backward_add_torus see exactly v at
  // coefficient 0 (coefficient N/2 when the constant is put there: the imaginary path) and 0
  // elsewhere.
  std::mt19937_64 rng(3);
  std::vector<double> values = {0.0,
                                -0.0,
                                0.49999999999999994,
                                0.5,
                                -0.5,
                                1.5,
                                2.5,
                                -2.5,
                                -7.0,
                                std::ldexp(1.0, 52) + 1,
                                std::ldexp(1.0, 53) + 2,
                                std::ldexp(1.0, 63),
                                -std::ldexp(1.0, 63),
                                std::ldexp(1.0, 64),
                                std::ldexp(1.0, 64) + std::ldexp(3.0, 12),
                                -std::ldexp(1.0, 64) - std::ldexp(5.0, 13),
                                std::ldexp(1.0, 100) + std::ldexp(1.0, 60),
                                -std::ldexp(0x1.fffffffffffffp0, 99),
                                std::ldexp(1.0, 115) + std::ldexp(1.0, 63),
                                -std::ldexp(1.0, 116) + std::ldexp(1.0, 64),
                                std::ldexp(1.0, 116) - std::ldexp(1.0, 63),
                                std::ldexp(1.0, 116),
                                std::ldexp(1.0, 120) + std::ldexp(1.0, 70),
                                std::ldexp(1.0, 126),
                                std::ldexp(1.0, 200)};
  for (int i = 0; i < 200; ++i) {
    const double mantissa = static_cast<double>(rng() >> 11) * (rng() % 2 ? 1.0 : -1.0);
    values.push_back(std::ldexp(mantissa, static_cast<int>(rng() % 110) - 60));
  }
  for (std::size_t n : {256u, 2048u}) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
    for (std::size_t position : {std::size_t{0}, n / 2}) {
      std::vector<std::int64_t> constant(n, 0);
      constant[position] = 1;
      std::vector<double> unit(plan.fourier_doubles());
      plan.forward_int(constant, unit);
      for (double v : values) {
        std::vector<double> fourier(unit);
        for (double& f : fourier) f *= v;
        const auto init = random_torus(n, rng);
        auto poly = init;
        plan.backward_add_torus(fourier, poly);
        const Torus want = std::ldexp(1.0, 200) == v ? Torus{0} : reference_reduction(v);
        ASSERT_EQ(poly[position], init[position] + want)
            << "N=" << n << " position=" << position << " v=" << v;
        for (std::size_t k = 0; k < n; ++k) {
          if (k != position) {
            ASSERT_EQ(poly[k], init[k]) << "k=" << k << " v=" << v;
          }
        }
      }
    }
  }
}

TEST_P(FftLevelTest, AgreesWithScalarWithinTheErrorBound) {
  // Levels are not bit-identical (the vector ones contract products into FMAs), but each
  // result is within the error bound of the exact product, so two levels differ by at most
  // twice that bound.
  std::mt19937_64 rng(42);
  for (std::size_t n : {32u, 256u, 2048u, 4096u, 32768u, 65536u}) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
    const FftPlan& scalar = FftPlan::get(PolynomialSize{n}, SimdLevel::kScalar);
    const auto a = random_torus(n, rng);
    const auto b = random_digits(n, 23, rng);
    const auto got = fft_product(plan, a, b);
    const auto want = fft_product(scalar, a, b);
    double max_difference = 0;
    for (std::size_t k = 0; k < n; ++k) {
      max_difference =
          std::max(max_difference, std::fabs(static_cast<double>(signed_error(got[k], want[k]))));
    }
    EXPECT_LE(max_difference, 2 * error_bound(n, 23)) << "N=" << n;
  }
}

TEST_P(FftLevelTest, IsDeterministic) {
  // Each level gives the same bits on every call (and with the same plan from every thread).
  std::mt19937_64 rng(43);
  for (std::size_t n : {32u, 2048u, 32768u}) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{n}, GetParam());
    const auto a = random_torus(n, rng);
    const auto b = random_digits(n, 23, rng);
    const auto first = fft_product(plan, a, b);
    EXPECT_EQ(fft_product(plan, a, b), first) << "N=" << n;
    std::vector<double> fa(plan.fourier_doubles());
    std::vector<double> fa_again(plan.fourier_doubles());
    plan.forward_torus(a, fa);
    plan.forward_torus(a, fa_again);
    EXPECT_EQ(fa, fa_again) << "N=" << n;
  }
}

TEST_P(FftLevelTest, SizeMismatchThrows) {
  const FftPlan& plan = FftPlan::get(PolynomialSize{1024}, GetParam());
  std::vector<Torus> poly(1024);
  std::vector<Torus> short_poly(512);
  std::vector<std::int64_t> ints(1023);
  std::vector<double> fourier(1024);
  std::vector<double> short_fourier(1000);
  EXPECT_THROW(plan.forward_torus(short_poly, fourier), std::invalid_argument);
  EXPECT_THROW(plan.forward_torus(poly, short_fourier), std::invalid_argument);
  EXPECT_THROW(plan.forward_int(ints, fourier), std::invalid_argument);
  EXPECT_THROW(plan.backward_add_torus(short_fourier, poly), std::invalid_argument);
  EXPECT_THROW(plan.backward_add_torus(fourier, short_poly), std::invalid_argument);
  EXPECT_THROW(plan.multiply_accumulate(short_fourier, fourier, fourier), std::invalid_argument);
  EXPECT_THROW(plan.multiply_accumulate(fourier, short_fourier, fourier), std::invalid_argument);
  EXPECT_THROW(plan.multiply_accumulate(fourier, fourier, short_fourier), std::invalid_argument);
  try {
    plan.forward_torus(short_poly, fourier);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1024"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, FftLevelTest, ::testing::ValuesIn(supported_levels()),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(FftPlan, CachesPlansAndValidatesSizes) {
  const FftPlan& a = FftPlan::get(PolynomialSize{2048});
  EXPECT_EQ(&a, &FftPlan::get(PolynomialSize{2048}));
  EXPECT_EQ(a.simd_level(), best_simd_level());
  EXPECT_EQ(a.polynomial_size(), PolynomialSize{2048});
  EXPECT_EQ(a.fourier_doubles(), 2048u);
  EXPECT_THROW(FftPlan::get(PolynomialSize{3000}), std::invalid_argument);
  EXPECT_THROW(FftPlan::get(PolynomialSize{16}), std::invalid_argument);
  EXPECT_THROW(FftPlan::get(PolynomialSize{0}), std::invalid_argument);
  EXPECT_THROW(FftPlan::get(PolynomialSize{FftPlan::kMaxSize * 2}), std::invalid_argument);
  EXPECT_STREQ(to_string(SimdLevel::kAvx512), "avx512");
}

// Measured FFT error of a * b (a uniform torus, b uniform digits in [-2^(b-1), 2^(b-1)]),
// standard deviation relative to 2^64 (fixed seeds; 8192 resp. 2048 sampled coefficients; GCC 12
// -O2 build; levels differ slightly since the vector ones use FMA):
//   N = 2048,  b = 23: scalar 2^-26.24, avx2 2^-26.32, avx512 2^-26.31 (about 2^37.7 on 2^64)
//   N = 32768, b = 22: scalar 2^-24.99, avx2 2^-25.05, avx512 2^-25.06 (about 2^39.0)
// Both the rounding of the 64-bit torus inputs to 53-bit doubles and the FFT's own roundings of
// the ~2^90 products contribute.
TEST(FftPlan, ReportsErrorStandardDeviation) {
  struct Case {
    std::size_t n;
    int bits;
    std::size_t samples;
  };
  std::mt19937_64 rng(2024);
  for (const Case& c : {Case{2048, 23, 2048}, Case{32768, 22, 512}}) {
    const FftPlan& plan = FftPlan::get(PolynomialSize{c.n});
    double sum_squares = 0;
    std::size_t count = 0;
    for (int rep = 0; rep < 4; ++rep) {
      const auto a = random_torus(c.n, rng);
      const auto b = random_digits(c.n, c.bits, rng);
      const auto got = fft_product(plan, a, b);
      for (std::size_t s = 0; s < c.samples; ++s) {
        const std::size_t k = c.samples == c.n ? s : rng() % c.n;
        const double e =
            std::ldexp(static_cast<double>(signed_error(got[k], naive_coefficient(a, b, k))), -64);
        sum_squares += e * e;
        ++count;
      }
    }
    const double std_dev = std::sqrt(sum_squares / static_cast<double>(count));
    std::cout << "[ FFT noise ] N=" << c.n << " b=" << c.bits << " error std = " << std_dev
              << " = 2^" << std::log2(std_dev) << " of the torus\n";
    RecordProperty("error_std_log2_N" + std::to_string(c.n) + "_b" + std::to_string(c.bits),
                   std::to_string(std::log2(std_dev)));
    EXPECT_LT(std_dev, std::ldexp(error_bound(c.n, c.bits), -64));
  }
}

}  // namespace
}  // namespace fheml::tfhe
