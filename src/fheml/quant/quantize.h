// Post-training quantization: a float graph plus calibration samples in, an integer graph (the
// contract of ir/int_graph.h) plus the client's quantizers out.
//
// Every float value is represented, while the graph is walked, in one of three forms:
//   clear    a constant (folded at compile time);
//   affine   float ~ scale[e] * q[e] + bias[e], q an integer node (inputs, accumulators): linear
//            float ops compose into clear integer coefficients, their float biases and input
//            zero points fold into `bias`, so they cost no bootstrap and no rounding;
//   function float = F_e(q[e]) for one integer node q and a univariate element-wise F built
//            from any chain (a DAG, e.g. x * sigmoid(x)) of float ops on that single encrypted
//            source: this is the fusion. It becomes ONE lookup (dequantize -> F -> requantize)
//            only when a linear op, a two-source op or an output needs it as integers.
// Two-source ops are built from lookups: a*b = floor((u+v)^2/4) - floor((u-v)^2/4),
// max(a,b) = b + relu(a-b), comparisons = a lookup on a-b, where(c,a,b) = b + c*(a-b),
// max pool = a tree of max.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "fheml/ir/float_graph.h"
#include "fheml/ir/int_graph.h"
#include "fheml/quant/quantizers.h"

namespace fheml::quant {

// Bits per role (as Concrete ML's n_bits dict): graph inputs, activations (lookup outputs that
// feed further ops), clear weights of linear ops, and lookup outputs that are graph outputs.
struct NBits {
  std::uint32_t model_inputs = 8;
  std::uint32_t op_inputs = 8;
  std::uint32_t op_weights = 8;
  std::uint32_t model_outputs = 8;
  static NBits uniform(std::uint32_t bits) { return {bits, bits, bits, bits}; }
};

// How an accumulator wider than a lookup is rounded (as Concrete's rounding_threshold_bits
// "method"): exactly (the low bits are cleared by bootstraps first, so encrypted equals clear),
// or approximately (no extra bootstrap: the lookup reads the top bits and the low ones fall
// inside its box; near a tie the result may be the neighbouring entry).
enum class RoundingMethod { kExact, kApproximate };

struct QuantizeOptions {
  NBits n_bits;
  // A lookup whose input needs more bits than max_lookup_bits is refused with a diagnostic,
  // unless rounding_threshold_bits is set: the input is then rounded exactly to that many bits
  // (exact: 2 bootstraps per removed chunk of up to that many bits; approximate: none) before
  // the lookup.
  std::optional<std::uint32_t> rounding_threshold_bits;
  RoundingMethod rounding_method = RoundingMethod::kExact;
  std::uint32_t max_lookup_bits = 8;
  bool per_channel_weights = true;  // one weight scale per output element row, else per op
  // Weights of linear ops not already on a grid are rounded with error feedback on the
  // calibration values of their inputs (GPTQ's optimal brain quantization, as the linear models
  // do: quant/weight_rounding.h) instead of each to its nearest level: same grid, same bit
  // widths, the rounding errors of a row cancel on data like the calibration's.
  bool optimize_weight_rounding = true;
  // Lookup outputs quantized per channel (axis 1: the features of a [N, C] tensor, the channels
  // of a conv output) instead of per tensor. Costs nothing: tables are per element anyway.
  bool per_channel_activations = false;
  // Graph inputs quantized per channel (axis 1: each feature of a [1, F] row) instead of per
  // tensor: features of different spreads (standardized data with outliers) each keep their
  // 2^bits levels. The client applies it; the circuit folds it into the first linear op.
  bool per_channel_inputs = false;
  // Graph inputs beyond their calibrated range are clipped only this fraction of the range past
  // each end (0: at the ends). Costs no input precision, only accumulator width: log2(1 + 2h)
  // bits on every value computed from the inputs. Worth it where nothing downstream is a lookup
  // calibrated on the training data (linear models: models::LinearModel sets 1).
  double input_headroom = 0.0;
  std::size_t max_calibration_samples = 1000;
  // Lookup inputs take the calibrated range widened by this fraction of its width on each side
  // (capped by the worst case), so that inputs a little outside the calibration data still read
  // the function. Beyond it, the lookup wraps around (negacyclic), in the clear as encrypted.
  double calibration_margin = 0.05;
  // Outputs that are accumulators (a last gemm) are decrypted as they are by default: exact, but
  // a wide accumulator of bootstrapped values needs a very low noise. With this set they pass
  // through an identity lookup at n_bits.model_outputs first (one bootstrap per output element,
  // rounded as rounding_threshold_bits says).
  bool requantize_outputs = false;
  // Each max pool's outputs pass through an exact identity lookup (one bootstrap per output,
  // when they fit max_lookup_bits): the next layer then reads fresh bootstraps instead of the
  // pool's inputs and relus, whose lookups no longer need that layer's low output noise
  // (compiler::CompileOptions::refresh_max_pool chooses by estimated cost).
  bool refresh_max_pool = false;
};

using Sample = std::vector<ir::FloatTensor>;  // one tensor per graph input, in inputs() order

struct QuantizedGraph {
  ir::IntGraph graph;
  std::vector<InputQuantizer> inputs;
  std::vector<OutputDequantizer> outputs;
};

// Throws std::invalid_argument for unusable options, empty or malformed calibration data,
// unsupported ops (named) and lookups too wide for max_lookup_bits (op, bits, range, fix).
QuantizedGraph quantize(const ir::FloatGraph& graph, std::span<const Sample> calibration,
                        const QuantizeOptions& options = {});

}  // namespace fheml::quant
