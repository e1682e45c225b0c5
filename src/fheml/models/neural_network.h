// Neural networks (an imported ONNX or torch graph, scikit-learn's MLPs, fheml's own
// quantization-aware networks): any float graph with one input and one output, compiled by the
// general compiler (quantization, fused lookups, rounding, parameters), with the same interface
// as the other model builders so that the Python layer, deployment and the server treat every
// model alike. Rows are flat: a sample of input shape [1, C, H, W] is a row of C*H*W features
// in row-major order (numpy's reshape(len(X), -1)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/models/linear_model.h"
#include "fheml/models/matrix.h"
#include "fheml/runtime/runtime.h"

namespace fheml::models {

// The precision search (Concrete ML leaves this to its users): every candidate below is
// compiled, run in the clear on the calibration rows and compared with the float graph; the
// one with the lowest estimated latency whose agreement reaches min_agreement wins (the most
// agreeing one when none does). Agreement: 1 - MSE / variance of the float outputs (R^2); for a
// classifier the lower of that and the share of rows whose class matches the float graph's
// (the top output of several, the sign of one output under the sigmoid link).
struct PrecisionCandidate {
  quant::NBits n_bits;
  std::uint32_t rounding_threshold_bits = 4;
};
struct PrecisionTrial {
  PrecisionCandidate candidate;
  double agreement = 0;             // on the calibration rows
  double estimated_latency_ms = 0;  // the compiler's estimate, one thread
  std::string error;                // why it did not compile (no parameters...), else empty
};
struct PrecisionSearch {
  bool enabled = false;
  // Empty: default_precision_candidates().
  std::vector<PrecisionCandidate> candidates;
  double min_agreement = 0.99;
  std::size_t max_rows = 500;  // calibration rows used to measure agreement
};
// 8-bit inputs and outputs; activations and weights of 3 to 6 bits, accumulators rounded to
// their width or one bit more.
std::vector<PrecisionCandidate> default_precision_candidates();

// scikit-learn's MLPs as a float graph: x [1, F] -> (x W1 + b1 -> activation) ... -> x Wk + bk,
// coefs[i] [in, out] as MLPClassifier.coefs_, activation "identity", "logistic", "tanh" or
// "relu" between layers (the output activation runs on the client as the link). Throws
// std::invalid_argument on inconsistent sizes, non-finite weights or an unknown activation.
// With `activation_clip` (one bound per hidden layer, "relu" only) and `activation_levels` > 0,
// each hidden activation is relu -> clip to [0, bound] -> rounded to `activation_levels` steps of
// bound / activation_levels (fheml's quantization-aware networks: one fused lookup per neuron
// whose outputs the compiler represents exactly).
ir::FloatGraph mlp_graph(std::span<const Matrix> coefs,
                         std::span<const std::vector<double>> intercepts,
                         std::string_view activation, std::span<const double> activation_clip = {},
                         std::uint32_t activation_levels = 0);

struct NeuralNetworkOptions {
  // With `search` enabled, compile.quantization.n_bits and rounding_threshold_bits are the
  // search's; the other compile options (rounding method, p_error...) apply to every trial.
  compiler::CompileOptions compile;
  PrecisionSearch search;
  runtime::FheCircuitOptions runtime;
};

class NeuralNetwork {
 public:
  // `graph`: one input of shape [1, ...] and one output; `link` runs on the client after
  // decryption; calibration rows [N, F] with F the input's element count. Throws
  // std::invalid_argument (the compiler's diagnostic for graphs it cannot compile).
  NeuralNetwork(ir::FloatGraph graph, Link link, const Matrix& calibration,
                const NeuralNetworkOptions& options = {});

  std::size_t features() const { return features_; }
  std::size_t outputs() const { return outputs_; }
  Link link() const { return link_; }
  const ir::Shape& input_shape() const { return input_shape_; }
  const ir::FloatGraph& graph() const { return graph_; }

  // x [rows, F] -> the graph's output [rows, C] in `mode` (kDisable, kSimulate, kExecute).
  Matrix decision_function(const Matrix& x, runtime::Mode mode);
  Matrix predict(const Matrix& x, runtime::Mode mode);
  // The float graph itself on doubles: the reference the quantized circuit approximates.
  Matrix float_decision_function(const Matrix& x) const;

  std::vector<std::int64_t> quantize_input(const Matrix& x) const;
  std::vector<std::int64_t> run_integers(std::span<const std::int64_t> q, std::size_t rows,
                                         runtime::Mode mode);
  Matrix dequantize_output(std::span<const std::int64_t> q, std::size_t rows) const;

  runtime::FheCircuit& circuit() { return circuit_; }
  const runtime::FheCircuit& circuit() const { return circuit_; }
  // The search's trials in the order tried (empty without a search) and the chosen index.
  const std::vector<PrecisionTrial>& trials() const { return trials_; }
  std::size_t chosen_trial() const { return chosen_; }
  // Agreement of the compiled circuit (in the clear) with the float graph on up to
  // search.max_rows evenly spaced calibration rows, as the precision search measures it (the
  // chosen trial's with a search; measured for a fixed n_bits too). 1 is perfect; the Python
  // layer warns below 0.9.
  double calibration_agreement() const { return agreement_; }

 private:
  struct Prepared;  // the checked graph and its compiled circuit
  NeuralNetwork(Prepared&& prepared, Link link, const runtime::FheCircuitOptions& options);

  std::vector<PrecisionTrial> trials_;
  std::size_t chosen_ = 0;
  double agreement_ = 0;
  ir::FloatGraph graph_;
  ir::Shape input_shape_;
  std::size_t features_ = 0;
  std::size_t outputs_ = 0;
  Link link_ = Link::kIdentity;
  runtime::FheCircuit circuit_;
};

}  // namespace fheml::models
