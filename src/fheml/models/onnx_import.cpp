#include "fheml/models/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace fheml::models {
namespace {

using ir::FloatAttributes;
using ir::FloatOp;
using ir::FloatTensor;
using ir::Shape;
using ir::ValueId;

[[noreturn]] void fail(const std::string& message) {
  throw OnnxImportError("ONNX import: " + message);
}

template <class T>
std::string list(const std::vector<T>& values) {
  std::string s = "[";
  for (std::size_t i = 0; i < values.size(); ++i) s += (i ? "," : "") + std::to_string(values[i]);
  return s + "]";
}

// A value of the ONNX graph: a constant known at import time (initializers, Constant nodes,
// shapes and everything computed from them only), or a variable of the float graph.
struct Value {
  bool known = false;
  FloatTensor constant;  // when known
  bool integer = false;  // int or bool element type: folding uses integer semantics
  std::optional<ValueId> id;
};

std::size_t checked_count(const std::vector<std::int64_t>& dims, std::size_t limit,
                          const std::string& what) {
  std::size_t count = 1;
  for (std::int64_t d : dims) {
    if (d < 0) fail(what + ": negative dimension in " + list(dims));
    const auto u = static_cast<std::size_t>(d);
    if (u != 0 && count > limit / u) {
      fail(what + ": " + list(dims) + " has more than " + std::to_string(limit) + " elements");
    }
    count *= u;
  }
  if (count > limit) {
    fail(what + ": " + list(dims) + " has more than " + std::to_string(limit) + " elements");
  }
  return count;
}

// Little-endian fixed-width values out of raw_data.
template <class T>
std::vector<double> from_raw(const std::string& raw, std::size_t count, const std::string& what) {
  if (raw.size() != count * sizeof(T)) {
    fail(what + ": raw_data holds " + std::to_string(raw.size()) + " bytes, " +
         std::to_string(count) + " elements of " + std::to_string(sizeof(T)) + " bytes need " +
         std::to_string(count * sizeof(T)));
  }
  static_assert(std::endian::native == std::endian::little, "raw_data is little-endian");
  std::vector<double> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
  return out;
}

template <class Field>
std::vector<double> from_field(const Field& field, std::size_t count, const std::string& what) {
  if (static_cast<std::size_t>(field.size()) != count) {
    fail(what + ": holds " + std::to_string(field.size()) + " values, its dims need " +
         std::to_string(count));
  }
  return std::vector<double>(field.begin(), field.end());
}

// TensorProto -> doubles. `integer` reports an integer or bool element type.
FloatTensor read_tensor(const onnx::TensorProto& t, const std::string& what, std::size_t limit,
                        bool* integer) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    fail(what +
         ": its data is stored in an external file; save the model with its weights "
         "inside (onnx.save(model, path, save_as_external_data=False))");
  }
  if (t.has_segment()) fail(what + ": segmented tensors are not supported");
  const std::vector<std::int64_t> dims(t.dims().begin(), t.dims().end());
  const std::size_t count = checked_count(dims, limit, what);
  const bool raw = t.has_raw_data();
  std::vector<double> data;
  bool is_integer = true;
  using TP = onnx::TensorProto;
  switch (t.data_type()) {
    case TP::FLOAT:
      is_integer = false;
      data = raw ? from_raw<float>(t.raw_data(), count, what)
                 : from_field(t.float_data(), count, what);
      break;
    case TP::DOUBLE:
      is_integer = false;
      data = raw ? from_raw<double>(t.raw_data(), count, what)
                 : from_field(t.double_data(), count, what);
      break;
    case TP::INT64:
      data = raw ? from_raw<std::int64_t>(t.raw_data(), count, what)
                 : from_field(t.int64_data(), count, what);
      break;
    case TP::INT32:
      data = raw ? from_raw<std::int32_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    case TP::INT16:
      data = raw ? from_raw<std::int16_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    case TP::INT8:
      data = raw ? from_raw<std::int8_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    case TP::UINT16:
      data = raw ? from_raw<std::uint16_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    case TP::UINT8:
    case TP::BOOL:
      data = raw ? from_raw<std::uint8_t>(t.raw_data(), count, what)
                 : from_field(t.int32_data(), count, what);
      break;
    default:
      fail(what + ": element type " + std::to_string(t.data_type()) +
           " is not supported (float, double, bool and integers up to 64 bits are)");
  }
  for (double v : data) {
    if (std::isnan(v)) fail(what + ": holds NaN");
  }
  if (integer != nullptr) *integer = is_integer;
  return FloatTensor(Shape(dims.begin(), dims.end()), std::move(data));
}

std::int64_t element_type_of(const onnx::ValueInfoProto& info) {
  return info.type().has_tensor_type() ? info.type().tensor_type().elem_type() : 0;
}

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

bool supported(std::string_view op) {
  return unary_ops().contains(op) || binary_ops().contains(op) || other_ops().contains(op);
}

class Importer {
 public:
  Importer(const onnx::ModelProto& model, const OnnxImportOptions& options)
      : model_(model), options_(options) {}

  OnnxImport run();

 private:
  const onnx::GraphProto& graph() const { return model_.graph(); }
  std::string where() const {
    return "node '" + node_->name() + "' (#" + std::to_string(node_index_) + ", " +
           node_->op_type() + ")";
  }
  [[noreturn]] void node_fail(const std::string& message) const { fail(where() + ": " + message); }

  void check_opset();
  void check_ops() const;
  void read_initializers();
  void read_inputs();
  void peel_post_processing();
  void plan_batch_norm_folding();
  void convert(const onnx::NodeProto& node);
  void finish(OnnxImport& out);

  // Attributes, with their kind checked.
  const onnx::AttributeProto* attribute(std::string_view name) const;
  std::int64_t attr_int(std::string_view name, std::int64_t fallback) const;
  double attr_float(std::string_view name, double fallback) const;
  std::vector<std::int64_t> attr_ints(std::string_view name) const;
  std::string attr_string(std::string_view name, std::string fallback) const;
  void require_attr_absent_or(std::string_view name, std::int64_t expected) const;

  // Inputs of the current node.
  bool has_input(int i) const { return i < node_->input_size() && !node_->input(i).empty(); }
  Value& input(int i);
  const FloatTensor& known(int i, const char* what);
  std::vector<std::int64_t> known_ints(int i, const char* what);
  ValueId variable(Value& v, const std::string& name);
  Shape shape_of(int i);
  void set_output(int i, Value v);
  void alias_output(int i, int from_input);

  // Adds `op` on the given values: folded when every one is known, else a graph node.
  Value emit(FloatOp op, std::vector<Value*> in, FloatAttributes attributes = {});
  Value constant(FloatTensor t, bool integer = false) {
    Value v;
    v.known = true;
    v.integer = integer;
    v.constant = std::move(t);
    return v;
  }

  void convert_gemm();
  void convert_conv();
  void convert_pool(bool max, bool global);
  void convert_reduce(bool mean);
  void convert_batch_norm();
  void convert_quantize(bool quantize);
  void convert_clip();
  void convert_slice();
  void convert_pad();
  void convert_split();
  void convert_gather();
  void convert_reshape();
  std::size_t axis_of(std::int64_t axis, std::size_t rank) const;
  std::vector<std::size_t> spatial_pads(const Shape& x, const std::vector<std::size_t>& kernel,
                                        const std::vector<std::size_t>& strides,
                                        const std::vector<std::size_t>& dilations);

  const onnx::ModelProto& model_;
  OnnxImportOptions options_;
  std::int64_t opset_ = 0;
  ir::FloatGraph graph_;
  std::unordered_map<std::string, Value> values_;
  std::vector<std::string> notes_;
  Link post_ = Link::kIdentity;
  std::set<const onnx::NodeProto*> skipped_;  // moved to the client
  std::string output_name_;                   // after peeling
  // BatchNormalization folding: conv/gemm node -> the BN node folded into it.
  std::map<const onnx::NodeProto*, const onnx::NodeProto*> folded_bn_;
  std::set<std::string> graph_inputs_;
  std::set<std::string> skipped_input_quant_;  // QuantizeLinear outputs standing for an input
  const onnx::NodeProto* node_ = nullptr;
  std::size_t node_index_ = 0;
};

void Importer::check_opset() {
  for (const auto& o : model_.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset_ = o.version();
  }
  if (opset_ == 0 && model_.opset_import_size() == 0) opset_ = 1;  // IR version 2 and older
  if (opset_ <= 0) fail("the model imports no version of the default ONNX domain");
  if (opset_ < 7) {
    fail("opset " + std::to_string(opset_) +
         " is older than 7 (2018); convert it with onnx.version_converter");
  }
}

void Importer::check_ops() const {
  std::map<std::string, std::vector<std::string>> unsupported;
  int index = 0;
  for (const auto& node : graph().node()) {
    const std::string label = node.name().empty() ? "#" + std::to_string(index) : node.name();
    ++index;
    const bool default_domain = node.domain().empty() || node.domain() == "ai.onnx";
    if (!default_domain) {
      unsupported[node.domain() + "::" + node.op_type()].push_back(label);
    } else if (!supported(node.op_type())) {
      unsupported[node.op_type()].push_back(label);
    }
  }
  if (unsupported.empty()) {
    // Every later pass reads output(0) of every node (producers, folding, conversion): a node
    // without one is malformed (found by fuzz_import_onnx: protobuf aborts on the read).
    index = 0;
    for (const auto& node : graph().node()) {
      if (node.output_size() < 1 || node.output(0).empty()) {
        fail("node " + (node.name().empty() ? "#" + std::to_string(index) : node.name()) + " (" +
             node.op_type() + ") has no output; the model is malformed");
      }
      ++index;
    }
    return;
  }
  std::string message = "unsupported ops: ";
  bool first = true;
  for (const auto& [op, nodes] : unsupported) {
    message += (first ? "" : "; ") + op + " (node" + (nodes.size() > 1 ? "s " : " ");
    first = false;
    for (std::size_t i = 0; i < nodes.size() && i < 5; ++i) message += (i ? ", " : "") + nodes[i];
    if (nodes.size() > 5) message += ", and " + std::to_string(nodes.size() - 5) + " more";
    message += ")";
  }
  fail(message +
       ". Supported: fheml::models::supported_onnx_ops(), fheml.onnx.supported_ops() "
       "(docs/networks.md)");
}

void Importer::read_initializers() {
  for (const auto& t : graph().initializer()) {
    if (t.name().empty()) fail("an initializer has no name");
    bool integer = false;
    FloatTensor value =
        read_tensor(t, "initializer '" + t.name() + "'", options_.max_tensor_elements, &integer);
    if (!values_.emplace(t.name(), constant(std::move(value), integer)).second) {
      fail("initializer '" + t.name() + "' is defined twice");
    }
  }
  if (graph().sparse_initializer_size() > 0) fail("sparse initializers are not supported");
}

void Importer::read_inputs() {
  for (const auto& in : graph().input()) {
    if (values_.contains(in.name())) continue;  // an initializer listed as input (IR < 4)
    if (in.name().empty()) fail("a graph input has no name");
    const std::int64_t type = element_type_of(in);
    if (type != onnx::TensorProto::FLOAT && type != onnx::TensorProto::DOUBLE) {
      fail("graph input '" + in.name() + "' has element type " + std::to_string(type) +
           "; only float and double inputs can be encrypted");
    }
    const auto& tensor = in.type().tensor_type();
    if (!tensor.has_shape()) fail("graph input '" + in.name() + "' has no shape");
    Shape shape;
    for (int d = 0; d < tensor.shape().dim_size(); ++d) {
      const auto& dim = tensor.shape().dim(d);
      if (dim.has_dim_value() && dim.dim_value() > 0) {
        shape.push_back(static_cast<std::size_t>(dim.dim_value()));
      } else if (d == 0) {
        shape.push_back(1);  // symbolic batch
      } else {
        fail("graph input '" + in.name() + "': dimension " + std::to_string(d) + " is symbolic ('" +
             dim.dim_param() + "'); only the batch axis may be: export with a fixed input size");
      }
    }
    if (!shape.empty() && shape[0] != 1) {
      fail("graph input '" + in.name() + "' has a fixed batch of " + std::to_string(shape[0]) +
           "; export it with a batch of 1 or a dynamic batch axis");
    }
    checked_count(std::vector<std::int64_t>(shape.begin(), shape.end()),
                  options_.max_tensor_elements, "graph input '" + in.name() + "'");
    Value v;
    v.id = graph_.input(in.name(), shape);
    values_[in.name()] = std::move(v);
    graph_inputs_.insert(in.name());
  }
  if (graph_inputs_.empty()) fail("the graph has no input to encrypt");
}

// Softmax / LogSoftmax / ArgMax producing the single graph output run on the client.
void Importer::peel_post_processing() {
  if (graph().output_size() != 1) {
    if (graph().output_size() == 0) fail("the graph has no output");
    output_name_.clear();
    return;
  }
  output_name_ = graph().output(0).name();
  std::unordered_map<std::string, const onnx::NodeProto*> producer;
  std::unordered_map<std::string, int> uses;
  for (const auto& node : graph().node()) {
    for (const auto& o : node.output()) producer[o] = &node;
    for (const auto& i : node.input()) ++uses[i];
  }
  bool argmax = false;
  for (int step = 0; step < 2; ++step) {
    const auto it = producer.find(output_name_);
    if (it == producer.end()) return;
    const onnx::NodeProto* node = it->second;
    const std::string& op = node->op_type();
    const bool last_step_ok = op == "ArgMax" ? step == 0 : (op == "Softmax" || op == "LogSoftmax");
    if (!last_step_ok || node->input_size() < 1 || uses[node->input(0)] != 1) return;
    // Only over the class axis of a [1, C] output (checked in finish()).
    std::int64_t axis = op == "ArgMax" ? 0 : (opset_ < 13 ? 1 : -1);
    bool last_index = false;
    for (const auto& a : node->attribute()) {
      if (a.name() == "axis") axis = a.i();
      if (a.name() == "select_last_index") last_index = a.i() != 0;
    }
    if ((axis != 1 && axis != -1) || last_index) {
      fail("node '" + node->name() + "' (" + op + ") at the output runs on the client only over " +
           "the class axis (1 or -1) of a [N, C] output" +
           (last_index ? " and with select_last_index = 0" : "") + ", found axis " +
           std::to_string(axis));
    }
    skipped_.insert(node);
    output_name_ = node->input(0);
    if (op == "ArgMax") {
      argmax = true;
      notes_.push_back("ArgMax '" + node->name() + "' at the output runs on the client");
    } else {
      if (!argmax) post_ = op == "Softmax" ? Link::kSoftmax : Link::kLogSoftmax;
      notes_.push_back(op + " '" + node->name() + "' at the output runs on the client" +
                       (argmax ? " (dropped: ArgMax follows)" : ""));
    }
  }
  if (argmax) post_ = Link::kArgmax;
}

// BatchNormalization after a Conv or Gemm that feeds nothing else, all parameters constant:
// folded into that node's weights.
void Importer::plan_batch_norm_folding() {
  std::unordered_map<std::string, const onnx::NodeProto*> producer;
  std::unordered_map<std::string, int> uses;
  for (const auto& node : graph().node()) {
    for (const auto& o : node.output()) producer[o] = &node;
    for (const auto& i : node.input()) ++uses[i];
  }
  for (const auto& o : graph().output()) ++uses[o.name()];
  const auto is_initializer = [&](const std::string& name) {
    const auto it = values_.find(name);
    return it != values_.end() && it->second.known;
  };
  for (const auto& bn : graph().node()) {
    if (bn.op_type() != "BatchNormalization" || bn.input_size() != 5) continue;
    bool constant_parameters = true;
    for (int i = 1; i < 5; ++i) constant_parameters &= is_initializer(bn.input(i));
    const auto it = producer.find(bn.input(0));
    if (!constant_parameters || it == producer.end() || uses[bn.input(0)] != 1) continue;
    const onnx::NodeProto* prev = it->second;
    if (prev->op_type() != "Conv" && prev->op_type() != "Gemm") continue;
    if (prev->input_size() < 2 || !is_initializer(prev->input(1))) continue;
    if (prev->input_size() > 2 && !prev->input(2).empty() && !is_initializer(prev->input(2)))
      continue;
    if (folded_bn_.contains(prev)) continue;
    folded_bn_[prev] = &bn;
  }
}

const onnx::AttributeProto* Importer::attribute(std::string_view name) const {
  for (const auto& a : node_->attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

std::int64_t Importer::attr_int(std::string_view name, std::int64_t fallback) const {
  const auto* a = attribute(name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::INT) {
    node_fail("attribute " + std::string(name) + " must be an int");
  }
  return a->i();
}

double Importer::attr_float(std::string_view name, double fallback) const {
  const auto* a = attribute(name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::FLOAT) {
    node_fail("attribute " + std::string(name) + " must be a float");
  }
  if (std::isnan(a->f())) node_fail("attribute " + std::string(name) + " is NaN");
  return a->f();
}

std::vector<std::int64_t> Importer::attr_ints(std::string_view name) const {
  const auto* a = attribute(name);
  if (a == nullptr) return {};
  if (a->type() != onnx::AttributeProto::INTS) {
    node_fail("attribute " + std::string(name) + " must be a list of ints");
  }
  return {a->ints().begin(), a->ints().end()};
}

std::string Importer::attr_string(std::string_view name, std::string fallback) const {
  const auto* a = attribute(name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::STRING) {
    node_fail("attribute " + std::string(name) + " must be a string");
  }
  return a->s();
}

void Importer::require_attr_absent_or(std::string_view name, std::int64_t expected) const {
  const std::int64_t v = attr_int(name, expected);
  if (v != expected) {
    node_fail("attribute " + std::string(name) + " = " + std::to_string(v) +
              " is not supported (only " + std::to_string(expected) + ")");
  }
}

Value& Importer::input(int i) {
  if (!has_input(i)) node_fail("input " + std::to_string(i) + " is missing");
  const auto it = values_.find(node_->input(i));
  if (it == values_.end()) {
    node_fail("input '" + node_->input(i) +
              "' is defined by no earlier node, initializer or graph input (nodes must be in "
              "topological order)");
  }
  return it->second;
}

const FloatTensor& Importer::known(int i, const char* what) {
  Value& v = input(i);
  if (!v.known) {
    node_fail(std::string(what) + " ('" + node_->input(i) +
              "') must be a constant (an initializer or computed from constants and shapes)");
  }
  return v.constant;
}

std::vector<std::int64_t> Importer::known_ints(int i, const char* what) {
  const FloatTensor& t = known(i, what);
  std::vector<std::int64_t> out;
  out.reserve(t.size());
  for (double d : t.data) {
    if (d != std::floor(d) || std::abs(d) > 9.3e18)
      node_fail(std::string(what) + " must be integers");
    out.push_back(static_cast<std::int64_t>(d));
  }
  return out;
}

ValueId Importer::variable(Value& v, const std::string& name) {
  if (!v.id) v.id = graph_.constant(name, v.constant);
  return *v.id;
}

Shape Importer::shape_of(int i) {
  Value& v = input(i);
  return v.known ? v.constant.shape : graph_.node(*v.id).shape;
}

void Importer::set_output(int i, Value v) {
  if (i >= node_->output_size() || node_->output(i).empty()) return;  // optional, unused
  if (v.known) {
    if (v.constant.size() > options_.max_tensor_elements) {
      node_fail("a constant of " + std::to_string(v.constant.size()) + " elements is too large");
    }
  }
  if (!values_.emplace(node_->output(i), std::move(v)).second) {
    node_fail("output '" + node_->output(i) + "' is defined twice");
  }
}

void Importer::alias_output(int i, int from_input) {
  Value v = input(from_input);
  set_output(i, std::move(v));
}

Value Importer::emit(FloatOp op, std::vector<Value*> in, FloatAttributes attributes) {
  const bool all_known = std::all_of(in.begin(), in.end(), [](Value* v) { return v->known; });
  if (all_known) {
    ir::FloatGraph scratch;
    std::vector<ValueId> ids;
    bool integer = true;
    for (Value* v : in) {
      ids.push_back(scratch.constant("", v->constant));
      integer &= v->integer;
    }
    scratch.mark_output(scratch.add(op, ids, std::move(attributes)));
    FloatTensor result = ir::evaluate(scratch, {}).at(0);
    if (integer && op == FloatOp::kDiv) {
      for (double& d : result.data) d = std::trunc(d);  // ONNX integer division
    }
    const bool comparison = op == FloatOp::kLess || op == FloatOp::kLessEqual ||
                            op == FloatOp::kGreater || op == FloatOp::kGreaterEqual ||
                            op == FloatOp::kEqual || op == FloatOp::kNot;
    return constant(std::move(result), integer || comparison);
  }
  std::vector<ValueId> ids;
  for (std::size_t s = 0; s < in.size(); ++s) ids.push_back(variable(*in[s], ""));
  Value out;
  out.id = graph_.add(op, ids, std::move(attributes), node_->name());
  return out;
}

std::size_t Importer::axis_of(std::int64_t axis, std::size_t rank) const {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r) {
    node_fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  }
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

std::vector<std::size_t> to_sizes(const std::vector<std::int64_t>& v, const char* what,
                                  const std::string& where) {
  std::vector<std::size_t> out;
  for (std::int64_t x : v) {
    if (x < 0) fail(where + ": " + what + " must not be negative, found " + list(v));
    out.push_back(static_cast<std::size_t>(x));
  }
  return out;
}

// Explicit pads from auto_pad (SAME_UPPER / SAME_LOWER / VALID) or the pads attribute.
std::vector<std::size_t> Importer::spatial_pads(const Shape& x,
                                                const std::vector<std::size_t>& kernel,
                                                const std::vector<std::size_t>& strides,
                                                const std::vector<std::size_t>& dilations) {
  const std::size_t spatial = kernel.size();
  const std::string auto_pad = attr_string("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    std::vector<std::size_t> pads = to_sizes(attr_ints("pads"), "pads", where());
    if (pads.empty()) pads.assign(2 * spatial, 0);
    return pads;
  }
  if (auto_pad == "VALID") return std::vector<std::size_t>(2 * spatial, 0);
  if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER") {
    node_fail("auto_pad '" + auto_pad + "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
  }
  if (x.size() != spatial + 2)
    node_fail("input " + ir::to_string(x) + " does not match the kernel");
  std::vector<std::size_t> pads(2 * spatial, 0);
  for (std::size_t d = 0; d < spatial; ++d) {
    const std::size_t in = x[2 + d];
    const std::size_t stride = strides.empty() ? 1 : strides[d];
    const std::size_t dilation = dilations.empty() ? 1 : dilations[d];
    if (stride == 0) node_fail("strides must be positive");
    const std::size_t out = (in + stride - 1) / stride;
    const std::size_t extent = (kernel[d] - 1) * dilation + 1;
    const std::size_t needed = (out - 1) * stride + extent;
    const std::size_t total = needed > in ? needed - in : 0;
    const std::size_t small = total / 2;
    pads[d] = auto_pad == "SAME_UPPER" ? small : total - small;
    pads[spatial + d] = total - pads[d];
  }
  return pads;
}

void Importer::convert_gemm() {
  const double alpha = attr_float("alpha", 1.0);
  double beta = attr_float("beta", 1.0);
  FloatAttributes a;
  a.trans_a = attr_int("transA", 0) != 0;
  a.trans_b = attr_int("transB", 0) != 0;
  Value* bp = &input(1);
  Value* cp = has_input(2) ? &input(2) : nullptr;
  Value b, c;  // the folded weights and bias
  const auto bn_it = folded_bn_.find(node_);
  if (bn_it != folded_bn_.end()) {
    b = *bp;
    bp = &b;
    // y = gamma * (alpha A B + beta C - mean) / sqrt(var + eps) + shift, per output column j.
    const onnx::NodeProto* bn = bn_it->second;
    const double eps = [&] {
      for (const auto& at : bn->attribute()) {
        if (at.name() == "epsilon" && at.type() == onnx::AttributeProto::FLOAT)
          return double{at.f()};
      }
      return 1e-5;
    }();
    const FloatTensor& gamma = values_.at(bn->input(1)).constant;
    const FloatTensor& shift = values_.at(bn->input(2)).constant;
    const FloatTensor& mean = values_.at(bn->input(3)).constant;
    const FloatTensor& var = values_.at(bn->input(4)).constant;
    const Shape bs = b.constant.shape;
    if (!b.known) node_fail("B must be a constant to fold the BatchNormalization after it");
    if (bs.size() != 2) node_fail("B must be 2-D, found " + ir::to_string(bs));
    const std::size_t m = a.trans_b ? bs[0] : bs[1];
    if (gamma.size() != m || shift.size() != m || mean.size() != m || var.size() != m) {
      node_fail("the BatchNormalization after it has parameters of the wrong size");
    }
    std::vector<double> scale(m), offset(m);
    for (std::size_t j = 0; j < m; ++j) {
      if (var.data[j] + eps <= 0)
        node_fail("BatchNormalization variance + epsilon is not positive");
      scale[j] = gamma.data[j] / std::sqrt(var.data[j] + eps);
      offset[j] = shift.data[j] - scale[j] * mean.data[j];
    }
    for (std::size_t r = 0; r < bs[0]; ++r) {
      for (std::size_t col = 0; col < bs[1]; ++col) {
        b.constant.data[r * bs[1] + col] *= scale[a.trans_b ? r : col];
      }
    }
    FloatTensor bias({m}, std::vector<double>(m, 0.0));
    if (cp != nullptr) {
      if (!cp->known) node_fail("C must be a constant to fold the BatchNormalization after it");
      const auto index = ir::broadcast_index(cp->constant.shape, Shape{1, m});
      for (std::size_t j = 0; j < m; ++j) bias.data[j] = beta * cp->constant.data[index[j]];
    }
    for (std::size_t j = 0; j < m; ++j) bias.data[j] = bias.data[j] * scale[j] + offset[j];
    beta = 1.0;
    c = constant(std::move(bias));
    cp = &c;
    b.id.reset();
    notes_.push_back("BatchNormalization '" + bn->name() + "' folded into Gemm '" + node_->name() +
                     "'");
  }
  a.alpha = alpha;
  a.beta = beta;
  std::vector<Value*> in = {&input(0), bp};
  if (cp != nullptr) in.push_back(cp);
  Value out = emit(FloatOp::kGemm, in, a);
  if (bn_it != folded_bn_.end()) {
    values_[bn_it->second->output(0)] = out;  // the BN's output is the folded Gemm's
  }
  set_output(0, std::move(out));
}

void Importer::convert_conv() {
  Value* wp = &input(1);
  const Shape ws = shape_of(1);
  if (ws.size() < 3) node_fail("W must be at least 3-D, found " + ir::to_string(ws));
  const std::size_t spatial = ws.size() - 2;
  std::vector<std::size_t> kernel = to_sizes(attr_ints("kernel_shape"), "kernel_shape", where());
  if (!kernel.empty() && kernel != std::vector<std::size_t>(ws.begin() + 2, ws.end())) {
    node_fail("kernel_shape " + list(kernel) + " does not match W " + ir::to_string(ws));
  }
  kernel.assign(ws.begin() + 2, ws.end());
  FloatAttributes a;
  a.strides = to_sizes(attr_ints("strides"), "strides", where());
  a.dilations = to_sizes(attr_ints("dilations"), "dilations", where());
  a.groups = static_cast<std::size_t>(std::max<std::int64_t>(attr_int("group", 1), 0));
  a.pads = spatial_pads(shape_of(0), kernel, a.strides, a.dilations);
  if (a.pads.size() != 2 * spatial)
    node_fail("pads must have " + std::to_string(2 * spatial) + " values");
  Value* bp = has_input(2) ? &input(2) : nullptr;
  Value w, b;  // the folded weights and bias
  const auto bn_it = folded_bn_.find(node_);
  if (bn_it != folded_bn_.end()) {
    const onnx::NodeProto* bn = bn_it->second;
    w = *wp;
    wp = &w;
    double eps = 1e-5;
    for (const auto& at : bn->attribute()) {
      if (at.name() == "epsilon" && at.type() == onnx::AttributeProto::FLOAT) eps = at.f();
    }
    const FloatTensor& gamma = values_.at(bn->input(1)).constant;
    const FloatTensor& shift = values_.at(bn->input(2)).constant;
    const FloatTensor& mean = values_.at(bn->input(3)).constant;
    const FloatTensor& var = values_.at(bn->input(4)).constant;
    const std::size_t m = ws[0];
    if (gamma.size() != m || shift.size() != m || mean.size() != m || var.size() != m) {
      node_fail("the BatchNormalization after it has parameters of the wrong size");
    }
    const std::size_t per = m == 0 ? 0 : w.constant.size() / m;
    FloatTensor bias({m}, std::vector<double>(m, 0.0));
    if (bp != nullptr) {
      if (bp->constant.size() != m) node_fail("B must have one value per output channel");
      bias.data = bp->constant.data;
    }
    for (std::size_t o = 0; o < m; ++o) {
      if (var.data[o] + eps <= 0)
        node_fail("BatchNormalization variance + epsilon is not positive");
      const double scale = gamma.data[o] / std::sqrt(var.data[o] + eps);
      for (std::size_t k = 0; k < per; ++k) w.constant.data[o * per + k] *= scale;
      bias.data[o] = scale * (bias.data[o] - mean.data[o]) + shift.data[o];
    }
    w.id.reset();
    b = constant(std::move(bias));
    bp = &b;
    notes_.push_back("BatchNormalization '" + bn->name() + "' folded into Conv '" + node_->name() +
                     "'");
  }
  std::vector<Value*> in = {&input(0), wp};
  if (bp != nullptr) in.push_back(bp);
  Value out = emit(FloatOp::kConv, in, a);
  if (bn_it != folded_bn_.end()) values_[bn_it->second->output(0)] = out;
  set_output(0, std::move(out));
}

void Importer::convert_pool(bool max, bool global) {
  const Shape x = shape_of(0);
  if (x.size() < 3) node_fail("X must be [N,C,L] or [N,C,H,W], found " + ir::to_string(x));
  if (global) {
    FloatAttributes a;
    if (max) {
      a.kernel.assign(x.begin() + 2, x.end());
      a.pads.assign(2 * (x.size() - 2), 0);
      set_output(0, emit(FloatOp::kMaxPool, {&input(0)}, a));
    } else {
      for (std::size_t d = 2; d < x.size(); ++d) a.axes.push_back(static_cast<std::int64_t>(d));
      a.keepdims = true;
      set_output(0, emit(FloatOp::kMean, {&input(0)}, a));
    }
    return;
  }
  require_attr_absent_or("ceil_mode", 0);
  require_attr_absent_or("storage_order", 0);
  if (node_->output_size() > 1 && !node_->output(1).empty()) {
    node_fail("the Indices output of MaxPool is not supported");
  }
  FloatAttributes a;
  a.kernel = to_sizes(attr_ints("kernel_shape"), "kernel_shape", where());
  if (a.kernel.empty()) node_fail("kernel_shape is required");
  a.strides = to_sizes(attr_ints("strides"), "strides", where());
  if (max) a.dilations = to_sizes(attr_ints("dilations"), "dilations", where());
  a.pads = spatial_pads(x, a.kernel, a.strides, a.dilations);
  a.count_include_pad = attr_int("count_include_pad", 0) != 0;
  set_output(0, emit(max ? FloatOp::kMaxPool : FloatOp::kAvgPool, {&input(0)}, a));
}

void Importer::convert_reduce(bool mean) {
  FloatAttributes a;
  a.keepdims = attr_int("keepdims", 1) != 0;
  // Axes moved from an attribute to an input: ReduceSum at opset 13, ReduceMean at 18.
  if (has_input(1)) {
    a.axes = known_ints(1, "axes");
  } else {
    a.axes = attr_ints("axes");
  }
  if (a.axes.empty() && attr_int("noop_with_empty_axes", 0) != 0) {
    alias_output(0, 0);
    return;
  }
  set_output(0, emit(mean ? FloatOp::kMean : FloatOp::kSum, {&input(0)}, a));
}

void Importer::convert_batch_norm() {
  if (attr_int("training_mode", 0) != 0) node_fail("training_mode = 1 is not supported");
  for (int o = 1; o < node_->output_size(); ++o) {
    if (!node_->output(o).empty()) node_fail("only the Y output (inference mode) is supported");
  }
  if (values_.contains(node_->output(0))) return;  // folded into the Conv/Gemm before it
  const Shape x = shape_of(0);
  if (x.size() < 2) node_fail("X must be at least [N, C], found " + ir::to_string(x));
  const std::size_t channels = x[1];
  const double eps = attr_float("epsilon", 1e-5);
  const FloatTensor& gamma = known(1, "scale");
  const FloatTensor& shift = known(2, "B");
  const FloatTensor& mean = known(3, "input_mean");
  const FloatTensor& var = known(4, "input_var");
  for (const FloatTensor* t : {&gamma, &shift, &mean, &var}) {
    if (t->size() != channels) {
      node_fail("parameters must have " + std::to_string(channels) + " values (the channels of " +
                ir::to_string(x) + ")");
    }
  }
  Shape broadcast(x.size() - 1, 1);
  broadcast[0] = channels;
  FloatTensor scale(broadcast), offset(broadcast);
  for (std::size_t c = 0; c < channels; ++c) {
    if (var.data[c] + eps <= 0) node_fail("variance + epsilon is not positive");
    scale.data[c] = gamma.data[c] / std::sqrt(var.data[c] + eps);
    offset.data[c] = shift.data[c] - scale.data[c] * mean.data[c];
  }
  Value s = constant(std::move(scale));
  Value b = constant(std::move(offset));
  Value scaled = emit(FloatOp::kMul, {&input(0), &s});
  set_output(0, emit(FloatOp::kAdd, {&scaled, &b}));
  notes_.push_back("BatchNormalization '" + node_->name() + "' kept as a per-channel multiply-add");
}

// QuantizeLinear: saturate(round(x / scale) + zero_point); DequantizeLinear: (x - zp) * scale.
void Importer::convert_quantize(bool quantize) {
  Value& x = input(0);
  const FloatTensor& scale_t = known(1, "scale");
  FloatTensor zp_t = has_input(2) ? known(2, "zero_point") : FloatTensor({}, {0.0});
  bool signed_type = false;
  if (has_input(2)) {
    // The element type of zero_point decides the saturation range (uint8 by default).
    for (const auto& t : graph().initializer()) {
      if (t.name() == node_->input(2)) signed_type = t.data_type() == onnx::TensorProto::INT8;
    }
    for (const auto& n : graph().node()) {
      if (n.op_type() != "Constant" || n.output_size() < 1 || n.output(0) != node_->input(2))
        continue;
      for (const auto& at : n.attribute()) {
        if (at.name() == "value") signed_type = at.t().data_type() == onnx::TensorProto::INT8;
      }
    }
  }
  for (double s : scale_t.data) {
    if (!(s > 0) || !std::isfinite(s)) node_fail("scale must be positive and finite");
  }
  const Shape xs = x.known ? x.constant.shape : graph_.node(*x.id).shape;
  // Per-axis parameters broadcast along `axis`.
  const auto shaped = [&](const FloatTensor& t) {
    if (t.shape.empty() || t.size() == 1) return FloatTensor({}, {t.data.at(0)});
    const std::size_t along = axis_of(attr_int("axis", 1), xs.size());
    if (t.shape.size() != 1 || t.size() != xs[along]) {
      node_fail("per-axis parameters must have " + std::to_string(xs[along]) + " values");
    }
    Shape s(xs.size() - along, 1);
    s[0] = t.size();
    return FloatTensor(s, t.data);
  };
  Value scale = constant(shaped(scale_t));
  Value zp = constant(shaped(zp_t), true);
  const auto only_dequantized = [&] {
    for (const auto& n : graph().node()) {
      for (const auto& i : n.input()) {
        if (i == node_->output(0) && n.op_type() != "DequantizeLinear") return false;
      }
    }
    return true;
  };
  if (!x.known && graph_inputs_.contains(node_->input(0)) && quantize && only_dequantized()) {
    // Fake quantization of a graph input: the client's input quantizer replaces it.
    notes_.push_back("QuantizeLinear '" + node_->name() +
                     "' on graph input dropped: the client's input quantizer replaces it");
    Value v = x;
    set_output(0, std::move(v));
    skipped_input_quant_.insert(node_->output(0));
    return;
  }
  if (!quantize && skipped_input_quant_.contains(node_->input(0))) {
    alias_output(0, 0);
    return;
  }
  if (quantize) {
    Value scaled = emit(FloatOp::kDiv, {&x, &scale});
    Value rounded = emit(FloatOp::kRound, {&scaled});
    Value shifted = emit(FloatOp::kAdd, {&rounded, &zp});
    FloatAttributes clip;
    clip.alpha = signed_type ? -128.0 : 0.0;
    clip.beta = signed_type ? 127.0 : 255.0;
    Value out = emit(FloatOp::kClip, {&shifted}, clip);
    out.integer = out.known;
    set_output(0, std::move(out));
  } else {
    Value centered = emit(FloatOp::kSub, {&x, &zp});
    Value out = emit(FloatOp::kMul, {&centered, &scale});
    out.integer = false;
    set_output(0, std::move(out));
  }
}

void Importer::convert_clip() {
  FloatAttributes a;
  if (opset_ < 11) {
    a.alpha = attr_float("min", -std::numeric_limits<double>::infinity());
    a.beta = attr_float("max", std::numeric_limits<double>::infinity());
  } else {
    a.alpha = has_input(1) ? known(1, "min").data.at(0) : -std::numeric_limits<double>::infinity();
    a.beta = has_input(2) ? known(2, "max").data.at(0) : std::numeric_limits<double>::infinity();
  }
  Value out = emit(FloatOp::kClip, {&input(0)}, a);
  out.integer = out.known && input(0).integer;
  set_output(0, std::move(out));
}

void Importer::convert_slice() {
  FloatAttributes a;
  if (opset_ < 10) {
    a.starts = attr_ints("starts");
    a.ends = attr_ints("ends");
    a.axes = attr_ints("axes");
  } else {
    a.starts = known_ints(1, "starts");
    a.ends = known_ints(2, "ends");
    if (has_input(3)) a.axes = known_ints(3, "axes");
    if (has_input(4)) a.steps = known_ints(4, "steps");
  }
  const bool integer = input(0).integer;
  Value out = emit(FloatOp::kSlice, {&input(0)}, a);
  out.integer = out.known && integer;
  set_output(0, std::move(out));
}

void Importer::convert_pad() {
  const std::string mode = attr_string("mode", "constant");
  if (mode != "constant") node_fail("mode '" + mode + "' is not supported (only constant)");
  const Shape x = shape_of(0);
  std::vector<std::int64_t> pads;
  FloatAttributes a;
  if (opset_ < 11) {
    pads = attr_ints(opset_ < 2 ? "paddings" : "pads");
    a.pad_value = attr_float("value", 0.0);
  } else {
    pads = known_ints(1, "pads");
    if (has_input(2)) a.pad_value = known(2, "constant_value").data.at(0);
    if (has_input(3)) {
      // Pads of the listed axes only (opset 18): spread over every axis.
      const std::vector<std::int64_t> axes = known_ints(3, "axes");
      if (pads.size() != 2 * axes.size()) node_fail("pads must have two values per axis");
      std::vector<std::int64_t> full(2 * x.size(), 0);
      for (std::size_t i = 0; i < axes.size(); ++i) {
        const std::size_t along = axis_of(axes[i], x.size());
        full[along] = pads[i];
        full[x.size() + along] = pads[axes.size() + i];
      }
      pads = full;
    }
  }
  a.pads = to_sizes(pads, "pads (negative pads crop: use Slice)", where());
  set_output(0, emit(FloatOp::kPad, {&input(0)}, a));
}

void Importer::convert_split() {
  const Shape x = shape_of(0);
  const std::size_t along = axis_of(attr_int("axis", 0), x.size());
  std::vector<std::int64_t> sizes = has_input(1) ? known_ints(1, "split") : attr_ints("split");
  const auto outputs = static_cast<std::size_t>(node_->output_size());
  if (sizes.empty()) {
    const std::int64_t parts = attr_int("num_outputs", static_cast<std::int64_t>(outputs));
    if (parts <= 0) node_fail("Split needs at least one output");
    const auto n = static_cast<std::size_t>(parts);
    const std::size_t each = (x[along] + n - 1) / n;
    for (std::size_t i = 0, left = x[along]; i < n; ++i) {
      sizes.push_back(static_cast<std::int64_t>(std::min(each, left)));
      left -= std::min(each, left);
    }
  }
  if (sizes.size() != outputs)
    node_fail("split sizes " + list(sizes) + " do not match the outputs");
  std::int64_t start = 0;
  for (std::size_t o = 0; o < outputs; ++o) {
    if (sizes[o] < 0) node_fail("split sizes must not be negative");
    FloatAttributes a;
    a.axes = {static_cast<std::int64_t>(along)};
    a.starts = {start};
    a.ends = {start + sizes[o]};
    start += sizes[o];
    set_output(static_cast<int>(o), emit(FloatOp::kSlice, {&input(0)}, a));
  }
  if (start != static_cast<std::int64_t>(x[along])) {
    node_fail("split sizes " + list(sizes) + " do not add up to " + std::to_string(x[along]));
  }
}

void Importer::convert_gather() {
  const Shape x = shape_of(0);
  const std::size_t along = axis_of(attr_int("axis", 0), x.size());
  const FloatTensor& indices_t = known(1, "indices");
  std::vector<std::int64_t> indices;
  for (double d : indices_t.data) {
    auto i = static_cast<std::int64_t>(d);
    if (i < 0) i += static_cast<std::int64_t>(x[along]);
    if (i < 0 || i >= static_cast<std::int64_t>(x[along])) {
      node_fail("index " + std::to_string(static_cast<std::int64_t>(d)) +
                " is out of range for axis " + std::to_string(along) + " of " + ir::to_string(x));
    }
    indices.push_back(i);
  }
  Value& data = input(0);
  if (indices_t.shape.size() > 1) node_fail("indices of rank above 1 are not supported");
  // Gather = slices of one element along the axis, concatenated (1-D indices) or squeezed
  // (a scalar index).
  std::vector<Value> parts;
  for (std::int64_t i : indices) {
    FloatAttributes a;
    a.axes = {static_cast<std::int64_t>(along)};
    a.starts = {i};
    a.ends = {i + 1};
    parts.push_back(emit(FloatOp::kSlice, {&data}, a));
  }
  Value out;
  if (indices_t.shape.empty()) {
    FloatAttributes a;
    a.axes = {static_cast<std::int64_t>(along)};
    out = emit(FloatOp::kSqueeze, {&parts.at(0)}, a);
  } else if (parts.size() == 1) {
    out = parts[0];
  } else {
    FloatAttributes a;
    a.axes = {static_cast<std::int64_t>(along)};
    std::vector<Value*> in;
    for (Value& p : parts) in.push_back(&p);
    out = emit(FloatOp::kConcat, in, a);
  }
  out.integer = out.known && data.integer;
  set_output(0, std::move(out));
}

void Importer::convert_reshape() {
  const Shape x = shape_of(0);
  const std::vector<std::int64_t> target = opset_ < 5 ? attr_ints("shape") : known_ints(1, "shape");
  const bool allow_zero = attr_int("allowzero", 0) != 0;
  Shape shape(target.size());
  std::optional<std::size_t> inferred;
  std::size_t product = 1;
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      if (inferred) node_fail("shape " + list(target) + " has more than one -1");
      inferred = i;
      continue;
    }
    if (target[i] == 0 && !allow_zero) {
      if (i >= x.size()) node_fail("shape " + list(target) + ": 0 copies a dimension X lacks");
      shape[i] = x[i];
    } else if (target[i] < 0) {
      node_fail("shape " + list(target) + " has a negative dimension");
    } else {
      shape[i] = static_cast<std::size_t>(target[i]);
    }
    product *= shape[i];
  }
  if (inferred) {
    const std::size_t total = ir::element_count(x);
    if (product == 0 || total % product != 0) {
      node_fail("cannot reshape " + ir::to_string(x) + " to " + list(target));
    }
    shape[*inferred] = total / product;
  }
  FloatAttributes a;
  a.shape = shape;
  const bool integer = input(0).integer;
  Value out = emit(FloatOp::kReshape, {&input(0)}, a);
  out.integer = out.known && integer;
  set_output(0, std::move(out));
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

void Importer::finish(OnnxImport& out) {
  std::vector<std::string> names;
  if (!output_name_.empty()) {
    names.push_back(output_name_);
  } else {
    for (const auto& o : graph().output()) names.push_back(o.name());
  }
  for (const std::string& name : names) {
    const auto it = values_.find(name);
    if (it == values_.end()) fail("graph output '" + name + "' is computed by no node");
    if (it->second.known) {
      fail("graph output '" + name + "' is a constant: it does not depend on the input");
    }
    graph_.mark_output(*it->second.id);
  }
  if (post_ != Link::kIdentity) {
    const Shape& shape = graph_.node(graph_.outputs().at(0)).shape;
    if (shape.size() != 2) {
      fail(
          "the op moved to the client at the output (Softmax, LogSoftmax or ArgMax) needs a "
          "[N, C] output, found " +
          ir::to_string(shape));
    }
  }
  out.graph = std::move(graph_);
  out.post_processing = post_;
  out.notes = std::move(notes_);
}

OnnxImport Importer::run() {
  check_opset();
  check_ops();
  if (graph().node_size() == 0) fail("the graph has no node");
  read_initializers();
  read_inputs();
  peel_post_processing();
  plan_batch_norm_folding();
  int index = 0;
  for (const auto& node : graph().node()) {
    node_ = &node;
    node_index_ = static_cast<std::size_t>(index++);
    if (skipped_.contains(&node)) continue;
    try {
      convert(node);
    } catch (const OnnxImportError&) {
      throw;
    } catch (const std::invalid_argument& e) {
      node_fail(e.what());
    } catch (const std::out_of_range& e) {
      node_fail(std::string("malformed: ") + e.what());
    } catch (const std::length_error& e) {
      node_fail(std::string("too large: ") + e.what());
    }
  }
  node_ = nullptr;
  OnnxImport out;
  out.opset = opset_;
  out.ir_version = model_.ir_version();
  out.producer = model_.producer_name() +
                 (model_.producer_version().empty() ? "" : " " + model_.producer_version());
  finish(out);
  return out;
}

}  // namespace

OnnxImport import_onnx(std::span<const std::uint8_t> bytes, const OnnxImportOptions& options) {
  if (bytes.empty()) fail("the model is empty (0 bytes)");
  if (bytes.size() > options.max_bytes ||
      bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    fail("the model has " + std::to_string(bytes.size()) + " bytes, more than the " +
         std::to_string(std::min<std::size_t>(options.max_bytes, std::numeric_limits<int>::max())) +
         " accepted");
  }
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    fail(
        "the data is not a valid ONNX model (protobuf parse failed: truncated or not a "
        "ModelProto)");
  }
  if (!model.has_graph()) fail("the model has no graph (is it an ONNX model file?)");
  if (model.functions_size() > 0) {
    for (const auto& node : model.graph().node()) {
      for (const auto& f : model.functions()) {
        if (f.name() == node.op_type() && f.domain() == node.domain()) {
          fail("node '" + node.name() + "' calls model-local function " + f.name() +
               "; export without local functions");
        }
      }
    }
  }
  try {
    return Importer(model, options).run();
  } catch (const OnnxImportError&) {
    throw;
  } catch (const std::invalid_argument& e) {  // the float graph's own checks, outside a node
    fail(e.what());
  } catch (const std::out_of_range& e) {
    fail(std::string("malformed model: ") + e.what());
  } catch (const std::length_error& e) {
    fail(std::string("model too large: ") + e.what());
  }
}

OnnxImport import_onnx_file(const std::string& path, const OnnxImportOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '" + path + "'");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) fail("cannot read '" + path + "'");
  if (static_cast<std::uint64_t>(size) > options.max_bytes) {
    fail("'" + path + "' has " + std::to_string(size) + " bytes, more than the " +
         std::to_string(options.max_bytes) + " accepted");
  }
  in.seekg(0);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) fail("cannot read '" + path + "'");
  return import_onnx(bytes, options);
}

std::vector<std::string> supported_onnx_ops() {
  std::vector<std::string> ops;
  for (const auto& [name, op] : unary_ops()) ops.push_back(name);
  for (const auto& [name, op] : binary_ops()) ops.push_back(name);
  for (const auto& name : other_ops()) ops.push_back(name);
  std::sort(ops.begin(), ops.end());
  return ops;
}

}  // namespace fheml::models
