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

double min_log2_noise_std_128(std::size_t dimension) {
  if (dimension < kMinSecureDimension) {
    throw std::invalid_argument(
        "min_noise_std_128: the 128-bit security curve is defined for dimensions >= " +
        std::to_string(kMinSecureDimension) + ", found " + std::to_string(dimension) +
        "; use a larger LWE dimension (or k*N for a GLWE key)");
  }
  return std::max(kSlope128 * static_cast<double>(dimension) + kBias128, kFloorLog2Std);
}

NoiseStdDev min_noise_std_128(std::size_t dimension) {
  return NoiseStdDev{std::exp2(min_log2_noise_std_128(dimension))};
}

bool is_secure_128(std::size_t dimension, NoiseStdDev noise) {
  if (dimension < kMinSecureDimension || !(noise.value > 0) || !std::isfinite(noise.value)) {
    return false;
  }
  return std::log2(noise.value) >= min_log2_noise_std_128(dimension) - kCurveToleranceBits;
}

}  // namespace fheml::tfhe
