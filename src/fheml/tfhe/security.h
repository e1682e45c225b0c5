// Security model: the minimal Gaussian noise a (G)LWE instance with a binary secret needs for a
// given dimension, as Concrete computes it, at 128 bits (Concrete's default) or 132 bits (the
// level TFHE-rs designs its parameters for, 128 being its hard floor: ci/lattice_estimator.sage).
//
// Source: zama-ai/concrete, tools/parameter-curves/concrete-security-curves-rust/src/gaussian/
// curves_gen.rs (the 128-bit line, fitted with the lattice-estimator, MATZOV cost model) and
// .../security_weights.rs (`secure_log2_std`: the curve, floored at 2^(2 - 64) so that the noise
// always covers the two least significant bits of a 64-bit torus element). The same curve applies
// to an LWE key of dimension n and to a GLWE key of dimension k*N, taken as an LWE key of
// dimension k*N (`minimal_variance_glwe` in .../security.rs). The 132-bit line is the one the
// same curves_gen.rs gained in zama-ai/concrete commit 4d6afba9 ("add 132 bits security curves",
// 2024-12-09); TFHE-rs's secure_noise.rs uses it too, written for the variance (constants x2).
#pragma once

#include <cstddef>

#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

// Smallest dimension the curves were fitted for (`minimal_lwe_dimension` in curves_gen.rs; 450
// for both levels).
inline constexpr std::size_t kMinSecureDimension = 450;

// The security a parameter set is chosen for. Every set must meet 128 bits (validate()); 132
// leaves a margin against future improvements of lattice attacks, for about 0.5-0.6 bit more
// noise per key (a little more bootstrap cost).
enum class SecurityLevel : std::uint8_t { k128 = 128, k132 = 132 };

// log2 of the smallest standard deviation (torus fraction) that meets `level` for a binary secret
// of `dimension` coefficients on the 2^64 torus. Throws std::invalid_argument below
// kMinSecureDimension.
double min_log2_noise_std(std::size_t dimension, SecurityLevel level);
NoiseStdDev min_noise_std(std::size_t dimension, SecurityLevel level);
// As is_secure_128 for `level`.
bool is_secure(std::size_t dimension, NoiseStdDev noise, SecurityLevel level);

// log2 of the smallest standard deviation (torus fraction) that is 128-bit secure for a binary
// secret of `dimension` coefficients on the 2^64 torus. Throws std::invalid_argument below
// kMinSecureDimension, where the curve says nothing.
double min_log2_noise_std_128(std::size_t dimension);

// 2^min_log2_noise_std_128(dimension).
NoiseStdDev min_noise_std_128(std::size_t dimension);

// True iff `dimension` >= kMinSecureDimension and `noise` is at least the curve's minimum,
// compared in log2 with a tolerance of 1e-9 bit (a set computed with another libm's exp2, a few
// ulps off the curve, passes; one 0.01 bit below fails). Never throws: a dimension below the
// curve's domain is simply not known to be secure.
bool is_secure_128(std::size_t dimension, NoiseStdDev noise);

}  // namespace fheml::tfhe
