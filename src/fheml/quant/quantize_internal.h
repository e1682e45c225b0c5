// Internal to the quantizer (src/fheml/quant/quantize*.cpp): not part of the API. The
// representations of float values while the graph is walked (see quantize.h) and the class that
// walks it; its member functions are defined in quantize.cpp (entry point, options, the walk,
// outputs, pruning), quantize_lookups.cpp (integer nodes, lookups, rounding) and
// quantize_values.cpp (representations, materialize, broadcast, multiply, expressions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fheml/quant/quantize.h"

namespace fheml::quant::detail {

using ir::FloatNode;
using ir::FloatOp;
using ir::IntNode;
using ir::IntOp;
using ir::IntRange;
using ir::Shape;
using ir::ValueId;

// Rows with more inputs than this keep plain rounding: error feedback costs O(F^3) per group.
inline constexpr std::size_t kMaxRoundedInputs = 512;

[[noreturn]] inline void fail(const std::string& message) { throw std::invalid_argument(message); }

inline std::string describe(const FloatNode& node) {
  std::string s(ir::op_name(node.op));
  if (!node.name.empty()) s += " " + node.name;
  return s;
}

// float ~ scale[e] * q[e] + bias[e], q = the values of integer node `node`.
struct Affine {
  ValueId node;
  std::vector<double> scale;
  std::vector<double> bias;
};

// Operand of an expression step: a previous value (0 = the source integer, k = step k-1) or a
// per-element constant.
struct Operand {
  int ref = -1;
  std::vector<double> constant;
};

struct Step {
  enum class Kind { kAffine, kUnary, kBinary, kWhere } kind = Kind::kAffine;
  const FloatNode* node = nullptr;  // unary: attributes
  FloatOp op = FloatOp::kAdd;       // binary
  std::vector<Operand> operands;
  std::vector<double> scale, bias;  // kAffine, applied to operands[0]
};

struct Expression {
  ValueId source;
  std::vector<Step> steps;
};

struct Repr {
  enum class Kind { kClear, kAffine, kFunction } kind = Kind::kClear;
  Shape shape;
  ir::FloatTensor clear;
  Affine affine;
  Expression function;
  std::string origin;
};

inline std::vector<double> broadcast_values(const ir::FloatTensor& t, const Shape& out) {
  const auto map = ir::broadcast_index(t.shape, out);
  std::vector<double> v(map.size());
  for (std::size_t i = 0; i < map.size(); ++i) v[i] = t.data[map[i]];
  return v;
}

class Quantizer {
 public:
  Quantizer(const ir::FloatGraph& graph, std::span<const Sample> calibration,
            const QuantizeOptions& options);

  QuantizedGraph run();

 private:
  // Options checks, the walk, outputs and pruning: quantize.cpp.
  void check_options() const;

  // ---- integer nodes and their calibration values (quantize_lookups.cpp) ----

  ValueId add_node(IntNode node);

  IntRange observed(ValueId id) const;

  // Linear node from float coefficients over elements of integer nodes; rows quantized to
  // integers (exactly when the coefficients of a row are integer multiples of its smallest).
  // Returns the affine view of the new node.
  struct Term {
    std::uint32_t node, element;
    double weight;
  };
  // integer_rows: the weights are integers to keep as they are and `constants` is an integer
  // bias of the node (scale 1, float bias 0).
  Affine build_linear(std::vector<std::vector<Term>> rows, std::vector<double> constants,
                      const Shape& shape, const std::string& origin, bool integer_rows = false);

  // Integer levels for the rows not `exact` (weight ~ level * scale[r]), rounded with error
  // feedback on the calibration values of their inputs (weight_rounding.h), rows with the same
  // inputs sharing one inverse covariance; an empty vector leaves a row to plain rounding (exact
  // rows, single-term rows, more than kMaxRoundedInputs inputs, or the option off).
  std::vector<std::vector<std::int64_t>> round_rows(const std::vector<std::vector<Term>>& rows,
                                                    const std::vector<double>& scale,
                                                    const std::vector<bool>& exact);

  // ---- lookups (quantize_lookups.cpp) ----

  // A lookup of integer function `table_value(element, x)` over node `source`, choosing the
  // index range (worst case when it is no wider than the calibrated one, else calibrated and
  // centred in the table so that near misses still read the function), rounding when the
  // range is wider than a lookup can take. `distinct_per_element` false: one table for all.
  ValueId build_lookup(ValueId source, const std::string& origin,
                       const std::function<std::int64_t(std::size_t, double)>& table_value,
                       bool distinct_per_element);

  // Exact rounding: returns a node equal to source - ((source + offset) mod 2^shift), whose
  // value + offset is a multiple of 2^shift. The low bits are removed in chunks of up to p bits,
  // two bootstraps per chunk: the first reads the chunk with the bit above it in the padding
  // position through a constant table, whose sign gives that bit, which is cleared; the second
  // then reads the chunk with a zero padding bit.
  ValueId round_low_bits(ValueId source, std::int64_t offset, std::uint32_t shift, std::uint32_t p,
                         const std::string& origin);

  // A linear node with integer weights and an integer bias (never rescaled).
  ValueId integer_linear(std::vector<std::vector<Term>> rows, std::vector<double> bias,
                         const Shape& shape, const std::string& origin);

  ValueId raw_lookup(ValueId input, std::int64_t offset, std::uint32_t shift, std::uint32_t bits,
                     const Shape& shape, const std::string& origin,
                     const std::function<std::int64_t(std::size_t)>& entry, IntRange range);

  // ---- representations (quantize_values.cpp) ----

  Repr affine_repr(Affine a, Shape shape, std::string origin);

  Expression as_expression(const Repr& r) const;

  ValueId source_of(const Repr& r) const;

  // Quantization of a univariate function's values: range from the calibration inputs.
  struct OutputQuantizer {
    double scale, bias;
    std::int64_t top;
  };

  // Observed range of a function over the calibration values of its source.
  std::pair<double, double> observed_range(const Expression& f, std::size_t count);

  OutputQuantizer natural_quantizer(const Expression& f, std::size_t count, std::uint32_t bits);

  // The step g when the function's values on the calibration rows are at least 3 distinct
  // values lo + k g (k integer, at most `top`), else nothing.
  std::optional<double> observed_grid(const Expression& f, std::size_t count, std::int64_t top);

  // A given step, values from `bias` up: shares the scale of another operand.
  OutputQuantizer quantizer_with_scale(const Expression& f, std::size_t count, double scale,
                                       std::optional<double> bias = {});

  Affine materialize(const Repr& r, std::uint32_t bits, std::optional<OutputQuantizer> fixed = {});

  // The linear map of a float node applied to affine operands.
  Affine apply_linear(const FloatNode& node, const std::vector<const Repr*>& operands,
                      const std::vector<Affine>& affines);

  // An affine tensor broadcast (numpy) to `shape`.
  Affine broadcast(const Affine& a, const Shape& from, const Shape& to);

  // a - b (or a + b) of two affine tensors of one shape.
  Affine combine(const Affine& a, const Affine& b, double sign, const Shape& shape,
                 const std::string& origin);

  // Scale shared by two operands about to be added or compared: an already-integer operand
  // keeps its own (no bootstrap to requantize it); two functions share the coarser one.
  std::optional<double> common_scale(const Repr& a, const Repr& b);

  // Product of two encrypted tensors of one shape. With x = s_a q_a + c_a, y = s_b q_b + c_b:
  //   x y = s_a s_b (q_a q_b + beta q_a + alpha q_b) + c_a c_b,  alpha = c_a/s_a, beta = c_b/s_b,
  // q_a q_b = floor((q_a+q_b)^2/4) - floor((q_a-q_b)^2/4) exactly (same parity), and the cross
  // terms are made integer by the smallest power of two K for which rounding K alpha and K beta
  // moves the result by at most a quarter of s_a s_b: L = K q_a q_b + round(K beta) q_a +
  // round(K alpha) q_b, x y ~ (s_a s_b / K) L + c_a c_b (K = 1 when the zero points are integers).
  Affine multiply(const Affine& a, const Affine& b, const Shape& shape, const std::string& origin);

  // max(a, b) = b + relu(a - b) (min: a - relu(a - b)), the relu on the grid of a - b. On one
  // grid (a and b of the same scale and offset) the result is exact and its range, and that of
  // a - b, are those of the operands' maximum and difference (tighten).
  Affine maximum(const Affine& a, const Affine& b, const Shape& shape, bool is_max,
                 const std::string& origin);

  // Narrows a node's range to what its values can be (an intersection): where interval
  // arithmetic over its terms overstates it.
  void tighten(ValueId node, IntRange range);

  // -- expressions, moves and max pool --

  // Appends the steps of `g` to `f` (same source) and returns the index of g's result.
  static int merge_into(Expression& f, const Expression& g);

  Operand operand_for(const Repr& r, Expression& f, const Shape& shape);

  Repr move_function(const FloatNode& node, const Repr& x, const std::string& origin);

  Repr lower_max_pool(const FloatNode& node, const Repr& x, const std::string& origin);

  // ---- the walk, outputs and pruning (quantize.cpp) ----

  Repr lower(const FloatNode& node, std::size_t index);

  Repr lower_input(const FloatNode& node);

  Repr lower_unary(const FloatNode& node, const Repr& x, const std::string& origin);

  Repr lower_binary(const FloatNode& node, const Repr& a, const Repr& b, const std::string& origin);

  Repr lower_where(const FloatNode& node, const std::vector<const Repr*>& in,
                   const std::string& origin);

  void emit_output(ValueId out);

  // Drops nodes no output needs (intermediate linear nodes folded into later ones, gathers of
  // max pool windows...), keeping every input so that the quantizers keep their order.
  void prune();

  const ir::FloatGraph& graph_;
  QuantizeOptions options_;
  std::vector<Sample> samples_;
  std::vector<Repr> reprs_;
  QuantizedGraph result_;
  std::vector<std::vector<ir::IntTensor>> calibration_;  // per integer node, per sample
};

}  // namespace fheml::quant::detail
