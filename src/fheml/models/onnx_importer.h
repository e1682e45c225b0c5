// The ONNX importer's internals (private to src/fheml/models): onnx_import.cpp reads the
// model (its attributes and inputs) and drives the conversion; onnx_tensors.cpp reads its
// tensors; onnx_ops.cpp holds the tables of the ops it handles and the per-node dispatch;
// onnx_convert.cpp holds the converters of the op families that need more than a one-to-one
// mapping.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fheml/ir/float_graph.h"
#include "fheml/models/onnx_import.h"

namespace fheml::models::onnx_detail {

using ir::FloatAttributes;
using ir::FloatOp;
using ir::FloatTensor;
using ir::Shape;
using ir::ValueId;

// Throws OnnxImportError("ONNX import: " + message).
[[noreturn]] void fail(const std::string& message);

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

// The element count of dims, refused (fail) when negative or above limit.
std::size_t checked_count(const std::vector<std::int64_t>& dims, std::size_t limit,
                          const std::string& what);

// TensorProto -> doubles. `integer` reports an integer or bool element type.
FloatTensor read_tensor(const onnx::TensorProto& t, const std::string& what, std::size_t limit,
                        bool* integer);

// Non-negative attribute values as sizes; fail (naming `what` at `where`) on a negative one.
std::vector<std::size_t> to_sizes(const std::vector<std::int64_t>& v, const char* what,
                                  const std::string& where);

// Ops of the default domain that map one to one onto a float op.
const std::map<std::string, FloatOp, std::less<>>& unary_ops();
const std::map<std::string, FloatOp, std::less<>>& binary_ops();
// Whether the importer handles `op` of the default domain (unary_ops, binary_ops or another).
bool supported(std::string_view op);

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

}  // namespace fheml::models::onnx_detail
