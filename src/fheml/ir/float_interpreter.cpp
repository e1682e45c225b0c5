// The float reference: every FloatOp on doubles, as direct loops.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "fheml/ir/float_graph.h"
#include "fheml/ir/window.h"

namespace fheml::ir {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string label(const FloatNode& node) {
  return std::string(op_name(node.op)) + (node.name.empty() ? "" : " \"" + node.name + '"');
}

// Offsets `base + sum_i coordinate_i * strides_i` of every element of `shape`, row-major. With a
// stride of 0 on an axis this broadcasts, with permuted strides it transposes, with strides
// times steps it slices.
std::vector<std::size_t> strided_offsets(const Shape& shape,
                                         const std::vector<std::int64_t>& strides,
                                         std::int64_t base) {
  std::vector<std::size_t> offsets(element_count(shape));
  if (offsets.empty()) return offsets;
  std::vector<std::size_t> coordinate(shape.size(), 0);
  std::int64_t offset = base;
  for (std::size_t e = 0; e < offsets.size(); ++e) {
    offsets[e] = static_cast<std::size_t>(offset);
    for (std::size_t axis = shape.size(); axis-- > 0;) {
      offset += strides[axis];
      if (++coordinate[axis] < shape[axis]) break;
      offset -= strides[axis] * static_cast<std::int64_t>(shape[axis]);
      coordinate[axis] = 0;
    }
  }
  return offsets;
}

FloatTensor gemm(const FloatNode& node, std::span<const FloatTensor* const> in) {
  const FloatAttributes& a = node.attributes;
  const FloatTensor& ta = *in[0];
  const FloatTensor& tb = *in[1];
  const std::size_t m_count = node.shape[0];
  const std::size_t n_count = node.shape[1];
  const std::size_t k_count = a.trans_a ? ta.shape[0] : ta.shape[1];
  FloatTensor out(node.shape);
  std::vector<std::size_t> c_index;
  if (in.size() == 3) c_index = broadcast_index(in[2]->shape, node.shape);
  for (std::size_t m = 0; m < m_count; ++m) {
    for (std::size_t n = 0; n < n_count; ++n) {
      double sum = 0.0;
      for (std::size_t k = 0; k < k_count; ++k) {
        const double x = a.trans_a ? ta.data[k * m_count + m] : ta.data[m * k_count + k];
        const double y = a.trans_b ? tb.data[n * k_count + k] : tb.data[k * n_count + n];
        sum += x * y;
      }
      const std::size_t e = m * n_count + n;
      out.data[e] = a.alpha * sum + (in.size() == 3 ? a.beta * in[2]->data[c_index[e]] : 0.0);
    }
  }
  return out;
}

FloatTensor matmul(const FloatNode& node, std::span<const FloatTensor* const> in) {
  const MatmulGeometry g = matmul_geometry(in[0]->shape, in[1]->shape, node.shape);
  const std::size_t m_count = g.m, k_count = g.k, n_count = g.n;
  const std::vector<std::size_t>& a_offsets = g.a_matrix;
  const std::vector<std::size_t>& b_offsets = g.b_matrix;
  FloatTensor out(node.shape);
  for (std::size_t t = 0; t < a_offsets.size(); ++t) {
    const double* pa = in[0]->data.data() + a_offsets[t] * m_count * k_count;
    const double* pb = in[1]->data.data() + b_offsets[t] * k_count * n_count;
    double* po = out.data.data() + t * m_count * n_count;
    for (std::size_t m = 0; m < m_count; ++m) {
      for (std::size_t n = 0; n < n_count; ++n) {
        double sum = 0.0;
        for (std::size_t k = 0; k < k_count; ++k) sum += pa[m * k_count + k] * pb[k * n_count + n];
        po[m * n_count + n] = sum;
      }
    }
  }
  return out;
}

FloatTensor conv(const FloatNode& node, std::span<const FloatTensor* const> in) {
  const FloatTensor& x = *in[0];
  const FloatTensor& w = *in[1];
  const Window g = window_of(x.shape, node.shape, Shape(w.shape.begin() + 2, w.shape.end()),
                             node.attributes, true);
  const std::size_t batch = x.shape[0];
  const std::size_t channels = x.shape[1];
  const std::size_t maps = w.shape[0];
  const std::size_t groups = node.attributes.groups;
  const std::size_t group_channels = channels / groups;
  const std::size_t group_maps = maps / groups;
  FloatTensor out(node.shape);
  std::size_t e = 0;
  for (std::size_t n = 0; n < batch; ++n) {
    for (std::size_t m = 0; m < maps; ++m) {
      const std::size_t first_channel = m / group_maps * group_channels;
      for (std::size_t oh = 0; oh < g.h.out; ++oh) {
        for (std::size_t ow = 0; ow < g.w.out; ++ow) {
          double sum = in.size() == 3 ? in[2]->data[m] : 0.0;
          for (std::size_t c = 0; c < group_channels; ++c) {
            const double* px = x.data.data() + (n * channels + first_channel + c) * g.h.in * g.w.in;
            const double* pw = w.data.data() + (m * group_channels + c) * g.h.kernel * g.w.kernel;
            for (std::size_t kh = 0; kh < g.h.kernel; ++kh) {
              std::size_t ih = 0;
              if (!g.h.position(oh, kh, ih)) continue;
              for (std::size_t kw = 0; kw < g.w.kernel; ++kw) {
                std::size_t iw = 0;
                if (!g.w.position(ow, kw, iw)) continue;
                sum += px[ih * g.w.in + iw] * pw[kh * g.w.kernel + kw];
              }
            }
          }
          out.data[e++] = sum;
        }
      }
    }
  }
  return out;
}

FloatTensor pool(const FloatNode& node, std::span<const FloatTensor* const> in) {
  const FloatTensor& x = *in[0];
  const bool is_max = node.op == FloatOp::kMaxPool;
  const Window g = window_of(x.shape, node.shape, node.attributes.kernel, node.attributes, is_max);
  const std::size_t planes = x.shape[0] * x.shape[1];
  const double window_size = static_cast<double>(g.h.kernel * g.w.kernel);
  FloatTensor out(node.shape);
  std::size_t e = 0;
  for (std::size_t p = 0; p < planes; ++p) {
    const double* px = x.data.data() + p * g.h.in * g.w.in;
    for (std::size_t oh = 0; oh < g.h.out; ++oh) {
      for (std::size_t ow = 0; ow < g.w.out; ++ow) {
        double result = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
        std::size_t seen = 0;
        for (std::size_t kh = 0; kh < g.h.kernel; ++kh) {
          std::size_t ih = 0;
          if (!g.h.position(oh, kh, ih)) continue;
          for (std::size_t kw = 0; kw < g.w.kernel; ++kw) {
            std::size_t iw = 0;
            if (!g.w.position(ow, kw, iw)) continue;
            const double v = px[ih * g.w.in + iw];
            result = is_max ? (v > result || std::isnan(v) ? v : result) : result + v;
            ++seen;
          }
        }
        if (!is_max) {
          result /= node.attributes.count_include_pad ? window_size : static_cast<double>(seen);
        }
        out.data[e++] = result;
      }
    }
  }
  return out;
}

FloatTensor reduce(const FloatNode& node, const FloatTensor& x) {
  // The input shape with reduced axes set to 1 broadcasts onto the input: the broadcast map
  // sends every input element to its output element (keepdims does not change the order).
  Shape kept = x.shape;
  if (node.attributes.axes.empty()) std::fill(kept.begin(), kept.end(), 1);
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  for (std::int64_t axis : node.attributes.axes)
    kept[static_cast<std::size_t>(axis < 0 ? axis + rank : axis)] = 1;
  const auto target = broadcast_index(kept, x.shape);
  FloatTensor out(node.shape);
  for (std::size_t e = 0; e < x.size(); ++e) out.data[target[e]] += x.data[e];
  if (node.op == FloatOp::kMean) {
    const double count = static_cast<double>(x.size()) / static_cast<double>(out.size());
    for (double& v : out.data) v /= count;
  }
  return out;
}

FloatTensor gather(const FloatNode& node, const FloatTensor& x,
                   const std::vector<std::size_t>& offsets) {
  FloatTensor out(node.shape);
  for (std::size_t e = 0; e < offsets.size(); ++e) out.data[e] = x.data[offsets[e]];
  return out;
}

FloatTensor transpose(const FloatNode& node, const FloatTensor& x) {
  const std::size_t rank = x.shape.size();
  const std::vector<std::size_t> in_strides = strides_of(x.shape);
  std::vector<std::int64_t> strides(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    std::size_t from = rank - 1 - i;
    if (!node.attributes.axes.empty()) {
      const std::int64_t axis = node.attributes.axes[i];
      from = static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::int64_t>(rank) : axis);
    }
    strides[i] = static_cast<std::int64_t>(in_strides[from]);
  }
  return gather(node, x, strided_offsets(node.shape, strides, 0));
}

FloatTensor slice(const FloatNode& node, const FloatTensor& x) {
  const FloatAttributes& a = node.attributes;
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  const std::vector<std::size_t> in_strides = strides_of(x.shape);
  std::vector<std::int64_t> strides(in_strides.begin(), in_strides.end());
  std::int64_t base = 0;
  for (std::size_t i = 0; i < a.starts.size(); ++i) {
    std::int64_t axis = a.axes.empty() ? static_cast<std::int64_t>(i) : a.axes[i];
    if (axis < 0) axis += rank;
    const auto along = static_cast<std::size_t>(axis);
    if (node.shape[along] == 0) return FloatTensor(node.shape);
    const std::int64_t step = a.steps.empty() ? 1 : a.steps[i];
    const auto dim = static_cast<std::int64_t>(x.shape[along]);
    std::int64_t start = a.starts[i] < 0 ? a.starts[i] + dim : a.starts[i];
    start = step > 0 ? std::clamp<std::int64_t>(start, 0, dim)
                     : std::clamp<std::int64_t>(start, 0, dim - 1);
    base += start * strides[along];
    // One output element on this axis: the step is never taken (and may be huge).
    strides[along] = node.shape[along] == 1 ? 0 : strides[along] * step;
  }
  return gather(node, x, strided_offsets(node.shape, strides, base));
}

FloatTensor concat(const FloatNode& node, std::span<const FloatTensor* const> in) {
  const std::int64_t axis = node.attributes.axes[0];
  const auto rank = static_cast<std::int64_t>(node.shape.size());
  const auto along = static_cast<std::size_t>(axis < 0 ? axis + rank : axis);
  const std::size_t outer = element_count(
      Shape(node.shape.begin(), node.shape.begin() + static_cast<std::ptrdiff_t>(along)));
  FloatTensor out(node.shape);
  std::size_t e = 0;
  for (std::size_t o = 0; o < outer; ++o) {
    for (const FloatTensor* t : in) {
      const std::size_t block = t->size() / std::max<std::size_t>(outer, 1);
      std::copy_n(t->data.begin() + static_cast<std::ptrdiff_t>(o * block), block,
                  out.data.begin() + static_cast<std::ptrdiff_t>(e));
      e += block;
    }
  }
  return out;
}

FloatTensor pad(const FloatNode& node, const FloatTensor& x) {
  const std::size_t rank = x.shape.size();
  const std::vector<std::size_t> in_strides = strides_of(x.shape);
  FloatTensor out(node.shape);
  std::vector<std::size_t> coordinate(rank, 0);
  for (std::size_t e = 0; e < out.size(); ++e) {
    std::size_t offset = 0;
    bool inside = true;
    for (std::size_t i = 0; i < rank && inside; ++i) {
      const std::size_t begin = node.attributes.pads[i];
      inside = coordinate[i] >= begin && coordinate[i] - begin < x.shape[i];
      if (inside) offset += (coordinate[i] - begin) * in_strides[i];
    }
    out.data[e] = inside ? x.data[offset] : node.attributes.pad_value;
    for (std::size_t i = rank; i-- > 0;) {
      if (++coordinate[i] < node.shape[i]) break;
      coordinate[i] = 0;
    }
  }
  return out;
}

FloatTensor elementwise(const FloatNode& node, std::span<const FloatTensor* const> in) {
  FloatTensor out(node.shape);
  if (in.size() == 1) {
    for (std::size_t e = 0; e < out.size(); ++e) out.data[e] = apply_unary(node, in[0]->data[e]);
    return out;
  }
  const auto a = broadcast_index(in[0]->shape, node.shape);
  const auto b = broadcast_index(in[1]->shape, node.shape);
  if (node.op == FloatOp::kWhere) {
    const auto c = broadcast_index(in[2]->shape, node.shape);
    for (std::size_t e = 0; e < out.size(); ++e) {
      out.data[e] = in[0]->data[a[e]] != 0.0 ? in[1]->data[b[e]] : in[2]->data[c[e]];
    }
    return out;
  }
  for (std::size_t e = 0; e < out.size(); ++e) {
    out.data[e] = apply_binary(node.op, in[0]->data[a[e]], in[1]->data[b[e]]);
  }
  return out;
}

// Evaluation of a node whose inputs are known to fit it.
FloatTensor compute(const FloatNode& node, std::span<const FloatTensor* const> in) {
  switch (node.op) {
    case FloatOp::kConstant:
      return node.attributes.value;
    case FloatOp::kGemm:
      return gemm(node, in);
    case FloatOp::kMatMul:
      return matmul(node, in);
    case FloatOp::kConv:
      return conv(node, in);
    case FloatOp::kAvgPool:
    case FloatOp::kMaxPool:
      return pool(node, in);
    case FloatOp::kSum:
    case FloatOp::kMean:
      return reduce(node, *in[0]);
    case FloatOp::kReshape:
    case FloatOp::kFlatten:
    case FloatOp::kSqueeze:
    case FloatOp::kUnsqueeze:
      return FloatTensor(node.shape, in[0]->data);
    case FloatOp::kTranspose:
      return transpose(node, *in[0]);
    case FloatOp::kSlice:
      return slice(node, *in[0]);
    case FloatOp::kConcat:
      return concat(node, in);
    case FloatOp::kPad:
      return pad(node, *in[0]);
    default:
      break;
  }
  if (is_unary_elementwise(node.op) || is_binary_elementwise(node.op) ||
      node.op == FloatOp::kWhere) {
    return elementwise(node, in);
  }
  throw std::invalid_argument("evaluate_node: " + label(node) + " cannot be evaluated alone");
}

}  // namespace

double apply_unary(const FloatNode& node, double x) {
  const double alpha = node.attributes.alpha;
  const double beta = node.attributes.beta;
  switch (node.op) {
    case FloatOp::kNeg:
      return -x;
    case FloatOp::kRelu:
      return x > 0.0 ? x : (std::isnan(x) ? x : 0.0);
    case FloatOp::kLeakyRelu:
      return x >= 0.0 ? x : alpha * x;
    case FloatOp::kElu:
      return x >= 0.0 ? x : alpha * std::expm1(x);
    case FloatOp::kSelu: {
      // ONNX defaults (Klambauer et al. 2017).
      constexpr double kAlpha = 1.67326319217681884765625;
      constexpr double kGamma = 1.05070102214813232421875;
      return kGamma * (x > 0.0 ? x : kAlpha * std::expm1(x));
    }
    case FloatOp::kCelu:
      return std::max(0.0, x) + std::min(0.0, alpha * std::expm1(x / alpha));
    case FloatOp::kSigmoid:
      if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
      return std::exp(x) / (1.0 + std::exp(x));
    case FloatOp::kHardSigmoid:
      return std::max(0.0, std::min(1.0, alpha * x + beta));
    case FloatOp::kHardSwish:
      return x * std::max(0.0, std::min(1.0, x / 6.0 + 0.5));
    case FloatOp::kTanh:
      return std::tanh(x);
    case FloatOp::kGelu:
      return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case FloatOp::kSoftplus:
      // log(1 + e^x) without overflow for large x nor cancellation for very negative x.
      return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x)));
    case FloatOp::kSoftsign:
      return x / (1.0 + std::abs(x));
    case FloatOp::kExp:
      return std::exp(x);
    case FloatOp::kLog:
      return std::log(x);
    case FloatOp::kAbs:
      return std::abs(x);
    case FloatOp::kClip:
      return std::min(std::max(x, alpha), beta);
    case FloatOp::kSign:
      return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : (std::isnan(x) ? x : 0.0);
    case FloatOp::kSqrt:
      return std::sqrt(x);
    case FloatOp::kReciprocal:
      return 1.0 / x;
    case FloatOp::kErf:
      return std::erf(x);
    case FloatOp::kFloor:
      return std::floor(x);
    case FloatOp::kCeil:
      return std::ceil(x);
    case FloatOp::kRound: {
      // Half to even, independent of the floating-point rounding mode.
      if (!std::isfinite(x)) return x;
      const double low = std::floor(x);
      const double fraction = x - low;
      if (fraction < 0.5) return low;
      if (fraction > 0.5) return low + 1.0;
      return std::fmod(low, 2.0) == 0.0 ? low : low + 1.0;
    }
    case FloatOp::kSin:
      return std::sin(x);
    case FloatOp::kCos:
      return std::cos(x);
    case FloatOp::kNot:
      return x == 0.0 ? 1.0 : 0.0;
    default:
      throw std::invalid_argument("apply_unary: " + label(node) +
                                  " is not a univariate element-wise op");
  }
}

double apply_binary(FloatOp op, double a, double b) {
  switch (op) {
    case FloatOp::kAdd:
      return a + b;
    case FloatOp::kSub:
      return a - b;
    case FloatOp::kMul:
      return a * b;
    case FloatOp::kDiv:
      return a / b;
    case FloatOp::kPow:
      return std::pow(a, b);
    case FloatOp::kMax:
      return std::isnan(a) || std::isnan(b) ? kNaN : std::max(a, b);
    case FloatOp::kMin:
      return std::isnan(a) || std::isnan(b) ? kNaN : std::min(a, b);
    case FloatOp::kLess:
      return a < b ? 1.0 : 0.0;
    case FloatOp::kLessEqual:
      return a <= b ? 1.0 : 0.0;
    case FloatOp::kGreater:
      return a > b ? 1.0 : 0.0;
    case FloatOp::kGreaterEqual:
      return a >= b ? 1.0 : 0.0;
    case FloatOp::kEqual:
      return a == b ? 1.0 : 0.0;
    default:
      throw std::invalid_argument("apply_binary: " + std::string(op_name(op)) +
                                  " is not a binary element-wise op");
  }
}

FloatTensor evaluate_node(const FloatNode& node, std::span<const FloatTensor* const> inputs) {
  if (node.op == FloatOp::kInput) {
    throw std::invalid_argument("evaluate_node: " + label(node) +
                                " takes its value from the arguments of evaluate");
  }
  if (node.op == FloatOp::kConstant) return node.attributes.value;
  // Rebuild the node on inputs of the given shapes: the graph's checks apply unchanged.
  FloatGraph scratch;
  std::vector<ValueId> ids;
  for (std::size_t s = 0; s < inputs.size(); ++s) {
    const FloatTensor* t = inputs[s];
    if (t == nullptr || t->data.size() != element_count(t->shape)) {
      throw std::invalid_argument(
          "evaluate_node: " + label(node) + ": input " + std::to_string(s) + " is " +
          (t == nullptr ? std::string("missing")
                        : "malformed (" + std::to_string(t->data.size()) + " values for shape " +
                              to_string(t->shape) + ")"));
    }
    ids.push_back(scratch.input("", t->shape));
  }
  ValueId rebuilt;
  try {
    rebuilt = scratch.add(node.op, ids, node.attributes, node.name);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("evaluate_node: the inputs do not fit the node: " +
                                std::string(e.what()));
  }
  const Shape& shape = scratch.node(rebuilt).shape;
  if (shape != node.shape) {
    throw std::invalid_argument("evaluate_node: " + label(node) + ": its inputs give shape " +
                                to_string(shape) + ", the node says " + to_string(node.shape));
  }
  return compute(node, inputs);
}

std::vector<FloatTensor> evaluate_all(const FloatGraph& graph,
                                      std::span<const FloatTensor> inputs) {
  const std::vector<ValueId> input_ids = graph.inputs();
  if (inputs.size() != input_ids.size()) {
    throw std::invalid_argument("evaluate: the graph has " + std::to_string(input_ids.size()) +
                                " inputs, found " + std::to_string(inputs.size()) + " tensors");
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const FloatNode& node = graph.node(input_ids[i]);
    if (inputs[i].shape != node.shape || inputs[i].data.size() != element_count(node.shape)) {
      throw std::invalid_argument("evaluate: input " + std::to_string(i) + " \"" + node.name +
                                  "\" must be f32" + to_string(node.shape) + ", found " +
                                  to_string(inputs[i].shape) + " with " +
                                  std::to_string(inputs[i].data.size()) + " values");
    }
  }
  std::vector<FloatTensor> values;
  values.reserve(graph.nodes().size());
  std::size_t next_input = 0;
  std::vector<const FloatTensor*> operands;
  for (const FloatNode& node : graph.nodes()) {
    if (node.op == FloatOp::kInput) {
      values.push_back(inputs[next_input++]);
      continue;
    }
    operands.clear();
    for (ValueId id : node.inputs) operands.push_back(&values[id.index]);
    values.push_back(compute(node, operands));
  }
  return values;
}

std::vector<FloatTensor> evaluate(const FloatGraph& graph, std::span<const FloatTensor> inputs) {
  std::vector<FloatTensor> values = evaluate_all(graph, inputs);
  std::vector<FloatTensor> outputs;
  outputs.reserve(graph.outputs().size());
  for (ValueId id : graph.outputs()) outputs.push_back(values[id.index]);
  return outputs;
}

}  // namespace fheml::ir
