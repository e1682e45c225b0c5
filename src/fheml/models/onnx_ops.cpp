// The ONNX ops the importer handles: those of the default domain that map one to one onto a
// float op (unary_ops, binary_ops), the others (other_ops), the public list of them all
// (supported_onnx_ops), and the per-node dispatch (Importer::convert) onto float ops or the
// converters of onnx_convert.cpp. Reading the model and the driver: onnx_import.cpp.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fheml/models/onnx_importer.h"

namespace fheml::models::onnx_detail {

// Unary ops of the default domain that map one to one.
const std::map<std::string, FloatOp, std::less<>>& unary_ops() {
  static const std::map<std::string, FloatOp, std::less<>> ops = {
      {"Relu", FloatOp::kRelu},
      {"LeakyRelu", FloatOp::kLeakyRelu},
      {"Elu", FloatOp::kElu},
      {"Selu", FloatOp::kSelu},
      {"Celu", FloatOp::kCelu},
      {"Sigmoid", FloatOp::kSigmoid},
      {"HardSigmoid", FloatOp::kHardSigmoid},
      {"HardSwish", FloatOp::kHardSwish},
      {"Tanh", FloatOp::kTanh},
      {"Gelu", FloatOp::kGelu},
      {"Softplus", FloatOp::kSoftplus},
      {"Softsign", FloatOp::kSoftsign},
      {"Exp", FloatOp::kExp},
      {"Log", FloatOp::kLog},
      {"Abs", FloatOp::kAbs},
      {"Sign", FloatOp::kSign},
      {"Sqrt", FloatOp::kSqrt},
      {"Reciprocal", FloatOp::kReciprocal},
      {"Erf", FloatOp::kErf},
      {"Floor", FloatOp::kFloor},
      {"Ceil", FloatOp::kCeil},
      {"Round", FloatOp::kRound},
      {"Sin", FloatOp::kSin},
      {"Cos", FloatOp::kCos},
      {"Not", FloatOp::kNot},
      {"Neg", FloatOp::kNeg},
  };
  return ops;
}

const std::map<std::string, FloatOp, std::less<>>& binary_ops() {
  static const std::map<std::string, FloatOp, std::less<>> ops = {
      {"Add", FloatOp::kAdd},
      {"Sub", FloatOp::kSub},
      {"Mul", FloatOp::kMul},
      {"Div", FloatOp::kDiv},
      {"Pow", FloatOp::kPow},
      {"Less", FloatOp::kLess},
      {"LessOrEqual", FloatOp::kLessEqual},
      {"Greater", FloatOp::kGreater},
      {"GreaterOrEqual", FloatOp::kGreaterEqual},
      {"Equal", FloatOp::kEqual},
  };
  return ops;
}

namespace {

// Everything else the importer handles (constant-only ops included).
const std::set<std::string, std::less<>>& other_ops() {
  static const std::set<std::string, std::less<>> ops = {
      "ArgMax",
      "AveragePool",
      "BatchNormalization",
      "Cast",
      "Clip",
      "Concat",
      "Constant",
      "ConstantOfShape",
      "Conv",
      "DequantizeLinear",
      "Dropout",
      "Expand",
      "Flatten",
      "Gather",
      "Gemm",
      "GlobalAveragePool",
      "GlobalMaxPool",
      "Identity",
      "LogSoftmax",
      "MatMul",
      "Max",
      "MaxPool",
      "Mean",
      "Min",
      "Pad",
      "PRelu",
      "QuantizeLinear",
      "Range",
      "ReduceMean",
      "ReduceSum",
      "Reshape",
      "Shape",
      "Size",
      "Slice",
      "Softmax",
      "Split",
      "Squeeze",
      "Sum",
      "Transpose",
      "Unsqueeze",
      "Where",
  };
  return ops;
}

}  // namespace

bool supported(std::string_view op) {
  return unary_ops().contains(op) || binary_ops().contains(op) || other_ops().contains(op);
}

void Importer::convert(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  if (node.input_size() > 64 || node.output_size() > 64) {
    node_fail("more than 64 inputs or outputs");
  }
  if (const auto it = unary_ops().find(op); it != unary_ops().end()) {
    FloatAttributes a;
    if (op == "LeakyRelu") a.alpha = attr_float("alpha", 0.01);
    if (op == "Elu" || op == "Celu") a.alpha = attr_float("alpha", 1.0);
    if (op == "HardSigmoid") {
      a.alpha = attr_float("alpha", 0.2);
      a.beta = attr_float("beta", 0.5);
    }
    if (op == "Selu" &&
        (std::abs(attr_float("alpha", 1.67326319217681884765625) - 1.6732632) > 1e-6 ||
         std::abs(attr_float("gamma", 1.05070102214813232421875) - 1.0507010) > 1e-6)) {
      node_fail("only the default alpha and gamma are supported");
    }
    if (op == "Gelu" && attr_string("approximate", "none") != "none") {
      node_fail("approximate = '" + attr_string("approximate", "") + "' is not supported");
    }
    set_output(0, emit(it->second, {&input(0)}, a));
    return;
  }
  if (const auto it = binary_ops().find(op); it != binary_ops().end()) {
    if (opset_ < 7 && attribute("broadcast") != nullptr) node_fail("legacy broadcast attribute");
    set_output(0, emit(it->second, {&input(0), &input(1)}));
    return;
  }
  if (op == "Sum" || op == "Max" || op == "Min" || op == "Mean") {
    const FloatOp f = op == "Max" ? FloatOp::kMax : op == "Min" ? FloatOp::kMin : FloatOp::kAdd;
    Value acc = input(0);
    for (int i = 1; i < node.input_size(); ++i) acc = emit(f, {&acc, &input(i)});
    if (op == "Mean" && node.input_size() > 1) {
      Value n = constant(FloatTensor({}, {1.0 / node.input_size()}));
      acc = emit(FloatOp::kMul, {&acc, &n});
    }
    set_output(0, std::move(acc));
    return;
  }
  if (op == "Where") {
    set_output(0, emit(FloatOp::kWhere, {&input(0), &input(1), &input(2)}));
    return;
  }
  if (op == "Gemm") return convert_gemm();
  if (op == "MatMul") {
    set_output(0, emit(FloatOp::kMatMul, {&input(0), &input(1)}));
    return;
  }
  if (op == "Conv") return convert_conv();
  if (op == "MaxPool") return convert_pool(true, false);
  if (op == "AveragePool") return convert_pool(false, false);
  if (op == "GlobalAveragePool") return convert_pool(false, true);
  if (op == "GlobalMaxPool") return convert_pool(true, true);
  if (op == "ReduceMean") return convert_reduce(true);
  if (op == "ReduceSum") return convert_reduce(false);
  if (op == "BatchNormalization") return convert_batch_norm();
  if (op == "QuantizeLinear") return convert_quantize(true);
  if (op == "DequantizeLinear") return convert_quantize(false);
  if (op == "Clip") return convert_clip();
  if (op == "Slice") return convert_slice();
  if (op == "Pad") return convert_pad();
  if (op == "Split") return convert_split();
  if (op == "Gather") return convert_gather();
  if (op == "Reshape") return convert_reshape();
  if (op == "Identity") return alias_output(0, 0);
  if (op == "Dropout") {
    // Inference: the identity (training_mode, opset 12+, must be a false constant if given).
    if (has_input(2) && known(2, "training_mode").data.at(0) != 0) {
      node_fail("training_mode = true is not supported");
    }
    if (node.output_size() > 1 && !node.output(1).empty()) {
      Value mask = constant(
          FloatTensor(shape_of(0), std::vector<double>(ir::element_count(shape_of(0)), 1.0)), true);
      set_output(1, std::move(mask));
    }
    notes_.push_back("Dropout '" + node.name() + "' dropped (inference)");
    return alias_output(0, 0);
  }
  if (op == "Cast") {
    using TP = onnx::TensorProto;
    const std::int64_t to = attr_int("to", 0);
    const bool to_float = to == TP::FLOAT || to == TP::DOUBLE || to == TP::FLOAT16;
    Value v = input(0);
    if (!v.known) {
      if (!to_float)
        node_fail("a cast of an encrypted value to type " + std::to_string(to) +
                  " is not supported");
      return set_output(0, std::move(v));
    }
    if (!to_float) {
      for (double& d : v.constant.data) d = to == TP::BOOL ? (d != 0 ? 1.0 : 0.0) : std::trunc(d);
    }
    v.integer = !to_float;
    v.id.reset();
    return set_output(0, std::move(v));
  }
  if (op == "Flatten") {
    FloatAttributes a;
    // Flatten's axis is in [-r, r] (r: the rank), counted from the end when negative.
    const auto rank = static_cast<std::int64_t>(shape_of(0).size());
    std::int64_t axis = attr_int("axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) {
      node_fail("axis " + std::to_string(attr_int("axis", 1)) + " is out of range for rank " +
                std::to_string(rank));
    }
    a.axes = {axis};
    const bool integer = input(0).integer;
    Value out = emit(FloatOp::kFlatten, {&input(0)}, a);
    out.integer = out.known && integer;
    return set_output(0, std::move(out));
  }
  if (op == "Transpose") {
    FloatAttributes a;
    a.axes = attr_ints("perm");
    return set_output(0, emit(FloatOp::kTranspose, {&input(0)}, a));
  }
  if (op == "Concat") {
    FloatAttributes a;
    a.axes = {attr_int("axis", opset_ < 4 ? 1 : std::numeric_limits<std::int64_t>::min())};
    if (a.axes[0] == std::numeric_limits<std::int64_t>::min())
      node_fail("attribute axis is required");
    std::vector<Value*> in;
    bool integer = true;
    for (int i = 0; i < node.input_size(); ++i) {
      in.push_back(&input(i));
      integer &= in.back()->integer;
    }
    Value out = emit(FloatOp::kConcat, in, a);
    out.integer = out.known && integer;
    return set_output(0, std::move(out));
  }
  if (op == "Squeeze" || op == "Unsqueeze") {
    FloatAttributes a;
    a.axes = opset_ < 13 ? attr_ints("axes")
                         : (has_input(1) ? known_ints(1, "axes") : std::vector<std::int64_t>{});
    const bool integer = input(0).integer;
    Value out = emit(op == "Squeeze" ? FloatOp::kSqueeze : FloatOp::kUnsqueeze, {&input(0)}, a);
    out.integer = out.known && integer;
    return set_output(0, std::move(out));
  }
  if (op == "Constant") {
    if (const auto* a = attribute("value")) {
      if (a->type() != onnx::AttributeProto::TENSOR) node_fail("attribute value must be a tensor");
      bool integer = false;
      FloatTensor t =
          read_tensor(a->t(), where() + " value", options_.max_tensor_elements, &integer);
      return set_output(0, constant(std::move(t), integer));
    }
    if (attribute("value_float") != nullptr) {
      return set_output(0, constant(FloatTensor({}, {attr_float("value_float", 0)})));
    }
    if (const auto* a = attribute("value_floats")) {
      if (a->type() != onnx::AttributeProto::FLOATS) node_fail("value_floats must be floats");
      std::vector<double> d(a->floats().begin(), a->floats().end());
      return set_output(0, constant(FloatTensor({d.size()}, d)));
    }
    if (attribute("value_int") != nullptr) {
      return set_output(
          0, constant(FloatTensor({}, {static_cast<double>(attr_int("value_int", 0))}), true));
    }
    if (attribute("value_ints") != nullptr) {
      const std::vector<std::int64_t> v = attr_ints("value_ints");
      return set_output(
          0, constant(FloatTensor({v.size()}, std::vector<double>(v.begin(), v.end())), true));
    }
    node_fail("only tensor, float(s) and int(s) constants are supported");
  }
  if (op == "Shape" || op == "Size") {
    const Shape s = shape_of(0);
    if (op == "Size") {
      return set_output(
          0, constant(FloatTensor({}, {static_cast<double>(ir::element_count(s))}), true));
    }
    const auto rank = static_cast<std::int64_t>(s.size());
    std::int64_t start = attr_int("start", 0), end = attr_int("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<std::int64_t>(start, 0, rank);
    end = std::clamp<std::int64_t>(end, start, rank);
    std::vector<double> d(s.begin() + start, s.begin() + end);
    return set_output(0, constant(FloatTensor({d.size()}, d), true));
  }
  if (op == "ConstantOfShape") {
    const std::vector<std::int64_t> dims = known_ints(0, "shape");
    const std::size_t count = checked_count(dims, options_.max_tensor_elements, where());
    double fill = 0.0;
    bool integer = false;
    if (const auto* a = attribute("value")) {
      if (a->type() != onnx::AttributeProto::TENSOR) node_fail("attribute value must be a tensor");
      const FloatTensor v = read_tensor(a->t(), where() + " value", 1, &integer);
      if (v.size() != 1) node_fail("value must hold one element");
      fill = v.data[0];
    }
    return set_output(
        0, constant(FloatTensor(Shape(dims.begin(), dims.end()), std::vector<double>(count, fill)),
                    integer));
  }
  if (op == "Range") {
    const double start = known(0, "start").data.at(0), limit = known(1, "limit").data.at(0),
                 delta = known(2, "delta").data.at(0);
    if (delta == 0) node_fail("delta must not be 0");
    const double n = std::max(std::ceil((limit - start) / delta), 0.0);
    if (n > static_cast<double>(options_.max_tensor_elements)) node_fail("range too long");
    std::vector<double> d(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = start + static_cast<double>(i) * delta;
    return set_output(0, constant(FloatTensor({d.size()}, d), input(0).integer));
  }
  if (op == "Expand") {
    const std::vector<std::int64_t> dims = known_ints(1, "shape");
    const Shape x = shape_of(0);
    checked_count(dims, options_.max_tensor_elements, where());
    // Broadcast x against the target shape: x * ones(target).
    Value ones = constant(
        FloatTensor(
            Shape(dims.begin(), dims.end()),
            std::vector<double>(checked_count(dims, options_.max_tensor_elements, where()), 1.0)),
        true);
    const bool integer = input(0).integer;
    Value out = emit(FloatOp::kMul, {&input(0), &ones});
    out.integer = out.known && integer;
    return set_output(0, std::move(out));
  }
  if (op == "PRelu") {
    // prelu(x) = relu(x) - slope * relu(-x): one function of x, fused into one lookup.
    Value& x = input(0);
    Value& slope = input(1);
    if (!slope.known) node_fail("slope must be a constant");
    Value pos = emit(FloatOp::kRelu, {&x});
    Value neg = emit(FloatOp::kNeg, {&x});
    Value neg_relu = emit(FloatOp::kRelu, {&neg});
    Value scaled = emit(FloatOp::kMul, {&neg_relu, &slope});
    return set_output(0, emit(FloatOp::kSub, {&pos, &scaled}));
  }
  if (op == "Softmax" || op == "LogSoftmax" || op == "ArgMax") {
    node_fail(op +
              " runs only as the last op of a single-output graph (on the client, after "
              "decryption); inside the network it has no encrypted equivalent");
  }
  node_fail("unsupported op");  // check_ops() lists these first
}

}  // namespace fheml::models::onnx_detail

namespace fheml::models {

using onnx_detail::binary_ops;
using onnx_detail::other_ops;
using onnx_detail::unary_ops;

std::vector<std::string> supported_onnx_ops() {
  std::vector<std::string> ops;
  for (const auto& [name, op] : unary_ops()) ops.push_back(name);
  for (const auto& [name, op] : binary_ops()) ops.push_back(name);
  for (const auto& name : other_ops()) ops.push_back(name);
  std::sort(ops.begin(), ops.end());
  return ops;
}

}  // namespace fheml::models
