#include "fheml/models/linear_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "fheml/quant/weight_rounding.h"

namespace fheml::models {
namespace {

constexpr std::array<std::pair<Link, std::string_view>, 9> kLinkNames{{
    {Link::kIdentity, "identity"},
    {Link::kExp, "exp"},
    {Link::kSigmoid, "sigmoid"},
    {Link::kSoftmax, "softmax"},
    {Link::kOvrSigmoid, "ovr_sigmoid"},
    {Link::kModifiedHuber, "modified_huber"},
    {Link::kProbability, "probability"},
    {Link::kLogSoftmax, "log_softmax"},
    {Link::kArgmax, "argmax"},
}};

double sigmoid(double d) { return 1.0 / (1.0 + std::exp(-d)); }

// Each row divided by its sum; a row summing to zero becomes uniform (as scikit-learn does for
// modified_huber; sigmoids never sum to zero).
void normalize_rows(Matrix& m) {
  for (std::size_t r = 0; r < m.rows; ++r) {
    double* row = m.data.data() + r * m.cols;
    double sum = 0;
    for (std::size_t c = 0; c < m.cols; ++c) sum += row[c];
    for (std::size_t c = 0; c < m.cols; ++c)
      row[c] = sum == 0 ? 1.0 / static_cast<double>(m.cols) : row[c] / sum;
  }
}

// Binary links: one score column -> [1 - p, p].
Matrix two_columns(const Matrix& d, double (*p)(double)) {
  Matrix out{d.rows, 2, std::vector<double>(d.rows * 2)};
  for (std::size_t r = 0; r < d.rows; ++r) {
    out.data[2 * r + 1] = p(d.data[r]);
    out.data[2 * r] = 1.0 - out.data[2 * r + 1];
  }
  return out;
}

double modified_huber(double d) { return (std::clamp(d, -1.0, 1.0) + 1.0) / 2.0; }

// The input quantizer's scale per feature, by the rule of quant::quantize (per feature, or one
// over all features when per_tensor).
std::vector<double> input_scales(const std::vector<double>& lo, const std::vector<double>& hi,
                                 std::uint32_t bits, bool per_tensor) {
  const double top = std::ldexp(1.0, static_cast<int>(bits)) - 1;
  const auto scale = [top](double l, double h) {
    return h > l ? (h - l) / top : (l != 0.0 ? std::abs(l) : 1.0);
  };
  std::vector<double> scales(lo.size());
  if (per_tensor) {
    const double l = *std::min_element(lo.begin(), lo.end());
    const double h = *std::max_element(hi.begin(), hi.end());
    std::fill(scales.begin(), scales.end(), scale(l, h));
  } else {
    for (std::size_t f = 0; f < lo.size(); ++f) scales[f] = scale(lo[f], hi[f]);
  }
  return scales;
}

Matrix prepare_coef(const Matrix& coef, std::span<const double> intercept,
                    const Matrix& calibration, const LinearModelOptions& options) {
  linear_graph(coef, intercept);  // validates sizes and values first
  const auto [lo, hi] = feature_ranges(calibration, coef.rows);
  if (!options.optimize_rounding || coef.rows > kMaxOptimizedFeatures) return coef;
  const quant::NBits& bits = options.compile.quantization.n_bits;
  if (bits.model_inputs < 2 || bits.model_inputs > 16 || bits.op_weights < 2 ||
      bits.op_weights > 16) {
    return coef;  // the quantizer refuses these with its own message
  }
  return optimize_weight_rounding(
      coef, input_scales(lo, hi, bits.model_inputs, options.per_tensor_inputs), calibration,
      bits.op_weights);
}

compiler::Circuit compile_linear(const Matrix& coef, std::span<const double> intercept,
                                 const Matrix& calibration, const LinearModelOptions& options) {
  const ir::FloatGraph graph = linear_graph(coef, intercept);
  // A linear circuit depends on its calibration only through each feature's minimum and maximum
  // (the input quantizers; accumulator widths follow from them), so two rows carry all of it,
  // whatever the row count (the quantizer would read only its first max_calibration_samples).
  auto [lo, hi] = feature_ranges(calibration, coef.rows);
  std::vector<quant::Sample> samples(2);
  samples[0].emplace_back(ir::Shape{1, coef.rows}, std::move(lo));
  samples[1].emplace_back(ir::Shape{1, coef.rows}, std::move(hi));
  compiler::CompileOptions compile = options.compile;
  compile.quantization.per_channel_inputs = !options.per_tensor_inputs;
  compile.quantization.input_headroom = options.input_headroom;
  // prepare_coef has rounded the weights on the calibration rows (or was asked not to); the
  // two rows given here carry only the ranges.
  compile.quantization.optimize_weight_rounding = false;
  return compiler::compile(graph, samples, compile);
}

}  // namespace

std::string_view to_string(Link link) {
  for (const auto& [l, name] : kLinkNames)
    if (l == link) return name;
  return "?";
}

Link parse_link(std::string_view name) {
  std::string names;
  for (const auto& [l, n] : kLinkNames) {
    if (n == name) return l;
    names += (names.empty() ? "" : ", ") + std::string(n);
  }
  throw std::invalid_argument("link must be one of " + names + ", found '" + std::string(name) +
                              "'");
}

std::size_t link_output_count(Link link, std::size_t outputs) {
  const bool binary_probability = link == Link::kSigmoid || link == Link::kOvrSigmoid ||
                                  link == Link::kModifiedHuber || link == Link::kProbability;
  if (link == Link::kArgmax) return 1;
  return binary_probability && outputs == 1 ? 2 : outputs;
}

Matrix apply_link(Link link, const Matrix& decision) {
  check_matrix(decision, "decision function");
  for (std::size_t i = 0; i < decision.data.size(); ++i) {
    if (std::isnan(decision.data[i])) {
      throw std::invalid_argument("decision function: NaN at row " +
                                  std::to_string(i / std::max<std::size_t>(decision.cols, 1)) +
                                  ", column " + std::to_string(i % decision.cols));
    }
  }
  if (link == Link::kSigmoid && decision.cols != 1) {
    throw std::invalid_argument(
        "link sigmoid takes one score column (a binary classifier), found " +
        std::to_string(decision.cols));
  }
  Matrix out = decision;
  switch (link) {
    case Link::kIdentity:
      break;
    case Link::kExp:
      for (double& v : out.data) v = std::exp(v);
      break;
    case Link::kSigmoid:
      return two_columns(decision, sigmoid);
    case Link::kSoftmax:
      for (std::size_t r = 0; r < out.rows; ++r) {
        double* row = out.data.data() + r * out.cols;
        const double top = *std::max_element(row, row + out.cols);
        for (std::size_t c = 0; c < out.cols; ++c) row[c] = std::exp(row[c] - top);
      }
      normalize_rows(out);
      break;
    case Link::kLogSoftmax:
      // log(e^(d - top) / sum) = d - top - log(sum), stable for any scale of d.
      for (std::size_t r = 0; r < out.rows && out.cols > 0; ++r) {
        double* row = out.data.data() + r * out.cols;
        const double top = *std::max_element(row, row + out.cols);
        double sum = 0.0;
        for (std::size_t c = 0; c < out.cols; ++c) sum += std::exp(row[c] - top);
        const double log_sum = std::log(sum);
        for (std::size_t c = 0; c < out.cols; ++c) row[c] = row[c] - top - log_sum;
      }
      break;
    case Link::kArgmax: {
      Matrix index{decision.rows, 1, std::vector<double>(decision.rows, 0.0)};
      for (std::size_t r = 0; r < decision.rows && decision.cols > 0; ++r) {
        const double* row = decision.data.data() + r * decision.cols;
        index.data[r] = static_cast<double>(std::max_element(row, row + decision.cols) - row);
      }
      return index;
    }
    case Link::kOvrSigmoid:
      if (out.cols == 1) return two_columns(decision, sigmoid);
      for (double& v : out.data) v = sigmoid(v);
      normalize_rows(out);
      break;
    case Link::kProbability:
      if (out.cols == 1) return two_columns(decision, [](double p) { return p; });
      break;
    case Link::kModifiedHuber:
      if (out.cols == 1) return two_columns(decision, modified_huber);
      for (double& v : out.data) v = modified_huber(v);
      normalize_rows(out);
      break;
  }
  return out;
}

Matrix optimize_weight_rounding(const Matrix& coef, std::span<const double> input_scales,
                                const Matrix& calibration, std::uint32_t weight_bits) {
  check_matrix(coef, "coef");
  check_matrix(calibration, "calibration");
  const std::size_t n = coef.rows;
  if (input_scales.size() != n || calibration.cols != n || calibration.rows == 0) {
    throw std::invalid_argument("optimize_weight_rounding: " + std::to_string(n) + " features, " +
                                std::to_string(input_scales.size()) +
                                " input scales, calibration " + std::to_string(calibration.rows) +
                                " x " + std::to_string(calibration.cols));
  }
  // The features' inverse covariance, in the effective weights' units (w * s on x / s).
  std::vector<double> h_inverse =
      quant::damped_inverse_covariance(calibration.data, calibration.rows, n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) h_inverse[i * n + j] *= input_scales[i] * input_scales[j];

  const auto qmax = (std::int64_t{1} << (weight_bits - 1)) - 1;
  Matrix out = coef;
  for (std::size_t c = 0; c < coef.cols; ++c) {
    std::vector<double> w(n);
    std::size_t largest = 0;
    for (std::size_t f = 0; f < n; ++f) {
      w[f] = coef.data[f * coef.cols + c] * input_scales[f];
      if (std::abs(w[f]) > std::abs(w[largest])) largest = f;
    }
    const double step = std::abs(w[largest]) / static_cast<double>(qmax);
    if (step == 0) continue;
    // The largest effective weight first: it sits on the grid exactly (+-qmax) and fixes the
    // step, which later corrections must not change (they are clamped to +-qmax).
    std::vector<std::size_t> order{largest};
    for (std::size_t f = 0; f < n; ++f)
      if (f != largest) order.push_back(f);
    const std::vector<std::int64_t> levels = quant::round_with_error_feedback(
        w, n, std::span<const double>(&step, 1), h_inverse, order, qmax);
    for (std::size_t f = 0; f < n; ++f)
      out.data[f * coef.cols + c] = static_cast<double>(levels[f]) * step / input_scales[f];
  }
  return out;
}

ir::FloatGraph linear_graph(const Matrix& coef, std::span<const double> intercept) {
  check_matrix(coef, "coef");
  if (coef.rows == 0 || coef.cols == 0) {
    throw std::invalid_argument("coef: " + std::to_string(coef.rows) + " x " +
                                std::to_string(coef.cols) +
                                ", a linear model needs at least one "
                                "feature and one output");
  }
  if (intercept.size() != coef.cols) {
    throw std::invalid_argument("intercept has " + std::to_string(intercept.size()) +
                                " values, coef " + std::to_string(coef.cols) + " outputs");
  }
  for (std::size_t i = 0; i < coef.data.size(); ++i) {
    if (!std::isfinite(coef.data[i])) {
      throw std::invalid_argument("coef[" + std::to_string(i / coef.cols) + ", " +
                                  std::to_string(i % coef.cols) + "] is not finite");
    }
  }
  for (std::size_t c = 0; c < intercept.size(); ++c) {
    if (!std::isfinite(intercept[c]))
      throw std::invalid_argument("intercept[" + std::to_string(c) + "] is not finite");
  }
  ir::FloatGraph graph;
  const ir::ValueId x = graph.input("x", {1, coef.rows});
  const ir::ValueId w = graph.constant("coef", ir::FloatTensor({coef.rows, coef.cols}, coef.data));
  const ir::ValueId b = graph.constant(
      "intercept",
      ir::FloatTensor({coef.cols}, std::vector<double>(intercept.begin(), intercept.end())));
  graph.mark_output(graph.gemm(x, w, b, /*trans_b=*/false, "linear"));
  return graph;
}

LinearModel::LinearModel(const Matrix& coef, std::span<const double> intercept, Link link,
                         const Matrix& calibration, const LinearModelOptions& options)
    : features_(coef.rows),
      outputs_(coef.cols),
      link_(link),
      coef_(prepare_coef(coef, intercept, calibration, options)),
      circuit_(compile_linear(coef_, intercept, calibration, options), options.runtime) {
  if (link == Link::kSigmoid && outputs_ != 1) {
    throw std::invalid_argument(
        "link sigmoid needs one output (a binary classifier), the model has " +
        std::to_string(outputs_));
  }
}

std::vector<std::int64_t> LinearModel::quantize_input(const Matrix& x) const {
  check_rows(x, features_);
  return quantize_rows(circuit_.circuit().inputs.at(0), x, circuit_.out_of_range());
}

std::vector<std::int64_t> LinearModel::run_integers(std::span<const std::int64_t> q,
                                                    std::size_t rows, runtime::Mode mode) {
  if (q.size() != rows * features_) {
    throw std::invalid_argument("quantized input: " + std::to_string(rows) + " rows of " +
                                std::to_string(features_) + " features need " +
                                std::to_string(rows * features_) + " values, found " +
                                std::to_string(q.size()));
  }
  std::vector<runtime::IntSample> samples(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    const auto first = q.begin() + static_cast<std::ptrdiff_t>(r * features_);
    samples[r].emplace_back(
        ir::Shape{1, features_},
        std::vector<std::int64_t>(first, first + static_cast<std::ptrdiff_t>(features_)));
  }
  const std::vector<runtime::IntSample> results = circuit_.run_integers(samples, mode);
  std::vector<std::int64_t> out;
  out.reserve(rows * outputs_);
  for (const runtime::IntSample& r : results)
    out.insert(out.end(), r[0].data.begin(), r[0].data.end());
  return out;
}

Matrix LinearModel::dequantize_output(std::span<const std::int64_t> q, std::size_t rows) const {
  return dequantize_rows(circuit_.circuit().outputs.at(0), q, rows);
}

Matrix LinearModel::decision_function(const Matrix& x, runtime::Mode mode) {
  const std::vector<std::int64_t> q = quantize_input(x);
  return dequantize_output(run_integers(q, x.rows, mode), x.rows);
}

Matrix LinearModel::predict(const Matrix& x, runtime::Mode mode) {
  return apply_link(link_, decision_function(x, mode));
}

}  // namespace fheml::models
