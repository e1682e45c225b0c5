#include "fheml/tfhe/csprng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace fheml::tfhe {
namespace {

TEST(Csprng, SameSeedAndStreamGiveSameStream) {
  Csprng a(test_seed(7), 3), b(test_seed(7), 3);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.next_u64(), b.next_u64());
}

TEST(Csprng, StreamsAndSeedsAreIndependent) {
  Csprng a(test_seed(7), 0), b(test_seed(7), 1), c(test_seed(8), 0);
  int equal_ab = 0, equal_ac = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto x = a.next_u64();
    equal_ab += x == b.next_u64();
    equal_ac += x == c.next_u64();
  }
  EXPECT_EQ(equal_ab, 0);
  EXPECT_EQ(equal_ac, 0);
}

TEST(Csprng, FillMatchesWordByWordAcrossBufferBoundaries) {
  Csprng a(test_seed(1)), b(test_seed(1));
  std::vector<std::uint64_t> words(5000);
  a.fill_u64(std::span<std::uint64_t>(words).first(17));
  a.fill_u64(std::span<std::uint64_t>(words).subspan(17));
  for (const auto w : words) ASSERT_EQ(w, b.next_u64());
}

TEST(Csprng, RandomSeedsDiffer) { EXPECT_NE(random_seed(), random_seed()); }

TEST(Csprng, BitsAreBalanced) {
  Csprng rng(test_seed(2));
  std::vector<std::uint64_t> bits(100000);
  rng.fill_bits(bits);
  double ones = 0;
  for (const auto b : bits) {
    ASSERT_LE(b, 1u);
    ones += static_cast<double>(b);
  }
  // Binomial(100000, 1/2): standard deviation 158; allow 5 sigma.
  EXPECT_NEAR(ones, 50000, 5 * 158);
}

TEST(Csprng, GaussianHasTheRequestedVariance) {
  Csprng rng(test_seed(3));
  const NoiseStdDev std{std::ldexp(1.0, -30)};
  const int samples = 200000;
  double sum = 0, sum_sq = 0, fourth = 0;
  for (int i = 0; i < samples; ++i) {
    const double x =
        std::ldexp(static_cast<double>(static_cast<std::int64_t>(rng.gaussian_noise(std))), -64);
    sum += x;
    sum_sq += x * x;
    fourth += x * x * x * x;
  }
  const double var = sum_sq / samples;
  const double expected = std.value * std.value;
  // Sample variance has relative standard deviation sqrt(2/samples) = 0.32%; allow 5 sigma.
  EXPECT_NEAR(var / expected, 1.0, 5 * std::sqrt(2.0 / samples));
  EXPECT_NEAR(sum / samples / std.value, 0.0, 5 / std::sqrt(double(samples)));
  // Kurtosis 3 distinguishes a Gaussian from, e.g., a uniform of the same variance (1.8).
  EXPECT_NEAR(fourth / samples / (var * var), 3.0, 0.1);
}

TEST(Csprng, AMovedFromGeneratorRefusesToDraw) {
  Csprng a(test_seed(9)), reference(test_seed(9));
  const std::uint64_t first = a.next_u64();
  EXPECT_EQ(first, reference.next_u64());
  Csprng b = std::move(a);
  EXPECT_EQ(b.next_u64(), reference.next_u64());  // the stream goes on in its new owner
  EXPECT_THROW(a.next_u64(), std::logic_error);   // NOLINT(bugprone-use-after-move): tested
  Csprng c(test_seed(10));
  c = std::move(b);
  EXPECT_EQ(c.next_u64(), reference.next_u64());
  EXPECT_THROW(b.next_u64(), std::logic_error);  // NOLINT(bugprone-use-after-move)
}

TEST(NoiseSource, ConcurrentCallsGetDistinctStreams) {
  NoiseSource source(test_seed(11));
  constexpr int kThreads = 8, kCalls = 50;
  std::vector<std::vector<std::uint64_t>> firsts(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) firsts[t].push_back(source.next().next_u64());
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::uint64_t> distinct;
  for (const auto& f : firsts) distinct.insert(f.begin(), f.end());
  EXPECT_EQ(distinct.size(), std::size_t{kThreads * kCalls});
}

}  // namespace
}  // namespace fheml::tfhe
