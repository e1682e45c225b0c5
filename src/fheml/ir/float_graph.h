// The float graph: what an adapter (sklearn, ONNX, torch) or a C++ user builds from a model.
// SSA, nodes in topological order (a node only reads earlier nodes), static shapes inferred and
// checked when a node is added. `to_string` prints the text form used by the golden tests:
//
//   %0 = input "x" : f32[1,64]
//   %1 = constant "fc1.weight" : f32[128,64]
//   %3 = gemm %0, %1, %2 {trans_b} : f32[1,128]
//   %4 = relu %3 : f32[1,128]
//   output %4
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "fheml/ir/tensor.h"

namespace fheml::ir {

enum class FloatOp {
  kInput,
  kConstant,
  // linear in their (single) non-constant operand, or between two tensors for add/sub
  kGemm,    // ONNX Gemm: alpha * A' B' + beta * C, A and B 2-D, C broadcast to the output
  kMatMul,  // numpy matmul semantics (1-D promotion, batch broadcasting)
  kConv,    // ONNX Conv, 1-D (N,C,L) or 2-D (N,C,H,W); inputs X, W[, B]
  kAdd,
  kSub,
  kMul,
  kDiv,  // numpy broadcasting
  kSum,
  kMean,       // reductions over `axes` (all axes when empty), `keepdims`
  kAvgPool,    // 1-D or 2-D, kernel/strides/pads, count_include_pad
  kReshape,    // to `shape` (already resolved, no -1)
  kFlatten,    // ONNX Flatten at axes[0]: 2-D result
  kTranspose,  // permutation in `axes` (reverse when empty)
  kConcat,     // along axes[0], any number of inputs
  kSlice,      // starts/ends/axes/steps as ONNX (negative indices allowed)
  kPad,        // pads (begin of every axis, then end of every axis), pad_value
  kSqueeze,
  kUnsqueeze,  // axes
  kNeg,
  // univariate element-wise functions
  kRelu,
  kLeakyRelu /*alpha*/,
  kElu /*alpha*/,
  kSelu,
  kCelu /*alpha*/,
  kSigmoid,
  kHardSigmoid /*alpha, beta*/,
  kHardSwish,
  kTanh,
  kGelu,
  kSoftplus,
  kSoftsign,
  kExp,
  kLog,
  kAbs,
  kClip /*min alpha, max beta*/,
  kSign,
  kSqrt,
  kReciprocal,
  kErf,
  kFloor,
  kCeil,
  kRound,
  kSin,
  kCos,
  kNot,
  // binary element-wise, numpy broadcasting
  kPow,
  kMax,
  kMin,
  kLess,
  kLessEqual,
  kGreater,
  kGreaterEqual,
  kEqual,    // comparisons give 0/1
  kWhere,    // where(cond != 0, a, b)
  kMaxPool,  // 1-D or 2-D, kernel/strides/pads/dilations (padding never wins)
};

// Lower-case op name as printed ("leaky_relu", "max_pool").
std::string_view op_name(FloatOp op);

// Attributes; each op reads only the ones its comment above names.
// Left at kOpDefault, alpha and beta take the op's ONNX default when the node is added (gemm
// 1 and 1, leaky_relu 0.01, elu/celu 1, hard_sigmoid 0.2 and 0.5, clip -inf and +inf).
inline constexpr double kOpDefault = std::numeric_limits<double>::quiet_NaN();

struct FloatAttributes {
  double alpha = kOpDefault;
  double beta = kOpDefault;
  bool trans_a = false;
  bool trans_b = false;
  std::vector<std::int64_t> axes;
  bool keepdims = false;
  Shape shape;                         // kReshape target
  std::vector<std::size_t> kernel;     // pools (conv reads it from W)
  std::vector<std::size_t> strides;    // conv/pools: one per spatial axis (default 1)
  std::vector<std::size_t> dilations;  // conv/max pool (default 1)
  std::vector<std::size_t> pads;       // conv/pools: spatial begins then ends; kPad: every axis
  std::size_t groups = 1;              // conv
  bool count_include_pad = false;      // avg pool
  std::vector<std::int64_t> starts, ends, steps;  // slice (steps default 1)
  double pad_value = 0.0;                         // kPad
  FloatTensor value;                              // kConstant
};

struct FloatNode {
  FloatOp op = FloatOp::kInput;
  std::vector<ValueId> inputs;
  std::string name;  // from the model; may be empty
  Shape shape;
  FloatAttributes attributes;
};

class FloatGraph {
 public:
  ValueId input(std::string name, Shape shape);
  ValueId constant(std::string name, FloatTensor value);
  // Appends a node; infers and checks its shape. Throws std::invalid_argument naming the op,
  // the node and the offending shapes or attributes.
  ValueId add(FloatOp op, std::vector<ValueId> inputs, FloatAttributes attributes = {},
              std::string name = "");
  void mark_output(ValueId value);

  // Convenience builders for the common ops.
  ValueId gemm(ValueId a, ValueId b, ValueId c, bool trans_b = false, std::string name = "");
  ValueId unary(FloatOp op, ValueId x, std::string name = "");

  const std::vector<FloatNode>& nodes() const { return nodes_; }
  const FloatNode& node(ValueId id) const { return nodes_.at(id.index); }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  std::vector<ValueId> inputs() const;  // the kInput nodes, in order

 private:
  std::vector<FloatNode> nodes_;
  std::vector<ValueId> outputs_;
};

std::string to_string(const FloatGraph& graph);

// Op classes used by the quantizer.
bool is_unary_elementwise(FloatOp op);   // kNeg and every univariate function
bool is_binary_elementwise(FloatOp op);  // add/sub/mul/div, pow, max/min, comparisons
bool is_movement(FloatOp op);  // reshape/flatten/transpose/concat/slice/pad/squeeze/unsqueeze

// The scalar function of a univariate node (attributes from `node`).
double apply_unary(const FloatNode& node, double x);
// The scalar function of a binary element-wise op.
double apply_binary(FloatOp op, double a, double b);

// Runs the graph on doubles: the float reference. `inputs` in the order of inputs(); shapes must
// match (std::invalid_argument otherwise). evaluate_all returns every node's value.
std::vector<FloatTensor> evaluate(const FloatGraph& graph, std::span<const FloatTensor> inputs);
std::vector<FloatTensor> evaluate_all(const FloatGraph& graph, std::span<const FloatTensor> inputs);
// One node, given the values of its inputs.
FloatTensor evaluate_node(const FloatNode& node, std::span<const FloatTensor* const> inputs);

// The affine map of a node that is linear in its non-constant operands:
//   out[i] = bias[i] + sum over entries of row i: weight * operand(slot)[element]
// `constant_inputs[s]` is the value of input slot s when it is a constant, nullptr when it is a
// variable. Defined for gemm, matmul, conv (variable X, constant W/B), add/sub (any mix),
// mul/div with a constant operand (the divisor of div must be constant), neg, sum, mean, avg
// pool and the movement ops (kPad: padded elements are bias-only rows). Throws
// std::invalid_argument for other ops or when a product of two variables would be needed.
struct LinearEntry {
  std::uint32_t slot = 0;     // input slot of the node
  std::uint32_t element = 0;  // element of that input
  double weight = 0.0;
};
struct LinearMap {
  std::vector<std::size_t> row_begin;  // element_count(out) + 1 offsets into entries
  std::vector<LinearEntry> entries;
  std::vector<double> bias;  // element_count(out)
};
LinearMap linearize(const FloatNode& node, std::span<const FloatTensor* const> constant_inputs,
                    std::span<const Shape> input_shapes);

}  // namespace fheml::ir
