// ONNX import: a serialized ModelProto (what torch.onnx.export, tf2onnx, skl2onnx or onnx's own
// helpers write) -> the compiler's float graph.
//
// The file is parsed with the ONNX project's own generated protobuf classes (libonnx, Debian's
// libonnx-dev), so the wire format is protobuf's, not a hand-written reader's; everything the
// protobuf then holds is validated here before it is used (types, dims, data sizes, attribute
// kinds, names defined before use), and every failure is an OnnxImportError naming the node.
//
// What the importer does beyond a one-to-one op mapping:
//  - constant folding: a node whose inputs are all known (initializers, Constant nodes, the
//    static shape of any value) is computed at import time. This removes the shape subgraphs
//    torch.onnx.export emits (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) and resolves the
//    inputs that moved from attributes to tensors across opsets (Reshape, Clip, Slice, Pad,
//    Squeeze/Unsqueeze, ReduceSum, Split);
//  - BatchNormalization folded into the Conv or Gemm before it (weights and bias rescaled per
//    output channel) when that node feeds nothing else, otherwise a per-channel multiply-add
//    (still free: the compiler composes linear ops);
//  - Dropout, Identity and float-to-float Cast dropped;
//  - QuantizeLinear/DequantizeLinear (networks quantized before export): on constants computed,
//    on activations kept as their float function (fused into the lookup that follows), on a
//    graph input dropped (the client's input quantizer takes its place);
//  - Softmax, LogSoftmax and ArgMax at the end of a single-output graph moved to the client
//    (`post_processing`): exact on the decrypted scores and no bootstrap.
// The batch axis: a graph input's first dimension, symbolic or 1, becomes 1 (one sample per
// evaluation, the compiler's convention); a fixed batch above 1 is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/ir/float_graph.h"
#include "fheml/models/linear_model.h"

namespace fheml::models {

// Every import failure: malformed protobuf, invalid tensors or attributes, unsupported ops (all
// of them listed with their node names), shapes the float graph refuses.
class OnnxImportError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct OnnxImportOptions {
  // Largest serialized model accepted (protobuf itself stops at 2 GiB).
  std::size_t max_bytes = std::size_t{1} << 30;
  // Largest number of elements of any one tensor (initializer, constant or folded value).
  std::size_t max_tensor_elements = std::size_t{1} << 28;
};

struct OnnxImport {
  ir::FloatGraph graph;
  // What runs on the client after decryption: identity, softmax, log_softmax or argmax.
  Link post_processing = Link::kIdentity;
  std::int64_t opset = 0;  // of the default domain
  std::int64_t ir_version = 0;
  std::string producer;  // producer_name and version, e.g. "pytorch 2.13.0"
  // One line per rewrite (folded BatchNormalization, dropped Dropout, op moved to the client).
  std::vector<std::string> notes;
};

// Throws OnnxImportError. `bytes` is a serialized ModelProto.
OnnxImport import_onnx(std::span<const std::uint8_t> bytes, const OnnxImportOptions& options = {});
// Reads the file first (OnnxImportError when it cannot be read).
OnnxImport import_onnx_file(const std::string& path, const OnnxImportOptions& options = {});

// The op types of the default domain the importer accepts, sorted.
std::vector<std::string> supported_onnx_ops();

}  // namespace fheml::models
