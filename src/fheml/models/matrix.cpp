#include "fheml/models/matrix.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace fheml::models {

void check_matrix(const Matrix& m, const char* what) {
  if (m.data.size() != m.rows * m.cols) {
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(m.rows) + " x " +
                                std::to_string(m.cols) + " needs " +
                                std::to_string(m.rows * m.cols) + " values, found " +
                                std::to_string(m.data.size()));
  }
}

std::pair<std::vector<double>, std::vector<double>> feature_ranges(const Matrix& calibration,
                                                                   std::size_t features) {
  check_matrix(calibration, "calibration");
  if (calibration.cols != features) {
    throw std::invalid_argument("calibration rows have " + std::to_string(calibration.cols) +
                                " features, the model " + std::to_string(features));
  }
  if (calibration.rows == 0) throw std::invalid_argument("calibration: no rows");
  std::vector<double> lo(features, INFINITY), hi(features, -INFINITY);
  for (std::size_t r = 0; r < calibration.rows; ++r) {
    for (std::size_t f = 0; f < features; ++f) {
      const double v = calibration.data[r * features + f];
      if (!std::isfinite(v)) {
        throw std::invalid_argument("calibration[" + std::to_string(r) + ", " + std::to_string(f) +
                                    "] is " + (std::isnan(v) ? "NaN" : "infinite"));
      }
      lo[f] = std::min(lo[f], v);
      hi[f] = std::max(hi[f], v);
    }
  }
  return {std::move(lo), std::move(hi)};
}

void check_rows(const Matrix& x, std::size_t features) {
  check_matrix(x, "X");
  if (x.cols != features) {
    throw std::invalid_argument("X has " + std::to_string(x.cols) + " features, the model " +
                                std::to_string(features));
  }
  for (std::size_t i = 0; i < x.data.size(); ++i) {
    if (!std::isfinite(x.data[i])) {
      throw std::invalid_argument("X[" + std::to_string(i / x.cols) + ", " +
                                  std::to_string(i % x.cols) + "] is " +
                                  (std::isnan(x.data[i]) ? "NaN" : "infinite") +
                                  ": encrypted models take finite values only");
    }
  }
}

std::vector<std::int64_t> quantize_rows(const quant::InputQuantizer& input, const Matrix& x,
                                        quant::OutOfRange out_of_range) {
  if (ir::element_count(input.shape) != x.cols) {
    throw std::invalid_argument("rows have " + std::to_string(x.cols) + " values, the input " +
                                ir::to_string(input.shape) + " takes " +
                                std::to_string(ir::element_count(input.shape)));
  }
  std::vector<std::int64_t> q;
  q.reserve(x.data.size());
  ir::FloatTensor row(input.shape);  // [1, F], or [1, C, H, W] for a network
  quant::RangeTally tally;
  for (std::size_t r = 0; r < x.rows; ++r) {
    std::copy_n(x.data.begin() + static_cast<std::ptrdiff_t>(r * x.cols), x.cols, row.data.begin());
    const ir::IntTensor t = input.quantize_levels(row, &tally);
    q.insert(q.end(), t.data.begin(), t.data.end());
  }
  input.settle(tally, x.rows, out_of_range);
  return q;
}

Matrix dequantize_rows(const quant::OutputDequantizer& output, std::span<const std::int64_t> q,
                       std::size_t rows) {
  const std::size_t cols = ir::element_count(output.shape);
  if (q.size() != rows * cols) {
    throw std::invalid_argument("quantized output: " + std::to_string(rows) + " rows of " +
                                std::to_string(cols) + " outputs need " +
                                std::to_string(rows * cols) + " values, found " +
                                std::to_string(q.size()));
  }
  Matrix out{rows, cols, {}};
  out.data.reserve(rows * cols);
  ir::IntTensor row(output.shape);
  for (std::size_t r = 0; r < rows; ++r) {
    std::copy_n(q.begin() + static_cast<std::ptrdiff_t>(r * cols), cols, row.data.begin());
    const ir::FloatTensor f = output.dequantize(row);
    out.data.insert(out.data.end(), f.data.begin(), f.data.end());
  }
  return out;
}

}  // namespace fheml::models
