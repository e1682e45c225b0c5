// The converters of the ONNX op families that need more than a one-to-one mapping (gemm,
// conv, pools, reductions, batch norm, quantize/dequantize, clip, slice, pad, split, gather,
// reshape). The per-node dispatch that calls them: onnx_ops.cpp; reading the model and the
// driver: onnx_import.cpp.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "fheml/models/onnx_importer.h"

namespace fheml::models::onnx_detail {

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

}  // namespace fheml::models::onnx_detail
