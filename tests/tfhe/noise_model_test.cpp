// Security curve and noise model (security.h, noise.h): golden values from Concrete and TFHE-rs,
// monotonicity, failure-probability arithmetic and argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe {
namespace {

TEST(SecurityCurve, MatchesConcreteLine) {
  // zama-ai/concrete tools/parameter-curves/concrete-security-curves-rust/src/gaussian/
  // curves_gen.rs: log2(sigma) = -0.025696778711484593 * d + 2.675931372549016.
  EXPECT_DOUBLE_EQ(min_log2_noise_std_128(2048), -0.025696778711484593 * 2048 + 2.675931372549016);
  EXPECT_NEAR(min_log2_noise_std_128(2048), -49.9511, 1e-4);
  EXPECT_NEAR(min_log2_noise_std_128(450), -8.8876, 1e-4);
  EXPECT_DOUBLE_EQ(min_noise_std_128(1000).value, std::exp2(min_log2_noise_std_128(1000)));
}

TEST(SecurityCurve, GoldenValuesOfConcreteSecurityCurves) {
  // .../concrete-security-curves-rust/src/gaussian/security.rs, test `it_works`:
  // secure_log2_std(512, 64) lies in (-12, -10).
  EXPECT_GT(min_log2_noise_std_128(512), -12.0);
  EXPECT_LT(min_log2_noise_std_128(512), -10.0);
  // Same file, `security_security_glwe_variance_low`: k = 10, N = 2^14 on 64 bits gives the
  // floor std 2.168404344971009e-19 = 2^-62.
  EXPECT_DOUBLE_EQ(min_noise_std_128(10 * (1u << 14)).value, 2.168404344971009e-19);
}

TEST(SecurityCurve, FloorAtTwoBitsOfTheTorus) {
  // The line crosses log2 = -62 near d = 2517 (security_weights.rs floors it at 2^(2-64)).
  EXPECT_GT(min_log2_noise_std_128(2516), -62.0);
  EXPECT_DOUBLE_EQ(min_log2_noise_std_128(2518), -62.0);
  EXPECT_DOUBLE_EQ(min_log2_noise_std_128(1 << 16), -62.0);
}

TEST(SecurityCurve, MonotoneNonIncreasing) {
  for (std::size_t d = 450; d < 5000; ++d) {
    EXPECT_LE(min_noise_std_128(d + 1).value, min_noise_std_128(d).value) << d;
  }
}

TEST(SecurityCurve, IsSecure) {
  const NoiseStdDev at_curve = min_noise_std_128(742);
  EXPECT_TRUE(is_secure_128(742, at_curve));
  EXPECT_TRUE(is_secure_128(742, NoiseStdDev{at_curve.value * 2}));
  EXPECT_FALSE(is_secure_128(742, NoiseStdDev{at_curve.value * 0.99}));
  // More dimension with the same noise is still secure; less is not.
  EXPECT_TRUE(is_secure_128(800, at_curve));
  EXPECT_FALSE(is_secure_128(700, at_curve));
  EXPECT_FALSE(is_secure_128(449, NoiseStdDev{0.25}));  // outside the curve's domain
  // A few ulps below the curve (another libm's exp2) pass; 0.01 bit below fails.
  for (const std::size_t n : {450u, 742u, 1024u, 2048u}) {
    double v = min_noise_std_128(n).value;
    for (int ulp = 0; ulp < 4; ++ulp) v = std::nextafter(v, 0.0);
    EXPECT_TRUE(is_secure_128(n, NoiseStdDev{v})) << n;
    EXPECT_FALSE(is_secure_128(n, NoiseStdDev{min_noise_std_128(n).value * std::exp2(-0.01)})) << n;
  }
  EXPECT_FALSE(is_secure_128(742, NoiseStdDev{std::nan("")}));
  EXPECT_FALSE(is_secure_128(742, NoiseStdDev{0.0}));
  EXPECT_TRUE(is_secure_128(2048, NoiseStdDev{std::exp2(-49.9)}));
  EXPECT_FALSE(is_secure_128(2048, NoiseStdDev{std::exp2(-50.0)}));
}

TEST(SecurityCurve, The132BitLineAsksForMoreNoiseAtEveryDimension) {
  // zama-ai/concrete curves_gen.rs, 132-bit entry (commit 4d6afba9).
  EXPECT_DOUBLE_EQ(min_log2_noise_std(742, SecurityLevel::k132),
                   -0.024891456582633045 * 742 + 2.65734593837534);
  EXPECT_DOUBLE_EQ(min_log2_noise_std(742, SecurityLevel::k128), min_log2_noise_std_128(742));
  for (std::size_t n = kMinSecureDimension; n <= 2400; n += 25) {
    const double extra =
        min_log2_noise_std(n, SecurityLevel::k132) - min_log2_noise_std(n, SecurityLevel::k128);
    EXPECT_GT(extra, 0.3) << n;  // about half a bit more noise at the usual dimensions
    EXPECT_LT(extra, 2.0) << n;
    EXPECT_FALSE(is_secure(n, min_noise_std(n, SecurityLevel::k128), SecurityLevel::k132)) << n;
    EXPECT_TRUE(is_secure(n, min_noise_std(n, SecurityLevel::k132), SecurityLevel::k128)) << n;
  }
  EXPECT_THROW((void)min_log2_noise_std(449, SecurityLevel::k132), std::invalid_argument);
}

TEST(SecurityCurve, ASearchAt132BitsMeetsThatLevelAndItsBound) {
  for (const std::size_t p : {2u, 4u, 6u}) {
    SearchOptions options;
    options.security = SecurityLevel::k132;
    const auto strict = search_parameters(MessageBits{p}, options);
    ASSERT_TRUE(strict.has_value()) << p;
    EXPECT_EQ(achieved_security(*strict), SecurityLevel::k132) << describe(*strict);
    EXPECT_NO_THROW(validate(*strict));
    EXPECT_LE(log2_failure_probability(*strict, MessageBits{p}, 1.0), -40.0);
    const PbsParameters& usual = default_parameters(MessageBits{p});
    EXPECT_EQ(achieved_security(usual), SecurityLevel::k128) << describe(usual);
    EXPECT_GE(estimated_cost(*strict), estimated_cost(usual)) << p;
  }
}

TEST(SecurityCurve, RejectsDimensionsBelowTheCurve) {
  EXPECT_THROW(min_noise_std_128(449), std::invalid_argument);
  EXPECT_THROW(min_log2_noise_std_128(0), std::invalid_argument);
  try {
    min_noise_std_128(100);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("450"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("100"), std::string::npos);
  }
}

TEST(NoiseModel, BlindRotationMatchesConcreteGolden) {
  // zama-ai/concrete backends/concrete-cpu/noise-model/src/gaussian_noise/noise/blind_rotate.rs,
  // test `security_variance_bootstrap_1`: n = 2048, k = 2, N = 4096, B = 2^24, l = 2, 64-bit,
  // BSK at the (floored) 128-bit minimum: modular variance 4.078296369990673e31.
  const double variance = blind_rotation_variance(
      LweDimension{2048}, GlweDimension{2}, PolynomialSize{4096}, DecompositionBaseLog{24},
      DecompositionLevelCount{2}, min_noise_std_128(2 * 4096));
  EXPECT_NEAR(variance * std::exp2(128) / 4.078296369990673e31, 1.0, 1e-9);
}

TEST(NoiseModel, KeyswitchMatchesConcreteGolden) {
  // zama-ai/concrete backends/concrete-cpu/noise-model/src/gaussian_noise/noise/keyswitch.rs,
  // test `golden_python_prototype_security_variance_keyswitch_2`: input 2048, B = 2^24, l = 2,
  // KSK noise at the minimum for dimension 512 of the curve of that time (slope
  // -0.02640502876522622, bias 2.4826422691043177: concrete-cpu noise-model
  // security/security_weight.rs), modular variance 7.407691550271225e48.
  const NoiseStdDev ksk{std::exp2(-0.02640502876522622 * 512 + 2.4826422691043177)};
  const double variance = keyswitch_variance(LweDimension{2048}, DecompositionBaseLog{24},
                                             DecompositionLevelCount{2}, ksk);
  EXPECT_NEAR(variance * std::exp2(128) / 7.407691550271225e48, 1.0, 1e-9);
}

TEST(NoiseModel, FftConstantMatchesTfheRs) {
  // zama-ai/tfhe-rs tfhe/src/core_crypto/commons/noise_formulas/lwe_programmable_bootstrap.rs:
  // FFT term 2.06537277069845e-33 * B^2 * l * N^2 * (k+1).
  const double v = fft_external_product_variance(
      GlweDimension{1}, PolynomialSize{2048}, DecompositionBaseLog{23}, DecompositionLevelCount{1});
  EXPECT_NEAR(v / (2.06537277069845e-33 * std::exp2(46) * 2048.0 * 2048.0 * 2.0), 1.0, 1e-10);
}

TEST(NoiseModel, ModulusSwitchMatchesTfheRs) {
  // zama-ai/tfhe-rs tfhe/src/core_crypto/commons/noise_formulas/modulus_switch.rs, dominant terms:
  // n/(24 (2N)^2) + 1/(12 (2N)^2).
  const double v = modulus_switch_variance(LweDimension{742}, PolynomialSize{2048});
  const double expected = 742.0 / (24.0 * 4096.0 * 4096.0) + 1.0 / (12.0 * 4096.0 * 4096.0);
  EXPECT_NEAR(v / expected, 1.0, 1e-12);
}

TEST(NoiseModel, DecompositionRounding) {
  EXPECT_NEAR(decomposition_rounding_variance(DecompositionBaseLog{4}, DecompositionLevelCount{3}) /
                  (std::exp2(-24.0) / 12.0),
              1.0, 1e-12);
  // An exact decomposition (B^l = q) has no rounding error.
  EXPECT_EQ(decomposition_rounding_variance(DecompositionBaseLog{16}, DecompositionLevelCount{4}),
            0.0);
}

TEST(NoiseModel, Monotonicity) {
  const NoiseStdDev ksk = min_noise_std_128(700);
  // Key switch grows with the input dimension and with the KSK noise.
  EXPECT_LT(keyswitch_variance(LweDimension{1024}, DecompositionBaseLog{3},
                               DecompositionLevelCount{5}, ksk),
            keyswitch_variance(LweDimension{2048}, DecompositionBaseLog{3},
                               DecompositionLevelCount{5}, ksk));
  EXPECT_LT(keyswitch_variance(LweDimension{2048}, DecompositionBaseLog{3},
                               DecompositionLevelCount{5}, ksk),
            keyswitch_variance(LweDimension{2048}, DecompositionBaseLog{3},
                               DecompositionLevelCount{5}, NoiseStdDev{ksk.value * 2}));
  // Modulus switch shrinks with N and grows with n.
  EXPECT_GT(modulus_switch_variance(LweDimension{742}, PolynomialSize{1024}),
            modulus_switch_variance(LweDimension{742}, PolynomialSize{2048}));
  EXPECT_LT(modulus_switch_variance(LweDimension{742}, PolynomialSize{2048}),
            modulus_switch_variance(LweDimension{800}, PolynomialSize{2048}));
  // Blind rotation is linear in n.
  const auto br = [](std::size_t n) {
    return blind_rotation_variance(LweDimension{n}, GlweDimension{1}, PolynomialSize{2048},
                                   DecompositionBaseLog{23}, DecompositionLevelCount{1},
                                   min_noise_std_128(2048));
  };
  EXPECT_NEAR(br(1000) / br(500), 2.0, 1e-12);
  // The failure probability grows with nu2 and with the precision.
  const PbsParameters& params = default_parameters(MessageBits{4});
  EXPECT_LT(log2_failure_probability(params, MessageBits{4}, 1.0),
            log2_failure_probability(params, MessageBits{4}, 4.0));
  EXPECT_LT(log2_failure_probability(params, MessageBits{3}),
            log2_failure_probability(params, MessageBits{4}));
}

TEST(NoiseModel, VarianceAtLookupAddsKeyswitchAndModulusSwitch) {
  const PbsParameters& params = default_parameters(MessageBits{4});
  const std::size_t kn = params.glwe_dimension.value * params.polynomial_size.value;
  // From its own big key, the k*N - n coefficients the small key does not share.
  const LweDimension switched{kn - params.lwe_dimension.value};
  const double rounding = keyswitch_rounding_variance(switched, params.lwe_dimension,
                                                      params.ks_base_log, params.ks_level) +
                          shared_prefix_rounding_variance(params.lwe_dimension);
  // The 32-bit key switch's rounding is negligible next to the key switch itself.
  EXPECT_LT(rounding, 1e-3 * keyswitch_variance(switched, params.ks_base_log, params.ks_level,
                                                params.lwe_noise));
  const double ks =
      keyswitch_variance(switched, params.ks_base_log, params.ks_level, params.lwe_noise) +
      rounding;
  const double ms = modulus_switch_variance(params.lwe_dimension, params.polynomial_size);
  EXPECT_DOUBLE_EQ(variance_at_lookup(params, 0.0), ks + ms);
  EXPECT_DOUBLE_EQ(variance_at_lookup(params, 1e-9), 1e-9 + ks + ms);
  EXPECT_DOUBLE_EQ(variance_at_lookup(params, LweDimension{kn}, 0.0), ks + ms);
  // From another big key (of another k*N), every coefficient is switched.
  const LweDimension other{2 * kn};
  EXPECT_DOUBLE_EQ(
      variance_at_lookup(params, other, 0.0),
      keyswitch_variance(other, params.ks_base_log, params.ks_level, params.lwe_noise) +
          keyswitch_rounding_variance(other, params.lwe_dimension, params.ks_base_log,
                                      params.ks_level) +
          ms);
  EXPECT_DOUBLE_EQ(
      ciphertext_variance(params),
      std::max(pbs_output_variance(params), params.glwe_noise.value * params.glwe_noise.value));
}

TEST(FailureProbability, Log2ErfcExactRegion) {
  // Reference values computed with mpmath (40 digits): log2(erfc(1)), log2(erfc(5)).
  EXPECT_NEAR(log2_erfc(1.0), -2.668416696781600, 1e-12);
  EXPECT_NEAR(log2_erfc(5.0), -39.24258845511531, 1e-10);
  EXPECT_DOUBLE_EQ(log2_erfc(0.0), 0.0);
}

TEST(FailureProbability, Log2ErfcNeverUnderflows) {
  // erfc underflows to 0 from x ~ 27.3; the asymptotic form keeps going (mpmath references).
  EXPECT_NEAR(log2_erfc(26.0), -980.7891005399546, 1e-8);
  EXPECT_NEAR(log2_erfc(30.0), -1304.158975847505, 1e-8);
  EXPECT_NEAR(log2_erfc(100.0), -14434.42008526988, 1e-6);
  EXPECT_NEAR(log2_erfc(1000.0), -1442705.832422034, 1e-3);
  EXPECT_TRUE(std::isfinite(log2_erfc(1e6)));
  EXPECT_EQ(log2_erfc(std::numeric_limits<double>::infinity()),
            -std::numeric_limits<double>::infinity());
  // Continuous across the switch between the two forms.
  EXPECT_NEAR(log2_erfc(25.0 - 1e-9), log2_erfc(25.0), 1e-6);
  // Strictly decreasing.
  double previous = log2_erfc(0.0);
  for (double x = 0.5; x < 60.0; x += 0.5) {
    const double value = log2_erfc(x);
    EXPECT_LT(value, previous) << x;
    previous = value;
  }
  EXPECT_THROW(log2_erfc(std::nan("")), std::invalid_argument);
}

TEST(FailureProbability, SigmaForTwoToTheMinus40And64) {
  // P(|e| >= t) = erfc(t / (sigma sqrt 2)) = 2^-40 at t / sigma = 7.143552034352189 and 2^-64 at
  // 9.155293772686073 (solved with mpmath).
  const MessageBits p{4};
  const double half_box = std::exp2(-6.0);
  const double sigma40 = half_box / 7.143552034352189;
  EXPECT_NEAR(log2_failure_probability_for_variance(p, sigma40 * sigma40), -40.0, 1e-9);
  const double sigma64 = half_box / 9.155293772686073;
  EXPECT_NEAR(log2_failure_probability_for_variance(p, sigma64 * sigma64), -64.0, 1e-9);
  // max_variance_for_failure is the inverse.
  EXPECT_NEAR(std::sqrt(max_variance_for_failure(p, -40.0)) / sigma40, 1.0, 1e-10);
  EXPECT_NEAR(std::sqrt(max_variance_for_failure(MessageBits{7}, -64.0)) /
                  (std::exp2(-9.0) / 9.155293772686073),
              1.0, 1e-10);
  EXPECT_LE(log2_failure_probability_for_variance(p, max_variance_for_failure(p, -40.0)), -40.0);
  // One more bit of precision halves the allowed sigma.
  EXPECT_NEAR(max_variance_for_failure(MessageBits{3}, -40.0) /
                  max_variance_for_failure(MessageBits{4}, -40.0),
              4.0, 1e-9);
  EXPECT_EQ(log2_failure_probability_for_variance(p, 0.0),
            -std::numeric_limits<double>::infinity());
  // Huge noise: failure close to 1.
  EXPECT_GT(log2_failure_probability_for_variance(p, 1.0), -0.1);
}

TEST(FailureProbability, ProbabilityAndLog2Agree) {
  const PbsParameters& params = default_parameters(MessageBits{2});
  // Many-LUT on a 2-bit message with 4 tables costs the noise budget of 4 bits.
  const MessageBits effective = many_lut_precision(MessageBits{2}, 2);
  EXPECT_EQ(effective, MessageBits{4});
  const double log2_pf = log2_failure_probability(params, effective);
  EXPECT_NEAR(failure_probability(params, effective), std::exp2(log2_pf),
              1e-12 * std::exp2(log2_pf));
  EXPECT_GT(log2_pf, log2_failure_probability(params, MessageBits{2}));
}

TEST(NoiseModel, RejectsInvalidArguments) {
  const NoiseStdDev noise{1e-5};
  EXPECT_THROW(keyswitch_variance(LweDimension{0}, DecompositionBaseLog{3},
                                  DecompositionLevelCount{5}, noise),
               std::invalid_argument);
  EXPECT_THROW(keyswitch_variance(LweDimension{2048}, DecompositionBaseLog{0},
                                  DecompositionLevelCount{5}, noise),
               std::invalid_argument);
  EXPECT_THROW(keyswitch_variance(LweDimension{2048}, DecompositionBaseLog{13},
                                  DecompositionLevelCount{5}, noise),
               std::invalid_argument);  // 65 bits
  EXPECT_THROW(keyswitch_variance(LweDimension{2048}, DecompositionBaseLog{3},
                                  DecompositionLevelCount{5}, NoiseStdDev{-1.0}),
               std::invalid_argument);
  EXPECT_THROW(modulus_switch_variance(LweDimension{742}, PolynomialSize{1000}),
               std::invalid_argument);
  EXPECT_THROW(
      external_product_variance(GlweDimension{0}, PolynomialSize{1024}, DecompositionBaseLog{20},
                                DecompositionLevelCount{1}, noise),
      std::invalid_argument);
  EXPECT_THROW(decomposition_rounding_variance(DecompositionBaseLog{8}, DecompositionLevelCount{0}),
               std::invalid_argument);
  EXPECT_THROW(max_variance_for_failure(MessageBits{4}, 0.0), std::invalid_argument);
  EXPECT_THROW(log2_failure_probability_for_variance(MessageBits{4}, -1.0), std::invalid_argument);
  EXPECT_THROW(log2_failure_probability(default_parameters(MessageBits{4}), MessageBits{4}, -1.0),
               std::invalid_argument);
  EXPECT_THROW(variance_at_lookup(default_parameters(MessageBits{4}), std::nan("")),
               std::invalid_argument);
}

}  // namespace
}  // namespace fheml::tfhe
