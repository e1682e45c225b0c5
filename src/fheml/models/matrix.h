// Row-major float matrices as the model builders take them, and the checks every builder makes
// on them (sizes, finite values, calibration ranges).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "fheml/quant/quantizers.h"

namespace fheml::models {

struct Matrix {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<double> data;
};

// Throws std::invalid_argument when data.size() != rows * cols (naming `what`).
void check_matrix(const Matrix& m, const char* what);

// Each feature's minimum and maximum over the calibration rows. Throws std::invalid_argument on
// a column count other than `features`, no rows, or a NaN/inf value (row and column named).
std::pair<std::vector<double>, std::vector<double>> feature_ranges(const Matrix& calibration,
                                                                   std::size_t features);

// Rows to predict on: `features` columns of finite values, else std::invalid_argument naming
// the first bad row and column.
void check_rows(const Matrix& x, std::size_t features);

// Rows [N, F] -> each row's grid levels through `input` (of F elements, any shape), concatenated
// [N * F] (before any thermometer code). Throws std::invalid_argument as quantize_levels; values
// beyond the quantizer's range are handled by `out_of_range` (InputQuantizer::settle).
std::vector<std::int64_t> quantize_rows(const quant::InputQuantizer& input, const Matrix& x,
                                        quant::OutOfRange out_of_range);

// Integers [rows * C] -> floats [rows, C] through `output` (of shape [1, C]). Throws
// std::invalid_argument on a size other than rows * C.
Matrix dequantize_rows(const quant::OutputDequantizer& output, std::span<const std::int64_t> q,
                       std::size_t rows);

}  // namespace fheml::models
