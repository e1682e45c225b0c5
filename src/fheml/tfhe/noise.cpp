#include "fheml/tfhe/noise.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

namespace fheml::tfhe {
namespace {

// q^-2 for the 2^64 torus: the discreteness corrections of the formulas below.
const double kInvQ2 = std::exp2(-2.0 * kTorusBits);

// FFT noise fit of Concrete: on the integer scale the FFT adds
// 2^kFftScalingWeight * 2^22 * l * B^2 * N^2 * (k+1) per external product, where 2^22 =
// (2^(64-53))^2 is the mantissa loss of converting 64-bit key coefficients to doubles.
// zama-ai/concrete backends/concrete-cpu/noise-model/src/gaussian_noise/noise/
// external_product_glwe.rs (`FFT_SCALING_WEIGHT`, `fft_noise_variance_external_product_glwe`).
// Divided by q^2 this is the 2.06537277069845e-33 constant of TFHE-rs
// tfhe/src/core_crypto/commons/noise_formulas/lwe_programmable_bootstrap.rs.
constexpr double kFftScalingWeight = -2.57722494;
constexpr double kFftMantissaLossLog2 = 2.0 * (64 - 53);

void require_positive(const char* function, const char* what, std::size_t value) {
  if (value == 0) {
    throw std::invalid_argument(std::string(function) + ": " + what +
                                " must be >= 1, found 0; pass a positive value");
  }
}

void require_decomposition(const char* function, DecompositionBaseLog base_log,
                           DecompositionLevelCount level) {
  require_positive(function, "decomposition base_log", base_log.value);
  require_positive(function, "decomposition level", level.value);
  if (base_log.value * level.value > static_cast<std::size_t>(kTorusBits)) {
    throw std::invalid_argument(
        std::string(function) + ": decomposition base_log * level must be <= 64, found " +
        std::to_string(base_log.value) + " * " + std::to_string(level.value) +
        "; use fewer levels or a smaller base");
  }
}

void require_noise(const char* function, NoiseStdDev noise) {
  if (!(noise.value >= 0.0) || !std::isfinite(noise.value)) {
    throw std::invalid_argument(std::string(function) +
                                ": noise std must be finite and >= 0 (a torus fraction), found " +
                                std::to_string(noise.value));
  }
}

void require_power_of_two(const char* function, PolynomialSize polynomial_size) {
  const std::size_t n = polynomial_size.value;
  if (n == 0 || (n & (n - 1)) != 0) {
    throw std::invalid_argument(std::string(function) +
                                ": polynomial size must be a power of two, found " +
                                std::to_string(n));
  }
}

double base_squared(DecompositionBaseLog base_log) {
  return std::exp2(2.0 * static_cast<double>(base_log.value));
}

// B^-2l
double inv_base_2l(DecompositionBaseLog base_log, DecompositionLevelCount level) {
  return std::exp2(-2.0 * static_cast<double>(base_log.value * level.value));
}

}  // namespace

double fresh_encryption_variance(NoiseStdDev noise) {
  require_noise("fresh_encryption_variance", noise);
  return noise.value * noise.value;
}

double decomposition_rounding_variance(DecompositionBaseLog base_log,
                                       DecompositionLevelCount level) {
  require_decomposition("decomposition_rounding_variance", base_log, level);
  // The rounding error takes the q/B^l integer values of [-q/(2B^l), q/(2B^l)) uniformly (the
  // input is uniform): variance ((q/B^l)^2 - 1)/12 on the integer scale (discrete uniform), i.e.
  // (B^-2l - q^-2)/12 on the torus. Same term as `res_2` of Concrete's keyswitch_one_bit.rs
  // before the multiplication by the key.
  return (inv_base_2l(base_log, level) - kInvQ2) / 12.0;
}

double keyswitch_variance(LweDimension input_dimension, DecompositionBaseLog base_log,
                          DecompositionLevelCount level, NoiseStdDev ksk_noise) {
  constexpr const char* kFn = "keyswitch_variance";
  require_positive(kFn, "input dimension", input_dimension.value);
  require_decomposition(kFn, base_log, level);
  require_noise(kFn, ksk_noise);
  // Per input coefficient (zama-ai/concrete backends/concrete-cpu/noise-model/src/gaussian_noise/
  // noise/keyswitch_one_bit.rs, converted from the integer scale by dividing by q^2):
  //  - rounding error of the decomposition times a binary key bit (E[s^2] = 1/2):
  //    (B^-2l - q^-2)/24;
  //  - the q^-2 term from the key's mean ("res_3"): 1/4 * 1/(4 q^2);
  //  - l digits of E[d^2] = (B^2 + 2)/12 times the KSK noise: balanced digits of mean zero
  //    (Decomposer::decompose_zero_mean), so that no bias is shared by one key's ciphertexts.
  // keyswitch.rs multiplies this by the input dimension. TFHE-rs
  // tfhe/src/core_crypto/commons/noise_formulas/lwe_keyswitch.rs has the same terms.
  const double l = static_cast<double>(level.value);
  const double ksk_var = fresh_encryption_variance(ksk_noise);
  const double per_coefficient = decomposition_rounding_variance(base_log, level) / 2.0 +
                                 kInvQ2 / 16.0 +
                                 l * ksk_var * (base_squared(base_log) + 2.0) / 12.0;
  return static_cast<double>(input_dimension.value) * per_coefficient;
}

double modulus_switch_variance(LweDimension n, PolynomialSize polynomial_size) {
  constexpr const char* kFn = "modulus_switch_variance";
  require_positive(kFn, "LWE dimension", n.value);
  require_power_of_two(kFn, polynomial_size);
  // zama-ai/tfhe-rs tfhe/src/core_crypto/commons/noise_formulas/modulus_switch.rs with
  // new_modulus = 2N: each of the n mask coefficients is rounded to a multiple of 1/(2N), an error
  // of variance ~(2N)^-2/12, times a binary key bit (E[s^2] = 1/2), plus the body's own rounding;
  // the q^-2 terms are the discreteness corrections.
  const double inv_2n_sq = 1.0 / std::pow(2.0 * static_cast<double>(polynomial_size.value), 2.0);
  return static_cast<double>(n.value) * (kInvQ2 / 48.0 + inv_2n_sq / 24.0) + kInvQ2 / 6.0 +
         inv_2n_sq / 12.0;
}

double fft_external_product_variance(GlweDimension k, PolynomialSize polynomial_size,
                                     DecompositionBaseLog base_log, DecompositionLevelCount level) {
  constexpr const char* kFn = "fft_external_product_variance";
  require_positive(kFn, "GLWE dimension", k.value);
  require_positive(kFn, "polynomial size", polynomial_size.value);
  require_decomposition(kFn, base_log, level);
  const double big_n = static_cast<double>(polynomial_size.value);
  return std::exp2(kFftScalingWeight + kFftMantissaLossLog2 - 2.0 * kTorusBits) *
         static_cast<double>(level.value) * base_squared(base_log) * big_n * big_n *
         static_cast<double>(k.value + 1);
}

double external_product_variance(GlweDimension k, PolynomialSize polynomial_size,
                                 DecompositionBaseLog base_log, DecompositionLevelCount level,
                                 NoiseStdDev ggsw_noise) {
  constexpr const char* kFn = "external_product_variance";
  require_positive(kFn, "GLWE dimension", k.value);
  require_positive(kFn, "polynomial size", polynomial_size.value);
  require_decomposition(kFn, base_log, level);
  require_noise(kFn, ggsw_noise);
  // zama-ai/concrete backends/concrete-cpu/noise-model/src/gaussian_noise/noise/
  // external_product_glwe.rs (`theoretical_variance_external_product_glwe`), divided by q^2:
  //  res_1: (k+1) * l * N digits of E[d^2] = (B^2+2)/12 times the GGSW noise;
  //  res_2: decomposition rounding (B^-2l - q^-2)/24 carried by the body and by the k*N binary key
  //         coefficients (E[s^2] = 1/2 each), plus q^-2 corrections for the key's mean.
  // TFHE-rs lwe_programmable_bootstrap.rs (the bracket multiplied by n) has the same terms.
  const double kk = static_cast<double>(k.value);
  const double big_n = static_cast<double>(polynomial_size.value);
  const double l = static_cast<double>(level.value);
  const double kn = kk * big_n;
  const double res_1 = l * (kk + 1.0) * big_n * (base_squared(base_log) + 2.0) / 12.0 *
                       (ggsw_noise.value * ggsw_noise.value);
  const double res_2 = (inv_base_2l(base_log, level) - kInvQ2) / 24.0 * (1.0 + kn / 2.0) +
                       kn * kInvQ2 / 32.0 + (1.0 - kn) * (1.0 - kn) * kInvQ2 / 64.0;
  return res_1 + res_2 + fft_external_product_variance(k, polynomial_size, base_log, level);
}

double blind_rotation_variance(LweDimension n, GlweDimension k, PolynomialSize polynomial_size,
                               DecompositionBaseLog base_log, DecompositionLevelCount level,
                               NoiseStdDev bsk_noise) {
  require_positive("blind_rotation_variance", "LWE dimension", n.value);
  // zama-ai/concrete .../noise/blind_rotate.rs: n CMuxes, each adding one external product's
  // noise; the accumulator starts trivial (noiseless), so the output does not depend on the input.
  return static_cast<double>(n.value) *
         external_product_variance(k, polynomial_size, base_log, level, bsk_noise);
}

double pbs_output_variance(const PbsParameters& params) {
  // Sample extraction copies coefficients and adds no noise.
  return blind_rotation_variance(params.lwe_dimension, params.glwe_dimension,
                                 params.polynomial_size, params.pbs_base_log, params.pbs_level,
                                 params.glwe_noise);
}

double ciphertext_variance(const PbsParameters& params) {
  return std::max(fresh_encryption_variance(params.glwe_noise), pbs_output_variance(params));
}

double keyswitch_rounding_variance(LweDimension input_dimension, LweDimension output_dimension,
                                   DecompositionBaseLog base_log, DecompositionLevelCount level) {
  // Rounding x to a multiple of 2^32 leaves an error uniform on 2^32 integers: variance
  // (2^-32)^2 / 12 as a torus fraction. An entry (a, b) rounded carries b's error minus
  // sum_t a's errors * s_t, variance (1 + n/2) * that for a binary key; the key switch
  // multiplies entry (i, j) by digit d_ij, E[d^2] = (B^2 + 2)/12 for balanced digits.
  const double unit = std::ldexp(1.0, -64) / 12.0;
  const double digit_sq = (base_squared(base_log) + 2.0) / 12.0;
  const double per_entry = (1.0 + static_cast<double>(output_dimension.value) / 2.0) * unit;
  return unit + static_cast<double>(input_dimension.value) * static_cast<double>(level.value) *
                    digit_sq * per_entry;
}

double shared_prefix_rounding_variance(LweDimension output_dimension) {
  // Each copied coefficient rounded to a multiple of 2^32: uniform error of variance
  // (2^-32)^2 / 12 on the torus, times a binary key bit (E[s^2] = 1/2).
  return static_cast<double>(output_dimension.value) / 2.0 * std::ldexp(1.0, -64) / 12.0;
}

namespace {

// Concrete's KS-PBS atomic pattern (zama-ai/concrete compilers/concrete-optimizer/
// concrete-optimizer/src/noise_estimator/operators/atomic_pattern.rs): the independent noises
// of the linear part, the key switch and the modulus switch add up. The key switch decomposes
// `switched` coefficients and copies `shared` (0 or n).
double lookup_input_variance(const PbsParameters& params, std::size_t switched, std::size_t shared,
                             double linear_variance) {
  if (!(linear_variance >= 0.0) || !std::isfinite(linear_variance)) {
    throw std::invalid_argument(
        "variance_at_lookup: input variance must be finite and >= 0, found " +
        std::to_string(linear_variance));
  }
  const double keyswitch =
      (switched == 0 ? 0.0
                     : keyswitch_variance(LweDimension{switched}, params.ks_base_log,
                                          params.ks_level, params.lwe_noise)) +
      keyswitch_rounding_variance(LweDimension{switched}, params.lwe_dimension, params.ks_base_log,
                                  params.ks_level);
  const double copied = shared == 0 ? 0.0 : shared_prefix_rounding_variance(LweDimension{shared});
  return linear_variance + keyswitch + copied +
         modulus_switch_variance(params.lwe_dimension, lookup_polynomial_size(params));
}

}  // namespace

double variance_at_lookup(const PbsParameters& params, double linear_variance) {
  return variance_at_lookup(params,
                            extracted_lwe_dimension(params.glwe_dimension, params.polynomial_size),
                            linear_variance);
}

double variance_at_lookup(const PbsParameters& params, LweDimension input_dimension,
                          double linear_variance) {
  const std::size_t switched = switched_dimension(
      input_dimension.value, params.lwe_dimension.value,
      input_dimension == extracted_lwe_dimension(params.glwe_dimension, params.polynomial_size));
  return lookup_input_variance(params, switched, input_dimension.value - switched, linear_variance);
}

double log2_erfc(double x) {
  if (std::isnan(x)) {
    throw std::invalid_argument("log2_erfc: argument is NaN; pass a number");
  }
  // erfc(25) ~ 8e-274 is still a normal double, with full relative precision; beyond, use the
  // asymptotic expansion (Abramowitz & Stegun 7.1.23), whose truncation error after the x^-8
  // term is below 10395/(32 x^10) < 1e-11 for x >= 25.
  constexpr double kSwitch = 25.0;
  if (x < kSwitch) return std::log2(std::erfc(x));
  if (std::isinf(x)) return -std::numeric_limits<double>::infinity();
  const double inv_x2 = 1.0 / (x * x);
  const double series =
      1.0 + inv_x2 * (-0.5 + inv_x2 * (0.75 + inv_x2 * (-1.875 + inv_x2 * 6.5625)));
  const double ln_erfc = -x * x - std::log(x * std::sqrt(std::numbers::pi)) + std::log(series);
  return ln_erfc / std::numbers::ln2;
}

double log2_failure_probability_for_variance(MessageBits p, double variance) {
  if (!(variance >= 0.0) || std::isinf(variance)) {
    throw std::invalid_argument(
        "log2_failure_probability_for_variance: variance must be finite and >= 0, found " +
        std::to_string(variance));
  }
  if (variance == 0.0) return -std::numeric_limits<double>::infinity();
  // p bits plus a padding bit: boxes of 2^-(p+1), decoding fails iff |e| >= half a box.
  // P(|e| >= t) = erfc(t / (sigma sqrt 2)) for a centred Gaussian.
  const double half_box = std::exp2(-static_cast<double>(p.value) - 2.0);
  return log2_erfc(half_box / std::sqrt(2.0 * variance));
}

double max_variance_for_failure(MessageBits p, double log2_p_fail) {
  if (!(log2_p_fail < 0.0)) {
    throw std::invalid_argument(
        "max_variance_for_failure: log2 of a failure probability must be < 0, found " +
        std::to_string(log2_p_fail) + "; pass e.g. -40");
  }
  // log2_erfc is decreasing: bisect for the x with log2_erfc(x) = log2_p_fail, keeping the upper
  // end (a slightly smaller, safe variance).
  double lo = 0.0;
  double hi = 1.0;
  while (log2_erfc(hi) > log2_p_fail) hi *= 2.0;
  for (int i = 0; i < 200 && hi - lo > 1e-14 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (log2_erfc(mid) > log2_p_fail ? lo : hi) = mid;
  }
  const double half_box = std::exp2(-static_cast<double>(p.value) - 2.0);
  return half_box * half_box / (2.0 * hi * hi);
}

double log2_failure_probability(const PbsParameters& params, MessageBits p, double nu2) {
  if (!(nu2 >= 0.0) || std::isinf(nu2)) {
    throw std::invalid_argument(
        "log2_failure_probability: nu2 (squared 2-norm of the weights) must be finite and >= 0, "
        "found " +
        std::to_string(nu2));
  }
  return log2_failure_probability_for_variance(
      p, variance_at_lookup(params, nu2 * ciphertext_variance(params)));
}

double failure_probability(const PbsParameters& params, MessageBits p, double nu2) {
  return std::exp2(log2_failure_probability(params, p, nu2));
}

MessageBits many_lut_precision(MessageBits p, std::size_t log2_tables) {
  // With 2^m tables, the test polynomial holds 2^m interleaved tables, so each message box is
  // 2^m times narrower: the noise constraint is that of p + m bits (the many-LUT technique of
  // Chillotti, Ligier, Orfila, Tap, "Improved programmable bootstrapping with larger precision and
  // efficient arithmetic circuits for TFHE", ASIACRYPT 2021, Section 3.2).
  return MessageBits{p.value + log2_tables};
}

}  // namespace fheml::tfhe
