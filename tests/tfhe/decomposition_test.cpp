#include "fheml/tfhe/decomposition.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace fheml::tfhe {
namespace {

struct Case {
  std::size_t base_log, level;
};

class DecompositionTest : public ::testing::TestWithParam<Case> {};

TEST_P(DecompositionTest, DigitsAreBalancedAndRecomposeToClosestRepresentable) {
  const auto [base_log, level] = GetParam();
  const Decomposer d{DecompositionBaseLog{base_log}, DecompositionLevelCount{level}};
  std::mt19937_64 gen(base_log * 100 + level);
  std::vector<std::int64_t> digits(level);
  const std::int64_t half = std::int64_t{1} << (base_log - 1);
  double sum_sq = 0;
  const int samples = 20000;
  for (int s = 0; s < samples; ++s) {
    const Torus x = gen();
    d.decompose(x, digits);
    Torus recomposed = 0;
    for (std::size_t j = 0; j < level; ++j) {
      ASSERT_GE(digits[j], -half);
      ASSERT_LT(digits[j], half);
      recomposed += static_cast<Torus>(digits[j]) * d.gadget(j);
      sum_sq += double(digits[j]) * double(digits[j]);
    }
    ASSERT_EQ(recomposed, d.closest_representable(x));
    // The rounding error is at most half a step of the last level.
    const auto error = static_cast<std::int64_t>(x - recomposed);
    const std::size_t shift = 64 - base_log * level;
    ASSERT_LE(error < 0 ? -error : error, std::int64_t{1} << (shift - 1));
  }
  // E[d^2] = (B^2 + 2) / 12 for balanced digits: the figure the noise model relies on.
  const double b = std::ldexp(1.0, int(base_log));
  EXPECT_NEAR(sum_sq / (samples * level) / ((b * b + 2) / 12), 1.0, 0.05);
}

TEST_P(DecompositionTest, ZeroMeanDigitsRecomposeAndHaveMeanZero) {
  const auto [base_log, level] = GetParam();
  const Decomposer d{DecompositionBaseLog{base_log}, DecompositionLevelCount{level}};
  std::mt19937_64 gen(base_log * 100 + level + 1);
  std::vector<std::int64_t> digits(level), plain(level);
  const std::int64_t half = std::int64_t{1} << (base_log - 1);
  double sum = 0, sum_sq = 0, plain_sum = 0;
  const int samples = 20000;
  for (int s = 0; s < samples; ++s) {
    const Torus x = gen();
    d.decompose_zero_mean(x, digits);
    d.decompose(x, plain);
    Torus recomposed = 0;
    for (std::size_t j = 0; j < level; ++j) {
      ASSERT_GE(digits[j], -half);
      ASSERT_LE(digits[j], half);  // +B/2 is a digit here, half as often as the others
      recomposed += static_cast<Torus>(digits[j]) * d.gadget(j);
      sum += double(digits[j]);
      sum_sq += double(digits[j]) * double(digits[j]);
      plain_sum += double(plain[j]);
    }
    ASSERT_EQ(recomposed, d.closest_representable(x));
  }
  const double count = double(samples) * double(level);
  const double b = std::ldexp(1.0, int(base_log));
  const double second_moment = (b * b + 2) / 12;
  EXPECT_NEAR(sum_sq / count / second_moment, 1.0, 0.05);
  // Mean zero within 4 standard errors; decompose()'s digits have mean -1/2.
  EXPECT_LE(std::abs(sum / count), 4 * std::sqrt(second_moment / count));
  if (base_log <= 8) {
    EXPECT_NEAR(plain_sum / count, -0.5, 4 * std::sqrt(second_moment / count));
  }
}

TEST_P(DecompositionTest, PolynomialDecompositionMatchesScalar) {
  const auto [base_log, level] = GetParam();
  const Decomposer d{DecompositionBaseLog{base_log}, DecompositionLevelCount{level}};
  std::mt19937_64 gen(7);
  const std::size_t n = 64;
  std::vector<Torus> poly(n);
  for (auto& x : poly) x = gen();
  std::vector<std::int64_t> out(n * level), digits(level);
  d.decompose_polynomial(poly, out);
  for (std::size_t i = 0; i < n; ++i) {
    d.decompose(poly[i], digits);
    for (std::size_t j = 0; j < level; ++j) ASSERT_EQ(out[j * n + i], digits[j]);
  }
}

INSTANTIATE_TEST_SUITE_P(Bases, DecompositionTest,
                         ::testing::Values(Case{1, 1}, Case{2, 7}, Case{3, 5}, Case{4, 4},
                                           Case{8, 2}, Case{15, 2}, Case{23, 1}, Case{22, 2},
                                           Case{10, 6}, Case{31, 2}));

TEST(Decomposition, RejectsImpossibleShapes) {
  EXPECT_THROW((Decomposer{DecompositionBaseLog{0}, DecompositionLevelCount{1}}),
               std::invalid_argument);
  EXPECT_THROW((Decomposer{DecompositionBaseLog{8}, DecompositionLevelCount{8}}),
               std::invalid_argument);
  EXPECT_THROW((Decomposer{DecompositionBaseLog{4}, DecompositionLevelCount{0}}),
               std::invalid_argument);
}

}  // namespace
}  // namespace fheml::tfhe
