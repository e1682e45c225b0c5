// 128-bit security model: the minimal Gaussian noise a (G)LWE instance with a binary secret needs
// for a given dimension, as Concrete computes it.
//
// Source: zama-ai/concrete, tools/parameter-curves/concrete-security-curves-rust/src/gaussian/
// curves_gen.rs (the 128-bit line, fitted with the lattice-estimator, MATZOV cost model) and
// .../security_weights.rs (`secure_log2_std`: the curve, floored at 2^(2 - 64) so that the noise
// always covers the two least significant bits of a 64-bit torus element). The same curve applies
// to an LWE key of dimension n and to a GLWE key of dimension k*N, taken as an LWE key of
// dimension k*N (`minimal_variance_glwe` in .../security.rs).
#pragma once

#include <cstddef>

#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

// Smallest dimension the 128-bit curve was fitted for (`minimal_lwe_dimension` in curves_gen.rs).
inline constexpr std::size_t kMinSecureDimension = 450;

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
