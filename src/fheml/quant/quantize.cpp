#include "fheml/quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fheml/quant/quantize_internal.h"

namespace fheml::quant {
namespace detail {

Quantizer::Quantizer(const ir::FloatGraph& graph, std::span<const Sample> calibration,
                     const QuantizeOptions& options)
    : graph_(graph), options_(options) {
  check_options();
  if (calibration.empty()) fail("calibration needs at least one sample, found none");
  const std::size_t count = std::min(calibration.size(), options.max_calibration_samples);
  samples_.assign(calibration.begin(), calibration.begin() + static_cast<std::ptrdiff_t>(count));
}

QuantizedGraph Quantizer::run() {
  const auto& nodes = graph_.nodes();
  if (graph_.outputs().empty()) fail("the graph has no output: call mark_output");
  reprs_.resize(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) reprs_[i] = lower(nodes[i], i);
  for (const ValueId out : graph_.outputs()) emit_output(out);
  prune();
  return std::move(result_);
}

void Quantizer::check_options() const {
  const NBits& b = options_.n_bits;
  for (const auto& [name, v] :
       {std::pair{"model_inputs", b.model_inputs}, std::pair{"op_inputs", b.op_inputs},
        std::pair{"op_weights", b.op_weights}, std::pair{"model_outputs", b.model_outputs}}) {
    if (v < 2 || v > 16) {
      fail(std::string("n_bits.") + name + " must be in 2..16, found " + std::to_string(v));
    }
  }
  if (options_.max_lookup_bits < 1 || options_.max_lookup_bits > 16) {
    fail("max_lookup_bits must be in 1..16, found " + std::to_string(options_.max_lookup_bits));
  }
  if (options_.rounding_threshold_bits &&
      (*options_.rounding_threshold_bits < 1 ||
       *options_.rounding_threshold_bits > options_.max_lookup_bits)) {
    fail("rounding_threshold_bits must be in 1.." + std::to_string(options_.max_lookup_bits) +
         ", found " + std::to_string(*options_.rounding_threshold_bits));
  }
  if (options_.max_calibration_samples == 0) fail("max_calibration_samples must be >= 1");
  if (!(options_.input_headroom >= 0 && options_.input_headroom <= 16)) {
    fail("input_headroom must be in 0..16, found " + std::to_string(options_.input_headroom));
  }
  if (!(options_.calibration_margin >= 0.0 && options_.calibration_margin <= 1.0)) {
    fail("calibration_margin must be in [0, 1], found " +
         std::to_string(options_.calibration_margin));
  }
}

// ---- the walk ----

Repr Quantizer::lower(const FloatNode& node, std::size_t index) {
  std::vector<const Repr*> in;
  for (const ValueId v : node.inputs) in.push_back(&reprs_[v.index]);
  // Named ops anchor the origin ("gemm fc1"); unnamed ones show their operands.
  std::string origin = describe(node);
  if (node.name.empty()) {
    origin += "(";
    for (std::size_t k = 0; k < in.size(); ++k) origin += (k ? ", " : "") + in[k]->origin;
    origin += ")";
  }

  if (node.op == FloatOp::kInput) return lower_input(node);
  if (node.op == FloatOp::kConstant) {
    Repr r;
    r.shape = node.shape;
    r.clear = node.attributes.value;
    r.origin = node.name.empty() ? "const" : node.name;
    return r;
  }
  const bool all_clear = std::all_of(in.begin(), in.end(),
                                     [](const Repr* r) { return r->kind == Repr::Kind::kClear; });
  if (all_clear) {
    std::vector<const ir::FloatTensor*> values;
    for (const Repr* r : in) values.push_back(&r->clear);
    Repr r;
    r.shape = node.shape;
    r.clear = ir::evaluate_node(node, values);
    r.origin = origin;
    return r;
  }
  (void)index;

  if (ir::is_unary_elementwise(node.op)) return lower_unary(node, *in[0], origin);
  if (ir::is_binary_elementwise(node.op)) return lower_binary(node, *in[0], *in[1], origin);
  if (node.op == FloatOp::kWhere) return lower_where(node, in, origin);
  if (node.op == FloatOp::kMaxPool) return lower_max_pool(node, *in[0], origin);
  if (ir::is_movement(node.op) && in.size() == 1 && in[0]->kind == Repr::Kind::kFunction &&
      node.op != FloatOp::kPad) {
    return move_function(node, *in[0], origin);
  }
  // Linear ops (gemm, matmul, conv, reductions, avg pool, movement): operands as integers.
  std::vector<Affine> affines(in.size());
  for (std::size_t s = 0; s < in.size(); ++s) {
    if (in[s]->kind != Repr::Kind::kClear)
      affines[s] = materialize(*in[s], options_.n_bits.op_inputs);
  }
  return affine_repr(apply_linear(node, in, affines), node.shape, origin);
}

Repr Quantizer::lower_input(const FloatNode& node) {
  const std::size_t position = result_.inputs.size();
  // Ranges per tensor, or per channel (axis 1: the features of a [N, F] input).
  const std::size_t count = ir::element_count(node.shape);
  const bool per_channel = options_.per_channel_inputs && node.shape.size() >= 2;
  const std::size_t channels = per_channel ? node.shape[1] : 1;
  const std::size_t inner = per_channel ? count / (node.shape[0] * channels) : count;
  const auto channel_of = [&](std::size_t e) { return per_channel ? (e / inner) % channels : 0; };
  std::vector<double> lo(channels, std::numeric_limits<double>::infinity());
  std::vector<double> hi(channels, -std::numeric_limits<double>::infinity());
  for (const Sample& s : samples_) {
    if (s.size() != graph_.inputs().size()) {
      fail("calibration sample has " + std::to_string(s.size()) + " tensors, the graph has " +
           std::to_string(graph_.inputs().size()) + " inputs");
    }
    const ir::FloatTensor& t = s[position];
    if (t.shape != node.shape || t.data.size() != count) {
      fail("calibration input \"" + node.name + "\": expected shape " + ir::to_string(node.shape) +
           ", found " + ir::to_string(t.shape));
    }
    for (std::size_t e = 0; e < count; ++e) {
      const double v = t.data[e];
      if (!std::isfinite(v)) fail("calibration input \"" + node.name + "\" holds NaN or inf");
      lo[channel_of(e)] = std::min(lo[channel_of(e)], v);
      hi[channel_of(e)] = std::max(hi[channel_of(e)], v);
    }
  }
  InputQuantizer q;
  q.name = node.name;
  q.shape = node.shape;
  q.bits = options_.n_bits.model_inputs;
  const double top = std::ldexp(1.0, static_cast<int>(q.bits)) - 1;
  q.headroom = static_cast<std::int64_t>(std::ceil(options_.input_headroom * top));
  // A channel constant over the calibration rows carries no information; its scale only has
  // to keep its (clipped) test values small: the whole tensor's step. An arbitrary scale such as
  // 1 would make its effective weight w * scale dominate the per-output weight step of the next
  // linear op and round every informative weight to zero (an all-zero pixel of digits did).
  const double tensor_lo = *std::min_element(lo.begin(), lo.end());
  const double tensor_hi = *std::max_element(hi.begin(), hi.end());
  const auto scale_for = [&](std::size_t c) {
    if (hi[c] > lo[c]) return (hi[c] - lo[c]) / top;
    if (tensor_hi > tensor_lo) return (tensor_hi - tensor_lo) / top;
    return lo[c] != 0.0 ? std::abs(lo[c]) : 1.0;
  };
  q.scale.assign(per_channel ? count : 1, 0.0);
  q.zero_point.assign(q.scale.size(), 0.0);
  for (std::size_t e = 0; e < q.scale.size(); ++e) {
    q.scale[e] = scale_for(channel_of(e));
    q.zero_point[e] = -lo[channel_of(e)] / q.scale[e];
  }

  IntNode n;
  n.op = IntOp::kInput;
  n.shape = node.shape;
  n.range = {-q.headroom, static_cast<std::int64_t>(top) + q.headroom};
  n.origin = "input " + node.name;
  const ValueId id = add_node(std::move(n));
  std::vector<ir::IntTensor> values;
  for (const Sample& s : samples_) values.push_back(q.quantize(s[position]));
  calibration_.push_back(std::move(values));
  result_.inputs.push_back(q);
  Affine a{id, std::vector<double>(count), std::vector<double>(count)};
  for (std::size_t e = 0; e < count; ++e) {
    a.scale[e] = q.scale_of(e);
    a.bias[e] = -q.scale_of(e) * q.zero_point_of(e);
  }
  return affine_repr(std::move(a), node.shape, "input " + node.name);
}

Repr Quantizer::lower_unary(const FloatNode& node, const Repr& x, const std::string& origin) {
  if (node.op == FloatOp::kNeg && x.kind == Repr::Kind::kAffine) {
    Repr r = x;
    for (auto& s : r.affine.scale) s = -s;
    for (auto& b : r.affine.bias) b = -b;
    r.origin = "neg(" + x.origin + ")";
    return r;
  }
  Repr r;
  r.kind = Repr::Kind::kFunction;
  r.shape = node.shape;
  r.function = as_expression(x);
  Step s;
  s.kind = Step::Kind::kUnary;
  s.node = &node;
  s.operands = {Operand{static_cast<int>(r.function.steps.size()), {}}};
  r.function.steps.push_back(std::move(s));
  r.origin = std::string(ir::op_name(node.op)) + "(" + x.origin + ")";
  (void)origin;
  return r;
}

Repr Quantizer::lower_binary(const FloatNode& node, const Repr& a, const Repr& b,
                             const std::string& origin) {
  const bool a_clear = a.kind == Repr::Kind::kClear, b_clear = b.kind == Repr::Kind::kClear;
  const FloatOp op = node.op;
  const bool linear_op = op == FloatOp::kAdd || op == FloatOp::kSub ||
                         ((op == FloatOp::kMul) && (a_clear || b_clear)) ||
                         (op == FloatOp::kDiv && b_clear);
  const Repr& var = a_clear ? b : a;
  // Affine with a constant: a linear op (free).
  if (linear_op && (a_clear || b_clear) && var.kind == Repr::Kind::kAffine) {
    std::vector<Affine> affines(2);
    affines[a_clear ? 1 : 0] = var.affine;
    return affine_repr(apply_linear(node, {&a, &b}, affines), node.shape, origin);
  }
  // Univariate: one encrypted source (with constants) whose shape is the output's.
  const bool same_source = !a_clear && !b_clear && source_of(a) == source_of(b) &&
                           a.shape == node.shape && b.shape == node.shape;
  if (((a_clear || b_clear) && var.shape == node.shape) || same_source) {
    Repr r;
    r.kind = Repr::Kind::kFunction;
    r.shape = node.shape;
    r.function.source = source_of(var);
    const Operand oa = operand_for(a, r.function, node.shape);
    const Operand ob = operand_for(b, r.function, node.shape);
    Step s;
    s.kind = Step::Kind::kBinary;
    s.op = op;
    s.operands = {oa, ob};
    r.function.steps.push_back(std::move(s));
    r.origin = std::string(ir::op_name(op)) + "(" + a.origin + ", " + b.origin + ")";
    return r;
  }
  if (a_clear || b_clear) {
    // Broadcast to a larger shape: as integers, then the affine or univariate path.
    Repr m =
        affine_repr(broadcast(materialize(var, options_.n_bits.op_inputs), var.shape, node.shape),
                    node.shape, var.origin);
    return a_clear ? lower_binary(node, a, m, origin) : lower_binary(node, m, b, origin);
  }
  // Two encrypted sources.
  const std::optional<double> scale = (op == FloatOp::kMul) ? std::nullopt : common_scale(a, b);
  const auto operand = [&](const Repr& r) {
    std::optional<OutputQuantizer> fixed;
    if (scale && r.kind == Repr::Kind::kFunction) {
      fixed = quantizer_with_scale(r.function, ir::element_count(r.shape), *scale);
    }
    return broadcast(materialize(r, options_.n_bits.op_inputs, fixed), r.shape, node.shape);
  };
  const Affine fa = operand(a);
  const Affine fb = operand(b);
  switch (op) {
    case FloatOp::kAdd:
    case FloatOp::kSub:
      return affine_repr(combine(fa, fb, op == FloatOp::kAdd ? 1.0 : -1.0, node.shape, origin),
                         node.shape, origin);
    case FloatOp::kMul:
      return affine_repr(multiply(fa, fb, node.shape, origin), node.shape, origin);
    case FloatOp::kMax:
    case FloatOp::kMin:
      return affine_repr(maximum(fa, fb, node.shape, op == FloatOp::kMax, origin), node.shape,
                         origin);
    case FloatOp::kLess:
    case FloatOp::kLessEqual:
    case FloatOp::kGreater:
    case FloatOp::kGreaterEqual:
    case FloatOp::kEqual: {
      // compare(a, b) = compare(a - b, 0), a lookup on the difference.
      const Affine d = combine(fa, fb, -1.0, node.shape, origin + " a-b");
      Repr r;
      r.kind = Repr::Kind::kFunction;
      r.shape = node.shape;
      r.function = as_expression(affine_repr(d, node.shape, origin));
      Step s;
      s.kind = Step::Kind::kBinary;
      s.op = op;
      s.operands = {Operand{1, {}},
                    Operand{-1, std::vector<double>(ir::element_count(node.shape), 0.0)}};
      r.function.steps.push_back(std::move(s));
      r.origin = origin;
      return r;
    }
    default:
      fail(origin + ": " + std::string(ir::op_name(op)) +
           " between two encrypted values that do not derive from one source is not supported "
           "(only add, sub, mul, max, min and comparisons are); inputs: " +
           a.origin + " and " + b.origin);
  }
}

Repr Quantizer::lower_where(const FloatNode& node, const std::vector<const Repr*>& in,
                            const std::string& origin) {
  const Repr& c = *in[0];
  const Repr& a = *in[1];
  const Repr& b = *in[2];
  // Univariate: every encrypted operand shares one source and has the output's shape.
  std::optional<ValueId> source;
  bool univariate = true;
  for (const Repr* r : in) {
    if (r->kind == Repr::Kind::kClear) continue;
    univariate = univariate && r->shape == node.shape && (!source || *source == source_of(*r));
    source = source_of(*r);
  }
  if (univariate) {
    Repr r;
    r.kind = Repr::Kind::kFunction;
    r.shape = node.shape;
    r.function.source = *source;
    Step s;
    s.kind = Step::Kind::kWhere;
    s.operands = {operand_for(c, r.function, node.shape), operand_for(a, r.function, node.shape),
                  operand_for(b, r.function, node.shape)};
    r.function.steps.push_back(std::move(s));
    r.origin = origin;
    return r;
  }
  if (c.kind == Repr::Kind::kClear) {
    fail(origin +
         ": where with a constant condition and two encrypted branches is not "
         "supported; select the branch before compiling");
  }
  // b + indicator(c) * (a - b).
  const std::size_t count = ir::element_count(node.shape);
  Repr ind;
  ind.kind = Repr::Kind::kFunction;
  ind.shape = c.shape;
  ind.function = as_expression(c);
  Step s;
  s.kind = Step::Kind::kBinary;
  s.op = FloatOp::kEqual;
  s.operands = {Operand{static_cast<int>(ind.function.steps.size()), {}},
                Operand{-1, std::vector<double>(ir::element_count(c.shape), 0.0)}};
  ind.function.steps.push_back(std::move(s));
  Step flip;  // 1 - (c == 0)
  flip.kind = Step::Kind::kAffine;
  flip.operands = {Operand{static_cast<int>(ind.function.steps.size()), {}}};
  flip.scale.assign(ir::element_count(c.shape), -1.0);
  flip.bias.assign(ir::element_count(c.shape), 1.0);
  ind.function.steps.push_back(std::move(flip));
  ind.origin = "(" + c.origin + " != 0)";
  const Affine ci =
      broadcast(materialize(ind, 1, OutputQuantizer{1.0, 0.0, 1}), c.shape, node.shape);
  const auto encrypted = [&](const Repr& r) {
    if (r.kind != Repr::Kind::kClear) {
      return broadcast(materialize(r, options_.n_bits.op_inputs), r.shape, node.shape);
    }
    // A constant branch: a bias-only linear node.
    std::vector<std::vector<Term>> rows(count);
    return Affine{integer_linear(rows, std::vector<double>(count, 0.0), node.shape, "zero"),
                  std::vector<double>(count, 0.0), broadcast_values(r.clear, node.shape)};
  };
  const Affine fa = encrypted(a);
  const Affine fb = encrypted(b);
  const Affine d = combine(fa, fb, -1.0, node.shape, origin + " a-b");
  const Affine p = multiply(ci, d, node.shape, origin + " c*(a-b)");
  return affine_repr(combine(fb, p, 1.0, node.shape, origin), node.shape, origin);
}

// ---- outputs and pruning ----

void Quantizer::emit_output(ValueId out) {
  const Repr& r = reprs_[out.index];
  if (r.kind == Repr::Kind::kClear) {
    fail("output %" + std::to_string(out.index) + " (" + r.origin +
         ") does not depend on any input: nothing to encrypt");
  }
  Repr output = r;
  if (options_.requantize_outputs && r.kind == Repr::Kind::kAffine) {
    // An identity lookup: decrypts a fresh model_outputs-bit value instead of the wide
    // accumulator, whose exact decryption needs far less noise than a bootstrap leaves.
    output.kind = Repr::Kind::kFunction;
    output.function = as_expression(r);
    output.origin = "requantize(" + r.origin + ")";
  }
  const Affine a = materialize(output, options_.n_bits.model_outputs);
  result_.graph.outputs.push_back(a.node);
  OutputDequantizer d;
  d.shape = r.shape;
  d.scale = a.scale;
  d.bias = a.bias;
  result_.outputs.push_back(std::move(d));
}

void Quantizer::prune() {
  ir::IntGraph& g = result_.graph;
  std::vector<bool> live(g.nodes.size(), false);
  for (const ValueId out : g.outputs) live[out.index] = true;
  for (std::size_t i = g.nodes.size(); i-- > 0;) {
    if (g.nodes[i].op == IntOp::kInput) live[i] = true;
    if (!live[i]) continue;
    for (const ValueId in : g.nodes[i].inputs) live[in.index] = true;
  }
  std::vector<std::uint32_t> renumber(g.nodes.size(), 0);
  ir::IntGraph pruned;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (!live[i]) continue;
    IntNode n = std::move(g.nodes[i]);
    for (ValueId& in : n.inputs) in.index = renumber[in.index];
    renumber[i] = pruned.add(std::move(n)).index;
  }
  for (const ValueId out : g.outputs) pruned.outputs.push_back(ValueId{renumber[out.index]});
  g = std::move(pruned);
}

}  // namespace detail

QuantizedGraph quantize(const ir::FloatGraph& graph, std::span<const Sample> calibration,
                        const QuantizeOptions& options) {
  return detail::Quantizer(graph, calibration, options).run();
}

}  // namespace fheml::quant
