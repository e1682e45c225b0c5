// Parameter search and the built-in table (parameters.h): every default entry is 128-bit secure
// by the curve, meets its failure bound by the noise model, and is what the search finds.
#include "fheml/tfhe/parameters.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <stdexcept>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe {
namespace {

constexpr FailureBound kBounds[] = {FailureBound::k2m40, FailureBound::k2m64};

SearchOptions options_for(FailureBound bound) {
  SearchOptions options;
  options.log2_p_fail = log2_bound(bound);
  return options;
}

TEST(DefaultParameters, SecureByTheCurve) {
  for (FailureBound bound : kBounds) {
    for (std::size_t p = 1; p <= 8; ++p) {
      const PbsParameters& params = default_parameters(MessageBits{p}, bound);
      const std::size_t kn = params.glwe_dimension.value * params.polynomial_size.value;
      EXPECT_TRUE(is_secure_128(params.lwe_dimension.value, params.lwe_noise)) << describe(params);
      EXPECT_TRUE(is_secure_128(kn, params.glwe_noise)) << describe(params);
      // The noise is exactly the curve's minimum (no slack is wasted).
      EXPECT_EQ(params.lwe_noise, min_noise_std_128(params.lwe_dimension.value));
      EXPECT_EQ(params.glwe_noise, min_noise_std_128(kn));
    }
  }
}

TEST(DefaultParameters, MeetFailureBound) {
  for (FailureBound bound : kBounds) {
    for (std::size_t p = 1; p <= 8; ++p) {
      const PbsParameters& params = default_parameters(MessageBits{p}, bound);
      EXPECT_LE(log2_failure_probability(params, MessageBits{p}), log2_bound(bound))
          << "p=" << p << " " << describe(params);
      // Structural sanity: power-of-two N within 2^16, decompositions within the search limits.
      const std::size_t n = params.polynomial_size.value;
      EXPECT_EQ(n & (n - 1), 0u);
      EXPECT_LE(n, 1u << 16);
      EXPECT_LE(params.pbs_base_log.value * params.pbs_level.value, 52u);
      EXPECT_LE(params.ks_base_log.value * params.ks_level.value, 64u);
    }
  }
}

TEST(DefaultParameters, EqualTheSearchResult) {
  const auto start = std::chrono::steady_clock::now();
  for (FailureBound bound : kBounds) {
    for (std::size_t p = 1; p <= 8; ++p) {
      const auto found = search_parameters(MessageBits{p}, options_for(bound));
      ASSERT_TRUE(found.has_value()) << p;
      const PbsParameters& table = default_parameters(MessageBits{p}, bound);
      EXPECT_EQ(*found, table) << "p=" << p << "\nsearch: " << describe(*found)
                               << "\ntable:  " << describe(table);
      EXPECT_LE(estimated_cost(table), 1.0001 * estimated_cost(*found));
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 10.0);  // ~0.05 s at -O2; generous for sanitizer builds
}

TEST(DefaultParameters, CostGrowsWithPrecisionAndStricterBound) {
  for (FailureBound bound : kBounds) {
    for (std::size_t p = 1; p < 8; ++p) {
      EXPECT_LT(estimated_cost(default_parameters(MessageBits{p}, bound)),
                estimated_cost(default_parameters(MessageBits{p + 1}, bound)));
    }
  }
  for (std::size_t p = 1; p <= 8; ++p) {
    EXPECT_LE(estimated_cost(default_parameters(MessageBits{p}, FailureBound::k2m40)),
              estimated_cost(default_parameters(MessageBits{p}, FailureBound::k2m64)));
  }
}

TEST(DefaultParameters, FourBitsIsTheFftSweetSpot) {
  const PbsParameters& params = default_parameters(MessageBits{4});
  EXPECT_EQ(params.glwe_dimension, GlweDimension{1});
  EXPECT_EQ(params.polynomial_size, PolynomialSize{2048});
  EXPECT_EQ(params.pbs_level, DecompositionLevelCount{1});
}

TEST(DefaultParameters, RejectsUnsupportedPrecision) {
  EXPECT_THROW(default_parameters(MessageBits{0}), std::invalid_argument);
  EXPECT_THROW(default_parameters(MessageBits{9}, FailureBound::k2m64), std::invalid_argument);
}

// The cost model against measured latency: real KS+PBS medians (single thread, 3 rounds of at
// least 5 calls, every result decrypted) of the cheapest set per (k, N, bootstrap levels, table
// size N * 2^e) that the search allows at 1 to 6 bits, recorded in one run by
// `fheml_calibrate_cost --check-only --check-bits 1,2,3,4,5,6 --rounds 3`
// (bench/results/cost-check-2026-12-05.json; the project's standard machine, 2-core Intel Xeon
// VM, AVX-512). The model's times come from kernel measurements of the hour before
// (cost-calibration-2026-12-05.json), not from these. (The rows before, 2026-12-04, had no
// extended tables and came from the engine and model of that day.)
struct MeasuredSet {
  std::size_t bits, n, k, big_n, pbs_base, pbs_level, ks_base, ks_level;
  double ms;
  std::size_t extension_log = 0;  // tables of N * 2^extension_log (bootstrap.h)
};
// One measured set per line.
// clang-format off
constexpr MeasuredSet kMeasured[] = {
    {1, 570, 1, 1024, 7, 2, 2, 5, 4.08, 0},
    {1, 569, 1, 1024, 7, 2, 2, 5, 9.25, 1},
    {1, 599, 1, 2048, 23, 1, 2, 5, 5.76, 0},
    {1, 599, 1, 2048, 23, 1, 2, 5, 12.52, 1},
    {1, 571, 2, 512, 8, 2, 2, 5, 3.62, 0},
    {1, 569, 2, 512, 8, 2, 2, 5, 7.89, 1},
    {1, 685, 2, 1024, 23, 1, 5, 2, 5.00, 0},
    {1, 599, 2, 1024, 23, 1, 2, 5, 10.41, 1},
    {1, 625, 3, 512, 18, 1, 3, 3, 2.96, 0},
    {1, 585, 3, 512, 18, 1, 2, 5, 6.00, 1},
    {1, 585, 3, 512, 18, 1, 2, 5, 10.53, 2},
    {1, 639, 3, 1024, 23, 1, 3, 4, 9.91, 0},
    {2, 611, 1, 1024, 6, 3, 2, 5, 7.50, 0},
    {2, 662, 1, 2048, 23, 1, 3, 4, 6.60, 0},
    {2, 637, 1, 2048, 23, 1, 2, 6, 15.90, 1},
    {2, 616, 2, 512, 6, 3, 2, 6, 6.06, 0},
    {2, 694, 2, 1024, 23, 1, 4, 3, 5.34, 0},
    {2, 662, 2, 1024, 23, 1, 3, 4, 10.81, 1},
    {2, 720, 2, 2048, 23, 1, 4, 3, 14.20, 0},
    {2, 691, 3, 512, 18, 1, 4, 3, 3.35, 0},
    {2, 652, 3, 512, 18, 1, 3, 4, 6.48, 1},
    {2, 625, 3, 512, 18, 1, 2, 6, 12.51, 2},
    {2, 681, 3, 1024, 23, 1, 3, 4, 10.45, 0},
    {3, 689, 1, 1024, 6, 3, 2, 6, 8.19, 0},
    {3, 660, 1, 1024, 6, 3, 2, 6, 16.85, 1},
    {3, 707, 1, 2048, 23, 1, 3, 4, 6.91, 0},
    {3, 705, 1, 2048, 23, 1, 3, 4, 14.34, 1},
    {3, 742, 1, 4096, 22, 1, 3, 4, 17.97, 0},
    {3, 673, 2, 512, 6, 3, 2, 6, 15.88, 1},
    {3, 751, 2, 1024, 23, 1, 4, 3, 5.43, 0},
    {3, 707, 2, 1024, 23, 1, 3, 4, 11.61, 1},
    {3, 680, 2, 1024, 23, 1, 2, 6, 20.32, 2},
    {3, 775, 2, 2048, 23, 1, 4, 3, 15.81, 0},
    {3, 706, 3, 512, 18, 1, 3, 4, 7.34, 1},
    {3, 669, 3, 512, 18, 1, 2, 6, 12.86, 2},
    {3, 667, 3, 512, 18, 1, 2, 6, 23.44, 3},
    {3, 778, 3, 1024, 23, 1, 4, 3, 11.53, 0},
    {3, 728, 3, 1024, 23, 1, 3, 4, 19.90, 1},
    {4, 757, 1, 2048, 23, 1, 3, 5, 7.85, 0},
    {4, 746, 1, 2048, 23, 1, 3, 5, 15.60, 1},
    {4, 718, 1, 2048, 23, 1, 2, 7, 25.95, 2},
    {4, 773, 1, 4096, 22, 1, 3, 5, 21.06, 0},
    {4, 757, 2, 1024, 23, 1, 3, 5, 12.97, 1},
    {4, 721, 2, 1024, 23, 1, 2, 7, 21.48, 2},
    {4, 849, 2, 2048, 23, 1, 5, 3, 17.55, 0},
    {4, 773, 2, 2048, 23, 1, 3, 5, 30.65, 1},
    {4, 728, 3, 512, 18, 1, 2, 7, 15.49, 2},
    {4, 713, 3, 512, 18, 1, 2, 7, 26.17, 3},
    {4, 774, 3, 1024, 23, 1, 3, 5, 21.55, 1},
    {4, 864, 3, 2048, 23, 1, 5, 3, 31.78, 0},
    {5, 798, 1, 2048, 23, 1, 3, 5, 17.72, 1},
    {5, 763, 1, 2048, 23, 1, 2, 7, 29.63, 2},
    {5, 760, 1, 2048, 23, 1, 2, 7, 53.11, 3},
    {5, 858, 1, 4096, 22, 1, 4, 4, 22.41, 0},
    {5, 815, 1, 4096, 22, 1, 3, 5, 37.55, 1},
    {5, 868, 1, 8192, 22, 1, 4, 4, 49.25, 0},
    {5, 798, 2, 1024, 23, 1, 3, 5, 23.97, 2},
    {5, 763, 2, 1024, 23, 1, 2, 7, 40.93, 3},
    {5, 829, 2, 2048, 23, 1, 3, 5, 32.43, 1},
    {5, 815, 2, 2048, 23, 1, 3, 5, 53.03, 2},
    {5, 883, 2, 4096, 23, 1, 4, 4, 46.24, 0},
    {5, 758, 3, 512, 12, 2, 2, 8, 58.33, 3},
    {5, 817, 3, 1024, 23, 1, 3, 5, 37.45, 2},
    {5, 778, 3, 1024, 23, 1, 2, 8, 62.36, 3},
    {5, 848, 3, 2048, 23, 1, 3, 5, 50.87, 1},
    {5, 898, 3, 4096, 23, 1, 4, 4, 73.24, 0},
    {6, 814, 1, 2048, 23, 1, 2, 8, 31.71, 2},
    {6, 801, 1, 2048, 23, 1, 2, 8, 57.45, 3},
    {6, 798, 1, 2048, 23, 1, 2, 8, 107.93, 4},
    {6, 869, 1, 4096, 22, 1, 3, 6, 42.53, 1},
    {6, 831, 1, 4096, 22, 1, 2, 8, 70.63, 2},
    {6, 942, 1, 8192, 22, 1, 4, 4, 54.05, 0},
    {6, 915, 1, 8192, 22, 1, 4, 4, 91.04, 1},
    {6, 961, 1, 16384, 22, 1, 4, 4, 120.89, 0},
    {6, 814, 2, 1024, 23, 1, 2, 8, 43.26, 3},
    {6, 801, 2, 1024, 23, 1, 2, 8, 79.15, 4},
    {6, 869, 2, 2048, 23, 1, 3, 6, 56.30, 2},
    {6, 830, 2, 2048, 23, 1, 2, 8, 98.50, 3},
    {6, 894, 2, 4096, 23, 1, 3, 6, 83.84, 1},
    {6, 879, 2, 4096, 23, 1, 3, 6, 141.37, 2},
    {6, 1021, 2, 8192, 22, 1, 6, 3, 103.38, 0},
    {6, 798, 3, 512, 12, 2, 2, 8, 110.74, 4},
    {6, 833, 3, 1024, 23, 1, 2, 8, 65.65, 3},
    {6, 819, 3, 1024, 23, 1, 2, 8, 116.57, 4},
    {6, 884, 3, 2048, 23, 1, 3, 6, 85.25, 2},
    {6, 908, 3, 4096, 23, 1, 3, 6, 128.33, 1},
};
// clang-format on

PbsParameters measured_parameters(const MeasuredSet& m) {
  return PbsParameters{LweDimension{m.n},
                       GlweDimension{m.k},
                       PolynomialSize{m.big_n},
                       min_noise_std_128(m.n),
                       min_noise_std_128(m.k * m.big_n),
                       DecompositionBaseLog{m.pbs_base},
                       DecompositionLevelCount{m.pbs_level},
                       DecompositionBaseLog{m.ks_base},
                       DecompositionLevelCount{m.ks_level},
                       m.extension_log};
}

TEST(CostModel, OrdersMeasuredBootstrapsAsTheirLatency) {
  // Pairs measured at least 20% apart are ordered the same way by the model, but for at most 1%
  // of them (the machine's noise between runs is ~10%, and more for the shapes whose working set
  // sits at a cache level's size: k = 2, N = 512, 3 levels ran 11.18 ms at 2 bits on 2026-12-04
  // and 6.06 ms on 2026-12-05; in this run 3 pairs are misordered, 1.22-1.26x apart: that
  // shape against k = 1, N = 1024, and two with k = 3 on one side). Concrete's operation counts
  // misordered 4 of the 2026-12-04 run's 100 pairs.
  std::size_t pairs = 0;
  std::size_t misordered = 0;
  for (const MeasuredSet& a : kMeasured) {
    for (const MeasuredSet& b : kMeasured) {
      if (measured_parameters(a) == measured_parameters(b)) continue;
      if (a.bits != b.bits || !(a.ms * 1.2 <= b.ms)) continue;
      ++pairs;
      if (estimated_cost(measured_parameters(a)) < estimated_cost(measured_parameters(b))) continue;
      ++misordered;
      std::printf("misordered: %s (%.2f ms) against %s (%.2f ms)\n",
                  describe(measured_parameters(a)).c_str(), a.ms,
                  describe(measured_parameters(b)).c_str(), b.ms);
    }
  }
  EXPECT_GE(pairs, 300u);
  RecordProperty("pairs", std::to_string(pairs));
  RecordProperty("misordered", std::to_string(misordered));
  EXPECT_LE(static_cast<double>(misordered), 0.01 * static_cast<double>(pairs))
      << misordered << " of " << pairs << " pairs misordered";
}

TEST(CostModel, TheSearchPicksAMeasuredFastestSet) {
  // At each precision the search's set is one of the measured ones and within the noise (10%) of
  // the fastest of them.
  for (const std::size_t bits : {1, 2, 3, 4, 5, 6}) {
    const PbsParameters pick = *search_parameters(MessageBits{bits});
    double fastest = std::numeric_limits<double>::infinity();
    double picked = -1;
    for (const MeasuredSet& m : kMeasured) {
      if (m.bits != bits) continue;
      fastest = std::min(fastest, m.ms);
      if (measured_parameters(m) == pick) picked = m.ms;
    }
    ASSERT_GT(picked, 0) << bits << " bits: the search picked " << describe(pick)
                         << ", which the recorded check did not measure";
    EXPECT_LE(picked, 1.1 * fastest) << bits << " bits: " << describe(pick);
  }
}

TEST(CostModel, EstimatesMeasuredLatencyWithin40Percent) {
  // Absolute values: nanoseconds of the calibration machine, measured an hour before these sets.
  // At least 95% of the sets within 40%, every one within a factor 1.75: the 4 of 86 above 40%
  // (1.43-1.68x) are all k >= 2 at N = 512, the shapes at a cache level's size (see above).
  std::size_t outside = 0;
  for (const MeasuredSet& m : kMeasured) {
    const double ratio = estimated_cost(measured_parameters(m)) * 1e-6 / m.ms;
    EXPECT_GT(ratio, 1 / 1.75) << describe(measured_parameters(m));
    EXPECT_LT(ratio, 1.75) << describe(measured_parameters(m));
    if (std::abs(ratio - 1.0) > 0.4) ++outside;
  }
  EXPECT_LE(static_cast<double>(outside), 0.05 * static_cast<double>(std::size(kMeasured)))
      << outside << " sets more than 40% off";
}

TEST(Search, NoParameterSetInTheRangesIsCheaper) {
  // Brute force over a small space (k = 1, N = 2048, n in 700..800, all decompositions) checks
  // that the pruned search misses nothing there.
  SearchOptions options;
  options.min_glwe_dimension = options.max_glwe_dimension = 1;
  options.min_log2_polynomial_size = options.max_log2_polynomial_size = 11;
  options.min_lwe_dimension = 700;
  options.max_lwe_dimension = 800;
  options.max_pbs_level = 3;
  options.max_ks_level = 6;
  const MessageBits p{4};
  const auto found = search_parameters(p, options);
  ASSERT_TRUE(found.has_value());
  EXPECT_LE(log2_failure_probability(*found, p), options.log2_p_fail);
  const NoiseStdDev glwe = min_noise_std_128(2048);
  double best = std::numeric_limits<double>::infinity();
  for (std::size_t n = 700; n <= 800; ++n) {
    for (std::size_t pl = 1; pl <= 3; ++pl) {
      for (std::size_t pb = 1; pb * pl <= 52; ++pb) {
        for (std::size_t kl = 1; kl <= 6; ++kl) {
          for (std::size_t kb = 1; kb * kl <= 64; ++kb) {
            const PbsParameters c{LweDimension{n},
                                  GlweDimension{1},
                                  PolynomialSize{2048},
                                  min_noise_std_128(n),
                                  glwe,
                                  DecompositionBaseLog{pb},
                                  DecompositionLevelCount{pl},
                                  DecompositionBaseLog{kb},
                                  DecompositionLevelCount{kl}};
            if (estimated_cost(c) < best && log2_failure_probability(c, p) <= -40.0) {
              best = estimated_cost(c);
            }
          }
        }
      }
    }
  }
  EXPECT_DOUBLE_EQ(estimated_cost(*found), best);
}

TEST(Search, Nu2AndManyLutNeedMore) {
  const auto plain = search_parameters(MessageBits{3});
  SearchOptions heavy;
  heavy.nu2 = 1024;  // the 3-bit set has slack for a few bits of nu2
  const auto weighted = search_parameters(MessageBits{3}, heavy);
  ASSERT_TRUE(plain && weighted);
  EXPECT_LE(log2_failure_probability(*weighted, MessageBits{3}, 1024), -40.0);
  EXPECT_GT(estimated_cost(*weighted), estimated_cost(*plain));
  // A many-LUT with 2 tables on 3 bits is constrained like 4 bits.
  const auto many = search_parameters(many_lut_precision(MessageBits{3}, 1));
  ASSERT_TRUE(many);
  EXPECT_EQ(*many, default_parameters(MessageBits{4}));
}

TEST(Search, ReturnsNulloptWhenNothingFits) {
  SearchOptions tiny;
  tiny.max_log2_polynomial_size = 10;  // N <= 1024 cannot carry 8 bits
  tiny.max_glwe_dimension = 1;
  EXPECT_FALSE(search_parameters(MessageBits{8}, tiny).has_value());
}

TEST(Search, RejectsInvalidOptions) {
  SearchOptions o;
  EXPECT_THROW(search_parameters(MessageBits{0}, o), std::invalid_argument);
  EXPECT_THROW(search_parameters(MessageBits{17}, o), std::invalid_argument);
  o.log2_p_fail = 0;
  EXPECT_THROW(search_parameters(MessageBits{4}, o), std::invalid_argument);
  o = {};
  o.nu2 = 0;
  EXPECT_THROW(search_parameters(MessageBits{4}, o), std::invalid_argument);
  o = {};
  o.max_log2_polynomial_size = 17;
  EXPECT_THROW(search_parameters(MessageBits{4}, o), std::invalid_argument);
  o = {};
  o.min_lwe_dimension = 400;
  EXPECT_THROW(search_parameters(MessageBits{4}, o), std::invalid_argument);
  o = {};
  o.min_glwe_dimension = 2;
  o.max_glwe_dimension = 1;
  EXPECT_THROW(search_parameters(MessageBits{4}, o), std::invalid_argument);
  o = {};
  o.max_ks_base_log_times_level = 65;
  EXPECT_THROW(search_parameters(MessageBits{4}, o), std::invalid_argument);
}

TEST(Fingerprint, StableAndSensitive) {
  const PbsParameters& base = default_parameters(MessageBits{4});
  EXPECT_EQ(fingerprint(base), fingerprint(PbsParameters{base}));
  std::set<std::uint64_t> seen;
  for (FailureBound bound : kBounds) {
    for (std::size_t p = 1; p <= 8; ++p) {
      seen.insert(fingerprint(default_parameters(MessageBits{p}, bound)));
    }
  }
  EXPECT_EQ(seen.size(), 16u);
  PbsParameters changed = base;
  changed.ks_level.value += 1;
  EXPECT_NE(fingerprint(changed), fingerprint(base));
  changed = base;
  changed.glwe_noise.value = std::nextafter(base.glwe_noise.value, 1.0);
  EXPECT_NE(fingerprint(changed), fingerprint(base));
  changed = base;
  changed.extension_log = 1;
  EXPECT_NE(fingerprint(changed), fingerprint(base));
  changed = base;  // swapping two fields of equal type must change the hash
  std::swap(changed.pbs_base_log, changed.ks_base_log);
  EXPECT_NE(fingerprint(changed), fingerprint(base));
}

TEST(Describe, OneLineWithTheFields) {
  EXPECT_NE(describe(default_parameters(MessageBits{8})).find("lut=N*2^4"), std::string::npos);
  const std::string text = describe(default_parameters(MessageBits{4}));
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_NE(text.find("N=2048"), std::string::npos);
  EXPECT_NE(text.find("k=1"), std::string::npos);
  EXPECT_NE(text.find("glwe_std=2^-49.95"), std::string::npos);
}

TEST(EstimatedCost, IsTheCalibratedFormula) {
  // parameters.cpp, "Cost model": a key switch streams (k N - n) l (n+1) words at 0.310 ns (the
  // small key shares the big key's first n coefficients); a CMux at k = 1, N = 2048, one level
  // is its measured 10381 ns. The 4-bit set, by hand:
  const PbsParameters& p = default_parameters(MessageBits{4});  // n=757 k=1 N=2048 l=1 ks l=5
  ASSERT_EQ(p.lwe_dimension, LweDimension{757});
  const double keyswitch = 0.310 * (2048 - 757) * 5 * 758;
  EXPECT_NEAR(estimated_cost(p), keyswitch + 757 * 10381.0, 1e-9 * estimated_cost(p));
  // A second bootstrap level is its own measured CMux; each key switch level streams the key
  // once more.
  PbsParameters two = p;
  two.pbs_level = DecompositionLevelCount{2};
  EXPECT_NEAR(estimated_cost(two) - estimated_cost(p), 757 * (20271.0 - 10381.0),
              1e-9 * estimated_cost(two));
  PbsParameters six = p;
  six.ks_level = DecompositionLevelCount{6};
  EXPECT_NEAR(estimated_cost(six) - estimated_cost(p), keyswitch / 5, 1e-9 * estimated_cost(six));
  // From another big key (of another k*N) every coefficient is switched.
  EXPECT_NEAR(estimated_cost(p, LweDimension{4096}) - estimated_cost(p),
              0.310 * (4096 - (2048 - 757)) * 5 * 758, 1e-9 * estimated_cost(p));
  // Outside the measured shapes (k = 4), the fitted formula: 0.146 ns per (k+1) l N log2 N and
  // 0.537 ns per (k+1)^2 l N.
  PbsParameters wide = p;
  wide.glwe_dimension = GlweDimension{4};
  wide.polynomial_size = PolynomialSize{512};
  const double cmux = 0.146 * 5 * 1 * 512 * 9 + 0.537 * 25 * 1 * 512;
  EXPECT_NEAR(estimated_cost(wide), keyswitch + 757 * cmux, 1e-9 * estimated_cost(wide));
  // Tables of N * 2^e: 2^e CMuxes of the key's N per step, times the factor measured for that
  // shape (k = 1, N = 2048, one level: 1.110, 1.050, 0.980, 0.966 for e = 1..4; e = 5, 6 as 4).
  for (const auto& [e, factor] : {std::pair{1, 1.110}, std::pair{2, 1.050}, std::pair{3, 0.980},
                                  std::pair{4, 0.966}, std::pair{6, 0.966}}) {
    PbsParameters extended = p;
    extended.extension_log = static_cast<std::size_t>(e);
    EXPECT_NEAR(estimated_cost(extended), keyswitch + 757 * 10381.0 * std::exp2(e) * factor,
                1e-9 * estimated_cost(extended))
        << e;
  }
  // Outside the measured shapes (N = 8192, whose CMux is its measured 50090 ns), the median
  // factor of its k and e: 0.940 at k = 1, e = 4.
  PbsParameters large = p;
  large.polynomial_size = PolynomialSize{8192};
  large.extension_log = 4;
  EXPECT_NEAR(estimated_cost(large), 0.310 * (8192 - 757) * 5 * 758 + 757 * 16 * 0.940 * 50090.0,
              1e-9 * estimated_cost(large));
}

TEST(DefaultParameters, WideLookupsUseTablesLargerThanTheKey) {
  // From 5 bits on, the cheapest sets keep the 4-bit set's ring (k = 1, N = 2048, one level) and
  // read tables of N * 2^(p - 4): the 8-bit keys are those of N = 2048 (56 MiB of bootstrap key
  // instead of 2 GiB at N = 2^15).
  for (std::size_t p = 5; p <= 8; ++p) {
    const PbsParameters& params = default_parameters(MessageBits{p});
    EXPECT_EQ(params.polynomial_size, PolynomialSize{2048}) << p;
    EXPECT_EQ(params.extension_log, p - 4) << p;
    EXPECT_EQ(lookup_polynomial_size(params).value, std::size_t{2048} << (p - 4)) << p;
  }
}

TEST(Search, ExtensionRangesAreHonoured) {
  SearchOptions classic;
  classic.max_extension_log = 0;
  const auto eight = search_parameters(MessageBits{8}, classic);
  ASSERT_TRUE(eight);
  EXPECT_EQ(eight->extension_log, 0u);
  EXPECT_EQ(eight->polynomial_size, PolynomialSize{32768});  // the set before extension
  SearchOptions forced;
  forced.min_extension_log = forced.max_extension_log = 2;
  const auto four = search_parameters(MessageBits{4}, forced);
  ASSERT_TRUE(four);
  EXPECT_EQ(four->extension_log, 2u);
  EXPECT_GT(estimated_cost(*four), estimated_cost(default_parameters(MessageBits{4})));
  SearchOptions bad;
  bad.min_extension_log = 3;
  bad.max_extension_log = 2;
  EXPECT_THROW(search_parameters(MessageBits{4}, bad), std::invalid_argument);
  bad = {};
  bad.max_extension_log = 7;  // 2^7 > kMaxExtension
  EXPECT_THROW(search_parameters(MessageBits{4}, bad), std::invalid_argument);
}

}  // namespace
}  // namespace fheml::tfhe
