// Linear models (scikit-learn's linear_model and svm linear estimators, or any x @ coef +
// intercept): the decision function runs under FHE, the link (sigmoid, softmax, exp, ...) runs
// on the client after decryption, since it needs no secret-free server work and would cost a
// bootstrap per output otherwise.
//
// The circuit has no lookup: the inputs are quantized per feature (the scales fold into the
// integer weights), the weights per output, and the accumulator is decrypted exactly. So the
// encrypted result equals the clear quantized one on every row, and the only error against the
// float model is quantization's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/models/matrix.h"
#include "fheml/runtime/runtime.h"

namespace fheml::models {

// Client-side post-processing of the decision function d [rows, C] (scikit-learn's formulas).
enum class Link {
  kIdentity,       // regressors, and classifiers without probabilities (SVC, hinge SGD)
  kExp,            // log-link GLMs (Poisson, Gamma, Tweedie with power > 0): exp(d)
  kSigmoid,        // binary classifier, C = 1: [1 - s(d), s(d)]
  kSoftmax,        // multinomial classifier: softmax over the C scores
  kOvrSigmoid,     // one-vs-rest: s(d_c) / sum_c s(d_c); C = 1 as kSigmoid
  kModifiedHuber,  // SGD modified_huber: (clip(d, -1, 1) + 1) / 2, normalized like kOvrSigmoid
  kProbability,    // d already holds probabilities (forests); C = 1: [1 - d, d]
  kLogSoftmax,     // an imported network's final LogSoftmax: log of the softmax over the C scores
  kArgmax,         // an imported network's final ArgMax: [rows, 1], the first largest score's index
};

// "identity", "exp", "sigmoid", "softmax", "ovr_sigmoid", "modified_huber", "probability",
// "log_softmax", "argmax".
std::string_view to_string(Link link);
// Throws std::invalid_argument naming the accepted names.
Link parse_link(std::string_view name);

// Columns after post-processing: 2 for a binary probability link, 1 for argmax, else C.
std::size_t link_output_count(Link link, std::size_t outputs);
// Applies `link` to each row of d [rows, C]. Throws std::invalid_argument on NaN (a decrypted
// score is never NaN; a caller's matrix may be).
Matrix apply_link(Link link, const Matrix& decision);

inline constexpr std::size_t kMaxOptimizedFeatures = 1024;

// Weights [F, C] moved onto the integer grid the quantizer will use for them (per output c,
// step max_f |coef[f, c] * s_f| / (2^(bits-1) - 1) on the effective weight coef * s, s_f the
// input scale of feature f), rounding with error feedback over the calibration rows (see
// LinearModelOptions::optimize_rounding). `input_scales` has F entries.
Matrix optimize_weight_rounding(const Matrix& coef, std::span<const double> input_scales,
                                const Matrix& calibration, std::uint32_t weight_bits);

// The float graph x [1, F] -> x @ coef + intercept [1, C]; coef is [F, C]. Throws
// std::invalid_argument on inconsistent sizes or non-finite weights.
ir::FloatGraph linear_graph(const Matrix& coef, std::span<const double> intercept);

struct LinearModelOptions {
  // n_bits.model_inputs and n_bits.op_weights matter (the others name lookups, which a linear
  // circuit has none of). per_channel_inputs is turned on by the constructor unless
  // `per_tensor_inputs` is set: one scale per feature keeps every feature's 2^bits levels
  // whatever the spreads (unscaled data such as wine's) and costs nothing.
  compiler::CompileOptions compile;
  bool per_tensor_inputs = false;
  // Overrides compile.quantization.input_headroom: rows up to one calibrated range beyond either
  // end of a feature's training range (a test row with an outlier) are computed, not clipped,
  // for 1.6 bits more accumulator width (no bootstrap: width costs little).
  double input_headroom = 1.0;
  // Rounds the weights with error feedback on the calibration rows (optimal brain quantization,
  // as GPTQ: Frantar et al., 2022, arXiv:2210.17323): after rounding one weight, the others are
  // corrected for its error through the inverse covariance of the features, so that the
  // rounding errors cancel on data like the calibration's instead of adding up. Same integer
  // grid and bit widths as plain rounding; on breast cancer at 8 bits it halves the largest
  // error of the decision function. Skipped above kMaxOptimizedFeatures features (O(F^3)).
  bool optimize_rounding = true;
  runtime::FheCircuitOptions runtime;
};

class LinearModel {
 public:
  // coef [F, C], intercept [C], calibration [N, F] (the training rows: each feature's minimum
  // and maximum over all of them fix its input quantizer; values outside are clipped by it).
  // Throws std::invalid_argument with the compiler's diagnostic.
  LinearModel(const Matrix& coef, std::span<const double> intercept, Link link,
              const Matrix& calibration, const LinearModelOptions& options = {});

  std::size_t features() const { return features_; }
  std::size_t outputs() const { return outputs_; }
  Link link() const { return link_; }

  // x [rows, F] -> the decision function [rows, C], in `mode`. Throws std::invalid_argument on
  // a wrong feature count or a NaN/inf value (row and column named).
  Matrix decision_function(const Matrix& x, runtime::Mode mode);
  // apply_link(link(), decision_function(x, mode)).
  Matrix predict(const Matrix& x, runtime::Mode mode);

  // The client's steps one by one: floats -> integers (per feature) -> the circuit on integers
  // -> floats. quantize_input(x) then run_integers then dequantize_output equals
  // decision_function.
  std::vector<std::int64_t> quantize_input(const Matrix& x) const;
  std::vector<std::int64_t> run_integers(std::span<const std::int64_t> q, std::size_t rows,
                                         runtime::Mode mode);
  Matrix dequantize_output(std::span<const std::int64_t> q, std::size_t rows) const;

  // The float weights [F, C] the circuit was built from: coef itself, or coef after optimized
  // rounding (each on the quantizer's grid). Rebuilding from them with optimize_rounding off
  // gives the same circuit from the calibration rows' ranges alone.
  const Matrix& coef() const { return coef_; }

  runtime::FheCircuit& circuit() { return circuit_; }
  const runtime::FheCircuit& circuit() const { return circuit_; }

 private:
  std::size_t features_ = 0;
  std::size_t outputs_ = 0;
  Link link_ = Link::kIdentity;
  Matrix coef_;
  runtime::FheCircuit circuit_;
};

}  // namespace fheml::models
