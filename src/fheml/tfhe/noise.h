// Noise model of the KS-PBS pipeline: the single source of truth for the parameter search and the
// statistical tests. Every variance is that of the error as a FRACTION of the torus, squared
// (a std of 2^-20 of the torus is a variance of 2^-40). Keys are binary and uniform; masks are
// uniform. Formulas follow Concrete's noise model (zama-ai/concrete,
// backends/concrete-cpu/noise-model/src/gaussian_noise/noise/*.rs) and TFHE-rs
// (zama-ai/tfhe-rs, tfhe/src/core_crypto/commons/noise_formulas/*.rs); each function cites its own.
#pragma once

#include <cstddef>

#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

// Fresh (G)LWE encryption: the error is the Gaussian itself, variance = std^2.
double fresh_encryption_variance(NoiseStdDev noise);

// Error of rounding a uniform torus element to the closest multiple of B^-l (B = 2^base_log,
// l = level) on the 2^64 torus: uniform on q/B^l integer values, variance (B^-2l - q^-2)/12.
// Throws std::invalid_argument unless 1 <= base_log*level <= 64.
double decomposition_rounding_variance(DecompositionBaseLog base_log,
                                       DecompositionLevelCount level);

// Variance ADDED by a key switch of an input of dimension `input_dimension` (k*N), with a key
// switching key of the given decomposition and noise, binary keys.
double keyswitch_variance(LweDimension input_dimension, DecompositionBaseLog base_log,
                          DecompositionLevelCount level, NoiseStdDev ksk_noise);

// Variance ADDED by running the key switch modulo 2^32 with the key rounded to its top 32 bits
// (KeyswitchKey32): the input body's rounding plus, per used key entry, the rounding of its body
// and of its n mask words times binary key bits, weighted by E[d^2] of the digits.
double keyswitch_rounding_variance(LweDimension input_dimension, LweDimension output_dimension,
                                   DecompositionBaseLog base_log, DecompositionLevelCount level);

// Variance ADDED by the copy of the n mask coefficients a key switch shares with its input
// (KeyswitchShape::shared_prefix) in the 32-bit compute form: each is rounded to its top 32 bits
// and multiplies a binary key bit.
double shared_prefix_rounding_variance(LweDimension output_dimension);

// Variance ADDED by the modulus switch 2^64 -> 2N of an LWE ciphertext of dimension n with a
// binary key. N must be a power of two.
double modulus_switch_variance(LweDimension n, PolynomialSize polynomial_size);

// Variance added by the double-precision FFT in one external product (fitted model).
double fft_external_product_variance(GlweDimension k, PolynomialSize polynomial_size,
                                     DecompositionBaseLog base_log, DecompositionLevelCount level);

// Variance ADDED by one external product (CMux) with a GGSW of noise `ggsw_noise`, including the
// FFT term. Valid in the blind-rotation case (the GLWE input is the accumulator).
double external_product_variance(GlweDimension k, PolynomialSize polynomial_size,
                                 DecompositionBaseLog base_log, DecompositionLevelCount level,
                                 NoiseStdDev ggsw_noise);

// Blind rotation of an input of dimension n: n CMuxes from a noiseless (trivial) accumulator.
double blind_rotation_variance(LweDimension n, GlweDimension k, PolynomialSize polynomial_size,
                               DecompositionBaseLog base_log, DecompositionLevelCount level,
                               NoiseStdDev bsk_noise);

// Variance of a PBS output (after sample extraction, which adds nothing). It does not depend on
// the input noise as long as the bootstrap decodes correctly.
double pbs_output_variance(const PbsParameters& params);

// Worst variance of a ciphertext between operations: max(fresh encryption, PBS output).
double ciphertext_variance(const PbsParameters& params);

// Variance at blind-rotation input (after key switch and modulus switch) for a lookup whose
// input has variance `linear_variance` (= input variance * nu2 for a dot product of 2-norm^2 nu2)
// and is under the set's own big key, whose first n coefficients are the small key: the key
// switch decomposes the k*N - n others (keyswitch.h, "Shared prefix").
double variance_at_lookup(const PbsParameters& params, double linear_variance);
// The same for an input under the big key of dimension `input_dimension`: the set's own when
// that is its k*N (one class of big keys has one k*N: runtime/keys.cpp), else another
// partition's (a circuit whose partitions have their own k and N: the key switch reads all of the
// source's coefficients, none of them shared with the small key).
double variance_at_lookup(const PbsParameters& params, LweDimension input_dimension,
                          double linear_variance);

// log2(erfc(x)), exact where erfc is a normal double and from the asymptotic series
// erfc(x) ~ exp(-x^2)/(x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - ...) beyond, so it never
// underflows to -inf for finite x.
double log2_erfc(double x);

// log2 P(|e| >= 2^-(p+2)) for e ~ N(0, variance): a p-bit message with one padding bit decodes
// wrongly iff its error leaves half a box. Returns -inf for variance 0.
double log2_failure_probability_for_variance(MessageBits p, double variance);

// Largest variance whose failure probability is <= 2^log2_p_fail for p-bit messages.
double max_variance_for_failure(MessageBits p, double log2_p_fail);

// Per-bootstrap failure of a lookup on p-bit messages whose input is a linear combination of
// 2-norm^2 nu2 of ciphertexts of variance ciphertext_variance(params). For many-LUT with 2^m
// tables in one bootstrap, use the precision p + m (many_lut_precision).
double log2_failure_probability(const PbsParameters& params, MessageBits p, double nu2 = 1.0);
double failure_probability(const PbsParameters& params, MessageBits p, double nu2 = 1.0);

// Precision that governs the noise of a many-LUT bootstrap evaluating 2^log2_tables tables on a
// p-bit message: the input is squeezed into 1/2^m of the box.
MessageBits many_lut_precision(MessageBits p, std::size_t log2_tables);

}  // namespace fheml::tfhe
