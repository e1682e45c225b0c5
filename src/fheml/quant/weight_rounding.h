// Rounding of clear weights onto an integer grid with error feedback (optimal brain
// quantization, as GPTQ: Frantar et al., 2022, arXiv:2210.17323): after rounding one weight, the
// weights not yet rounded are corrected for its error through the inverse covariance of the
// inputs, so that the rounding errors cancel on data like the calibration rows instead of adding
// up. Used by the linear models (models/linear_model.cpp) and by the quantizer for every linear
// op of a network whose rows are not already on a grid (quantize_lookups.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace fheml::quant {

// The inverse [F, F] of the centred covariance of `samples` [rows, F] (row-major), damped by 1%
// of its mean diagonal (as GPTQ; 1.0 when every input is constant) so that it is well
// conditioned. Centred: the callers keep a float bias, so a constant shift of the error is free.
// O(rows F^2 + F^3). Throws std::invalid_argument on sizes that do not match or rows == 0.
std::vector<double> damped_inverse_covariance(std::span<const double> samples, std::size_t rows,
                                              std::size_t features);

// Rounds each column c of `weights` [F, C] (row-major) to levels k[f, c] in [-qmax, qmax] on the
// grid steps[c] (weight ~ k * steps[c]), taking the features in `order` (a permutation of 0..F-1,
// shared by every column) with error feedback through `h_inverse` (from
// damped_inverse_covariance). A step of 0 leaves its column at 0. Returns k [F, C]. O(F^3 + F^2 C).
std::vector<std::int64_t> round_with_error_feedback(
    std::span<const double> weights, std::size_t features, std::span<const double> steps,
    std::span<const double> h_inverse, std::span<const std::size_t> order, std::int64_t qmax);

}  // namespace fheml::quant
