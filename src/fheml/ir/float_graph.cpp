// FloatGraph: building and the text form (shape inference: shape_inference.cpp).
#include "fheml/ir/float_graph.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <utility>

#include "fheml/ir/float_graph_internal.h"

namespace fheml::ir {

namespace {

using detail::list_to_string;
using detail::quoted;

constexpr double kInfinity = std::numeric_limits<double>::infinity();

std::string number_to_string(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

// Attributes that differ from their defaults, in the order they are printed.
std::string attributes_to_string(const FloatNode& node) {
  const FloatAttributes& a = node.attributes;
  std::vector<std::string> parts;
  const auto number = [&](const char* key, double value, double fallback) {
    // NaN never equals the default: it prints.
    if (!(value == fallback)) parts.push_back(std::string(key) + '=' + number_to_string(value));
  };
  const auto flag = [&](const char* key, bool value) {
    if (value) parts.push_back(key);
  };
  const auto sizes = [&](const char* key, const std::vector<std::size_t>& values,
                         std::size_t fallback) {
    if (std::any_of(values.begin(), values.end(), [&](std::size_t v) { return v != fallback; })) {
      parts.push_back(std::string(key) + '=' + list_to_string(values));
    }
  };
  const auto integers = [&](const char* key, const std::vector<std::int64_t>& values) {
    if (!values.empty()) parts.push_back(std::string(key) + '=' + list_to_string(values));
  };
  switch (node.op) {
    case FloatOp::kGemm:
      number("alpha", a.alpha, 1.0);
      number("beta", a.beta, 1.0);
      flag("trans_a", a.trans_a);
      flag("trans_b", a.trans_b);
      break;
    case FloatOp::kConv:
      sizes("strides", a.strides, 1);
      sizes("pads", a.pads, 0);
      sizes("dilations", a.dilations, 1);
      if (a.groups != 1) parts.push_back("groups=" + std::to_string(a.groups));
      break;
    case FloatOp::kAvgPool:
    case FloatOp::kMaxPool:
      parts.push_back("kernel=" + list_to_string(a.kernel));
      sizes("strides", a.strides, 1);
      sizes("pads", a.pads, 0);
      if (node.op == FloatOp::kMaxPool) sizes("dilations", a.dilations, 1);
      if (node.op == FloatOp::kAvgPool) flag("count_include_pad", a.count_include_pad);
      break;
    case FloatOp::kSum:
    case FloatOp::kMean:
      integers("axes", a.axes);
      flag("keepdims", a.keepdims);
      break;
    case FloatOp::kFlatten:
      if (a.axes != std::vector<std::int64_t>{1}) integers("axes", a.axes);
      break;
    case FloatOp::kTranspose:
    case FloatOp::kConcat:
    case FloatOp::kSqueeze:
    case FloatOp::kUnsqueeze:
      integers("axes", a.axes);
      break;
    case FloatOp::kSlice:
      integers("starts", a.starts);
      integers("ends", a.ends);
      integers("axes", a.axes);
      if (std::any_of(a.steps.begin(), a.steps.end(), [](std::int64_t s) { return s != 1; })) {
        integers("steps", a.steps);
      }
      break;
    case FloatOp::kPad:
      sizes("pads", a.pads, 0);
      number("pad_value", a.pad_value, 0.0);
      break;
    case FloatOp::kLeakyRelu:
      number("alpha", a.alpha, 0.01);
      break;
    case FloatOp::kElu:
    case FloatOp::kCelu:
      number("alpha", a.alpha, 1.0);
      break;
    case FloatOp::kHardSigmoid:
      number("alpha", a.alpha, 0.2);
      number("beta", a.beta, 0.5);
      break;
    case FloatOp::kClip:
      number("alpha", a.alpha, -kInfinity);
      number("beta", a.beta, kInfinity);
      break;
    default:
      break;
  }
  if (parts.empty()) return "";
  std::string text = " {";
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) text += ", ";
    text += parts[i];
  }
  return text + '}';
}

// The ONNX defaults of the scalar attributes, for the convenience builders.
FloatAttributes onnx_defaults(FloatOp op) {
  FloatAttributes a;
  a.alpha = 0.0;
  a.beta = 0.0;
  switch (op) {
    case FloatOp::kGemm:
      a.alpha = 1.0;
      a.beta = 1.0;
      break;
    case FloatOp::kLeakyRelu:
      a.alpha = 0.01;
      break;
    case FloatOp::kElu:
    case FloatOp::kCelu:
      a.alpha = 1.0;
      break;
    case FloatOp::kHardSigmoid:
      a.alpha = 0.2;
      a.beta = 0.5;
      break;
    case FloatOp::kClip:
      a.alpha = -kInfinity;
      a.beta = kInfinity;
      break;
    default:
      break;
  }
  return a;
}

}  // namespace

std::string_view op_name(FloatOp op) {
  switch (op) {
    case FloatOp::kInput:
      return "input";
    case FloatOp::kConstant:
      return "constant";
    case FloatOp::kGemm:
      return "gemm";
    case FloatOp::kMatMul:
      return "matmul";
    case FloatOp::kConv:
      return "conv";
    case FloatOp::kAdd:
      return "add";
    case FloatOp::kSub:
      return "sub";
    case FloatOp::kMul:
      return "mul";
    case FloatOp::kDiv:
      return "div";
    case FloatOp::kSum:
      return "sum";
    case FloatOp::kMean:
      return "mean";
    case FloatOp::kAvgPool:
      return "avg_pool";
    case FloatOp::kReshape:
      return "reshape";
    case FloatOp::kFlatten:
      return "flatten";
    case FloatOp::kTranspose:
      return "transpose";
    case FloatOp::kConcat:
      return "concat";
    case FloatOp::kSlice:
      return "slice";
    case FloatOp::kPad:
      return "pad";
    case FloatOp::kSqueeze:
      return "squeeze";
    case FloatOp::kUnsqueeze:
      return "unsqueeze";
    case FloatOp::kNeg:
      return "neg";
    case FloatOp::kRelu:
      return "relu";
    case FloatOp::kLeakyRelu:
      return "leaky_relu";
    case FloatOp::kElu:
      return "elu";
    case FloatOp::kSelu:
      return "selu";
    case FloatOp::kCelu:
      return "celu";
    case FloatOp::kSigmoid:
      return "sigmoid";
    case FloatOp::kHardSigmoid:
      return "hard_sigmoid";
    case FloatOp::kHardSwish:
      return "hard_swish";
    case FloatOp::kTanh:
      return "tanh";
    case FloatOp::kGelu:
      return "gelu";
    case FloatOp::kSoftplus:
      return "softplus";
    case FloatOp::kSoftsign:
      return "softsign";
    case FloatOp::kExp:
      return "exp";
    case FloatOp::kLog:
      return "log";
    case FloatOp::kAbs:
      return "abs";
    case FloatOp::kClip:
      return "clip";
    case FloatOp::kSign:
      return "sign";
    case FloatOp::kSqrt:
      return "sqrt";
    case FloatOp::kReciprocal:
      return "reciprocal";
    case FloatOp::kErf:
      return "erf";
    case FloatOp::kFloor:
      return "floor";
    case FloatOp::kCeil:
      return "ceil";
    case FloatOp::kRound:
      return "round";
    case FloatOp::kSin:
      return "sin";
    case FloatOp::kCos:
      return "cos";
    case FloatOp::kNot:
      return "not";
    case FloatOp::kPow:
      return "pow";
    case FloatOp::kMax:
      return "max";
    case FloatOp::kMin:
      return "min";
    case FloatOp::kLess:
      return "less";
    case FloatOp::kLessEqual:
      return "less_equal";
    case FloatOp::kGreater:
      return "greater";
    case FloatOp::kGreaterEqual:
      return "greater_equal";
    case FloatOp::kEqual:
      return "equal";
    case FloatOp::kWhere:
      return "where";
    case FloatOp::kMaxPool:
      return "max_pool";
  }
  return "unknown";
}

// The classes are contiguous ranges of the enum (kNeg..kNot, kAdd..kDiv and kPow..kEqual,
// kReshape..kUnsqueeze); the tests count their members.
bool is_unary_elementwise(FloatOp op) { return op >= FloatOp::kNeg && op <= FloatOp::kNot; }

bool is_binary_elementwise(FloatOp op) {
  return (op >= FloatOp::kAdd && op <= FloatOp::kDiv) ||
         (op >= FloatOp::kPow && op <= FloatOp::kEqual);
}

bool is_movement(FloatOp op) { return op >= FloatOp::kReshape && op <= FloatOp::kUnsqueeze; }

ValueId FloatGraph::input(std::string name, Shape shape) {
  FloatAttributes attributes;
  attributes.shape = std::move(shape);
  return add(FloatOp::kInput, {}, std::move(attributes), std::move(name));
}

ValueId FloatGraph::constant(std::string name, FloatTensor value) {
  FloatAttributes attributes;
  attributes.value = std::move(value);
  return add(FloatOp::kConstant, {}, std::move(attributes), std::move(name));
}

ValueId FloatGraph::add(FloatOp op, std::vector<ValueId> inputs, FloatAttributes attributes,
                        std::string name) {
  const FloatAttributes defaults = onnx_defaults(op);
  if (std::isnan(attributes.alpha)) attributes.alpha = defaults.alpha;
  if (std::isnan(attributes.beta)) attributes.beta = defaults.beta;
  const std::size_t index = nodes_.size();
  std::vector<Shape> shapes;
  shapes.reserve(inputs.size());
  for (std::size_t s = 0; s < inputs.size(); ++s) {
    if (inputs[s].index >= index) {
      throw std::invalid_argument(
          std::string(op_name(op)) + ' ' +
          (name.empty() ? '%' + std::to_string(index) : quoted(name)) + ": input " +
          std::to_string(s) + " is %" + std::to_string(inputs[s].index) +
          ", expected an earlier node (%0 to %" + std::to_string(index) + " excluded)");
    }
    shapes.push_back(nodes_[inputs[s].index].shape);
  }
  Shape shape = detail::infer_shape(op, shapes, attributes, name, index);
  if (index > std::numeric_limits<std::uint32_t>::max()) {
    throw std::invalid_argument("FloatGraph: too many nodes");
  }
  nodes_.push_back(
      FloatNode{op, std::move(inputs), std::move(name), std::move(shape), std::move(attributes)});
  return ValueId{static_cast<std::uint32_t>(index)};
}

void FloatGraph::mark_output(ValueId value) {
  if (value.index >= nodes_.size()) {
    throw std::invalid_argument("mark_output: %" + std::to_string(value.index) +
                                " is not a node of this graph (it has " +
                                std::to_string(nodes_.size()) + " nodes)");
  }
  outputs_.push_back(value);
}

ValueId FloatGraph::gemm(ValueId a, ValueId b, ValueId c, bool trans_b, std::string name) {
  FloatAttributes attributes = onnx_defaults(FloatOp::kGemm);
  attributes.trans_b = trans_b;
  return add(FloatOp::kGemm, {a, b, c}, std::move(attributes), std::move(name));
}

ValueId FloatGraph::unary(FloatOp op, ValueId x, std::string name) {
  if (!is_unary_elementwise(op)) {
    throw std::invalid_argument("FloatGraph::unary: " + std::string(op_name(op)) +
                                " is not a univariate element-wise op; use add()");
  }
  return add(op, {x}, onnx_defaults(op), std::move(name));
}

std::vector<ValueId> FloatGraph::inputs() const {
  std::vector<ValueId> ids;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].op == FloatOp::kInput) ids.push_back(ValueId{static_cast<std::uint32_t>(i)});
  }
  return ids;
}

std::string to_string(const FloatGraph& graph) {
  std::string text;
  for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
    const FloatNode& node = graph.nodes()[i];
    text += '%' + std::to_string(i) + " = " + std::string(op_name(node.op));
    if (node.op == FloatOp::kInput || node.op == FloatOp::kConstant) {
      text += ' ' + quoted(node.name);
    }
    for (std::size_t s = 0; s < node.inputs.size(); ++s) {
      text += (s == 0 ? " %" : ", %") + std::to_string(node.inputs[s].index);
    }
    text += attributes_to_string(node);
    text += " : f32" + to_string(node.shape) + '\n';
  }
  for (ValueId output : graph.outputs()) text += "output %" + std::to_string(output.index) + '\n';
  return text;
}

}  // namespace fheml::ir
