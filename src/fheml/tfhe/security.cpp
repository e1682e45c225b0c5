#include "fheml/tfhe/security.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace fheml::tfhe {
namespace {

// 128-bit line log2(sigma) = slope * dimension + bias, sigma a fraction of the torus.
// zama-ai/concrete tools/parameter-curves/concrete-security-curves-rust/src/gaussian/curves_gen.rs
constexpr double kSlope128 = -0.025696778711484593;
constexpr double kBias128 = 2.675931372549016;
// 132-bit line of the same file (concrete commit 4d6afba9dd8da64a279d031432baaaf6ee2141be).
constexpr double kSlope132 = -0.024891456582633045;
constexpr double kBias132 = 2.65734593837534;

// Floor of the noise: the std on the integer scale is at least 2^2 = 4, i.e. 2^(2 - 64) of the
// torus (`epsilon_log2_std_modular = 2.0` in security_weights.rs of the same crate). It matters
// from dimension ~2517 on, where the curve would ask for less noise than that.
constexpr double kFloorLog2Std = 2.0 - kTorusBits;

// A noise on the curve computed by another machine's exp2 may sit a few ulps below this one's
// (one ulp is 2^-52 relative, 3.2e-16 bit in log2); compared in log2 with this tolerance, such a
// set passes while one 0.01 bit below the curve (a real loss) fails. 1e-9 bit of noise is worth
// about 4e-8 bit of security on the curve's slope: nothing.
constexpr double kCurveToleranceBits = 1e-9;

}  // namespace

double min_log2_noise_std(std::size_t dimension, SecurityLevel level) {
  const int bits = static_cast<int>(level);
  if (dimension < kMinSecureDimension) {
    throw std::invalid_argument(
        "min_noise_std: the " + std::to_string(bits) +
        "-bit security curve is defined for dimensions >= " + std::to_string(kMinSecureDimension) +
        ", found " + std::to_string(dimension) +
        "; use a larger LWE dimension (or k*N for a GLWE key)");
  }
  const bool strict = level == SecurityLevel::k132;
  const double slope = strict ? kSlope132 : kSlope128;
  const double bias = strict ? kBias132 : kBias128;
  return std::max(slope * static_cast<double>(dimension) + bias, kFloorLog2Std);
}

NoiseStdDev min_noise_std(std::size_t dimension, SecurityLevel level) {
  return NoiseStdDev{std::exp2(min_log2_noise_std(dimension, level))};
}

bool is_secure(std::size_t dimension, NoiseStdDev noise, SecurityLevel level) {
  if (dimension < kMinSecureDimension || !(noise.value > 0) || !std::isfinite(noise.value)) {
    return false;
  }
  return std::log2(noise.value) >= min_log2_noise_std(dimension, level) - kCurveToleranceBits;
}

double min_log2_noise_std_128(std::size_t dimension) {
  return min_log2_noise_std(dimension, SecurityLevel::k128);
}

NoiseStdDev min_noise_std_128(std::size_t dimension) {
  return min_noise_std(dimension, SecurityLevel::k128);
}

bool is_secure_128(std::size_t dimension, NoiseStdDev noise) {
  return is_secure(dimension, noise, SecurityLevel::k128);
}

}  // namespace fheml::tfhe
