// ONNX import (onnx_import.h): reading the model (its opset, ops, initializers, inputs, the
// attributes and inputs of each node), the passes before conversion (the ops moved to the
// client at the output, BatchNormalization folding), emitting float ops and the driver. Its
// tensors: onnx_tensors.cpp; the op tables and the per-node dispatch: onnx_ops.cpp; the op
// converters: onnx_convert.cpp.
#include "fheml/models/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "fheml/models/onnx_importer.h"

namespace fheml::models::onnx_detail {

[[noreturn]] void fail(const std::string& message) {
  throw OnnxImportError("ONNX import: " + message);
}

namespace {

std::int64_t element_type_of(const onnx::ValueInfoProto& info) {
  return info.type().has_tensor_type() ? info.type().tensor_type().elem_type() : 0;
}

}  // namespace

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

}  // namespace fheml::models::onnx_detail

namespace fheml::models {

using onnx_detail::fail;
using onnx_detail::Importer;

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

}  // namespace fheml::models
