// The exact affine map of a node that is linear in its variable operands.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "fheml/ir/float_graph.h"
#include "fheml/ir/window.h"

namespace fheml::ir {

namespace {

std::string label(const FloatNode& node) {
  return std::string(op_name(node.op)) + (node.name.empty() ? "" : " \"" + node.name + '"');
}

[[noreturn]] void fail(const FloatNode& node, const std::string& what) {
  throw std::invalid_argument("linearize: " + label(node) + ": " + what);
}

// Appends the rows of a LinearMap in order. A term on a constant slot folds into the bias, so
// every op below handles any mix of constant and variable operands the same way.
class RowBuilder {
 public:
  RowBuilder(std::span<const FloatTensor* const> constants, std::size_t rows)
      : constants_(constants) {
    map_.row_begin.reserve(rows + 1);
    map_.row_begin.push_back(0);
    map_.bias.reserve(rows);
  }

  void term(std::size_t slot, std::size_t element, double weight) {
    if (const FloatTensor* constant = constants_[slot]) {
      bias_ += weight * constant->data[element];
    } else {
      pending_.push_back(LinearEntry{static_cast<std::uint32_t>(slot),
                                     static_cast<std::uint32_t>(element), weight});
    }
  }
  void constant(double value) { bias_ += value; }

  void end_row() {
    const auto before = [](const LinearEntry& x, const LinearEntry& y) {
      return x.slot != y.slot ? x.slot < y.slot : x.element < y.element;
    };
    if (!std::is_sorted(pending_.begin(), pending_.end(), before)) {
      std::stable_sort(pending_.begin(), pending_.end(), before);
    }
    const std::size_t row_start = map_.entries.size();
    for (const LinearEntry& entry : pending_) {
      if (map_.entries.size() > row_start && map_.entries.back().slot == entry.slot &&
          map_.entries.back().element == entry.element) {
        map_.entries.back().weight += entry.weight;
      } else {
        map_.entries.push_back(entry);
      }
    }
    // Zero weights (a zero factor of mul or gemm) carry nothing: dropping them keeps rows short.
    map_.entries.erase(
        std::remove_if(map_.entries.begin() + static_cast<std::ptrdiff_t>(row_start),
                       map_.entries.end(), [](const LinearEntry& e) { return e.weight == 0.0; }),
        map_.entries.end());
    map_.row_begin.push_back(map_.entries.size());
    map_.bias.push_back(bias_);
    pending_.clear();
    bias_ = 0.0;
  }

  LinearMap finish() { return std::move(map_); }

 private:
  std::span<const FloatTensor* const> constants_;
  LinearMap map_;
  std::vector<LinearEntry> pending_;
  double bias_ = 0.0;
};

// For each element of `out`, the element of `in` that numpy broadcasting maps to it.
LinearMap gemm(const FloatNode& node, std::span<const FloatTensor* const> constants,
               std::span<const Shape> shapes) {
  const FloatAttributes& a = node.attributes;
  const FloatTensor* ca = constants[0];
  const FloatTensor* cb = constants[1];
  if (ca == nullptr && cb == nullptr) {
    fail(node, "A and B are both variables: their product is not linear (one must be constant)");
  }
  const std::size_t m_count = node.shape[0];
  const std::size_t n_count = node.shape[1];
  const std::size_t k_count = a.trans_a ? shapes[0][0] : shapes[0][1];
  std::vector<std::size_t> c_index;
  if (shapes.size() == 3) c_index = broadcast_index(shapes[2], node.shape);
  RowBuilder rows(constants, m_count * n_count);
  for (std::size_t m = 0; m < m_count; ++m) {
    for (std::size_t n = 0; n < n_count; ++n) {
      double product = 0.0;
      for (std::size_t k = 0; k < k_count; ++k) {
        const std::size_t ea = a.trans_a ? k * m_count + m : m * k_count + k;
        const std::size_t eb = a.trans_b ? n * k_count + k : k * n_count + n;
        if (ca == nullptr) {
          rows.term(0, ea, a.alpha * cb->data[eb]);
        } else if (cb == nullptr) {
          rows.term(1, eb, a.alpha * ca->data[ea]);
        } else {
          product += ca->data[ea] * cb->data[eb];
        }
      }
      rows.constant(a.alpha * product);
      if (shapes.size() == 3) rows.term(2, c_index[m * n_count + n], a.beta);
      rows.end_row();
    }
  }
  return rows.finish();
}

LinearMap matmul(const FloatNode& node, std::span<const FloatTensor* const> constants,
                 std::span<const Shape> shapes) {
  const FloatTensor* ca = constants[0];
  const FloatTensor* cb = constants[1];
  if (ca == nullptr && cb == nullptr) {
    fail(node, "A and B are both variables: their product is not linear (one must be constant)");
  }
  // 1-D operands are promoted to [1,K] and [K,1]: same elements, same order.
  const MatmulGeometry g = matmul_geometry(shapes[0], shapes[1], node.shape);
  const std::size_t m_count = g.m, k_count = g.k, n_count = g.n;
  const std::vector<std::size_t>& a_index = g.a_matrix;
  const std::vector<std::size_t>& b_index = g.b_matrix;
  RowBuilder rows(constants, element_count(node.shape));
  for (std::size_t t = 0; t < a_index.size(); ++t) {
    for (std::size_t m = 0; m < m_count; ++m) {
      for (std::size_t n = 0; n < n_count; ++n) {
        double product = 0.0;
        for (std::size_t k = 0; k < k_count; ++k) {
          const std::size_t ea = (a_index[t] * m_count + m) * k_count + k;
          const std::size_t eb = (b_index[t] * k_count + k) * n_count + n;
          if (ca == nullptr) {
            rows.term(0, ea, cb->data[eb]);
          } else if (cb == nullptr) {
            rows.term(1, eb, ca->data[ea]);
          } else {
            product += ca->data[ea] * cb->data[eb];
          }
        }
        rows.constant(product);
        rows.end_row();
      }
    }
  }
  return rows.finish();
}

LinearMap conv(const FloatNode& node, std::span<const FloatTensor* const> constants,
               std::span<const Shape> shapes) {
  const FloatTensor* w = constants[1];
  if (w == nullptr) fail(node, "the weights W must be constant (only X and B may be variables)");
  const Shape& x = shapes[0];
  const auto [h, wd] =
      window_of(x, node.shape, Shape(w->shape.begin() + 2, w->shape.end()), node.attributes, true);
  const std::size_t channels = x[1];
  const std::size_t maps = w->shape[0];
  const std::size_t group_channels = channels / node.attributes.groups;
  const std::size_t group_maps = maps / node.attributes.groups;
  RowBuilder rows(constants, element_count(node.shape));
  for (std::size_t n = 0; n < x[0]; ++n) {
    for (std::size_t m = 0; m < maps; ++m) {
      const std::size_t first_channel = m / group_maps * group_channels;
      for (std::size_t oh = 0; oh < h.out; ++oh) {
        for (std::size_t ow = 0; ow < wd.out; ++ow) {
          for (std::size_t c = 0; c < group_channels; ++c) {
            const std::size_t plane = (n * channels + first_channel + c) * h.in * wd.in;
            const std::size_t taps = (m * group_channels + c) * h.kernel * wd.kernel;
            for (std::size_t kh = 0; kh < h.kernel; ++kh) {
              std::size_t ih = 0;
              if (!h.position(oh, kh, ih)) continue;
              for (std::size_t kw = 0; kw < wd.kernel; ++kw) {
                std::size_t iw = 0;
                if (!wd.position(ow, kw, iw)) continue;
                rows.term(0, plane + ih * wd.in + iw, w->data[taps + kh * wd.kernel + kw]);
              }
            }
          }
          if (shapes.size() == 3) rows.term(2, m, 1.0);
          rows.end_row();
        }
      }
    }
  }
  return rows.finish();
}

LinearMap avg_pool(const FloatNode& node, std::span<const FloatTensor* const> constants,
                   std::span<const Shape> shapes) {
  const Shape& x = shapes[0];
  const auto [h, w] = window_of(x, node.shape, node.attributes.kernel, node.attributes, false);
  RowBuilder rows(constants, element_count(node.shape));
  std::vector<std::size_t> window;
  for (std::size_t p = 0; p < x[0] * x[1]; ++p) {
    for (std::size_t oh = 0; oh < h.out; ++oh) {
      for (std::size_t ow = 0; ow < w.out; ++ow) {
        window.clear();
        for (std::size_t kh = 0; kh < h.kernel; ++kh) {
          std::size_t ih = 0;
          if (!h.position(oh, kh, ih)) continue;
          for (std::size_t kw = 0; kw < w.kernel; ++kw) {
            std::size_t iw = 0;
            if (w.position(ow, kw, iw)) window.push_back((p * h.in + ih) * w.in + iw);
          }
        }
        const double divisor = static_cast<double>(
            node.attributes.count_include_pad ? h.kernel * w.kernel : window.size());
        for (std::size_t element : window) rows.term(0, element, 1.0 / divisor);
        rows.end_row();
      }
    }
  }
  return rows.finish();
}

LinearMap reduce(const FloatNode& node, std::span<const FloatTensor* const> constants,
                 std::span<const Shape> shapes) {
  const Shape& x = shapes[0];
  Shape kept = x;
  if (node.attributes.axes.empty()) std::fill(kept.begin(), kept.end(), 1);
  for (std::int64_t axis : node.attributes.axes) {
    kept[static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::int64_t>(x.size()) : axis)] =
        1;
  }
  // Output element of every input element, then the input elements of every output element.
  const auto target = broadcast_index(kept, x);
  const std::size_t out_count = element_count(node.shape);
  std::vector<std::size_t> begin(out_count + 1, 0);
  for (std::size_t t : target) ++begin[t + 1];
  for (std::size_t r = 0; r < out_count; ++r) begin[r + 1] += begin[r];
  std::vector<std::size_t> members(target.size());
  std::vector<std::size_t> next(begin.begin(), begin.end() - 1);
  for (std::size_t e = 0; e < target.size(); ++e) members[next[target[e]]++] = e;
  const double weight = node.op == FloatOp::kMean
                            ? static_cast<double>(out_count) / static_cast<double>(target.size())
                            : 1.0;
  RowBuilder rows(constants, out_count);
  for (std::size_t r = 0; r < out_count; ++r) {
    for (std::size_t i = begin[r]; i < begin[r + 1]; ++i) rows.term(0, members[i], weight);
    rows.end_row();
  }
  return rows.finish();
}

LinearMap elementwise(const FloatNode& node, std::span<const FloatTensor* const> constants,
                      std::span<const Shape> shapes) {
  const std::size_t count = element_count(node.shape);
  RowBuilder rows(constants, count);
  if (node.op == FloatOp::kNeg) {
    for (std::size_t e = 0; e < count; ++e) {
      rows.term(0, e, -1.0);
      rows.end_row();
    }
    return rows.finish();
  }
  const FloatTensor* ca = constants[0];
  const FloatTensor* cb = constants[1];
  if (node.op == FloatOp::kMul && ca == nullptr && cb == nullptr) {
    fail(node, "both operands are variables: their product is not linear (one must be constant)");
  }
  if (node.op == FloatOp::kDiv && cb == nullptr) {
    fail(node, "the divisor is a variable: division is linear only by a constant");
  }
  const auto ia = broadcast_index(shapes[0], node.shape);
  const auto ib = broadcast_index(shapes[1], node.shape);
  for (std::size_t e = 0; e < count; ++e) {
    switch (node.op) {
      case FloatOp::kAdd:
        rows.term(0, ia[e], 1.0);
        rows.term(1, ib[e], 1.0);
        break;
      case FloatOp::kSub:
        rows.term(0, ia[e], 1.0);
        rows.term(1, ib[e], -1.0);
        break;
      case FloatOp::kMul:
        if (ca == nullptr) {
          rows.term(0, ia[e], cb->data[ib[e]]);
        } else {
          rows.term(1, ib[e], ca->data[ia[e]]);
        }
        break;
      default:  // kDiv, constant divisor
        if (ca == nullptr) {
          rows.term(0, ia[e], 1.0 / cb->data[ib[e]]);
        } else {
          rows.constant(ca->data[ia[e]] / cb->data[ib[e]]);
        }
        break;
    }
    rows.end_row();
  }
  return rows.finish();
}

// Movement ops copy elements: the interpreter run on tensors that hold (slot, element) codes
// tells where each output element comes from. Padding shows up as -1.
LinearMap movement(const FloatNode& node, std::span<const FloatTensor* const> constants,
                   std::span<const Shape> shapes) {
  const std::size_t count = element_count(node.shape);
  RowBuilder rows(constants, count);
  if (node.op == FloatOp::kReshape || node.op == FloatOp::kFlatten ||
      node.op == FloatOp::kSqueeze || node.op == FloatOp::kUnsqueeze) {
    for (std::size_t e = 0; e < count; ++e) {
      rows.term(0, e, 1.0);
      rows.end_row();
    }
    return rows.finish();
  }
  constexpr double kSlotScale = 4294967296.0;  // 2^32: element < 2^32, codes exact below 2^53
  std::vector<FloatTensor> codes;
  codes.reserve(shapes.size());
  for (std::size_t s = 0; s < shapes.size(); ++s) {
    FloatTensor code(shapes[s]);
    for (std::size_t e = 0; e < code.size(); ++e) {
      code.data[e] = static_cast<double>(s) * kSlotScale + static_cast<double>(e);
    }
    codes.push_back(std::move(code));
  }
  std::vector<const FloatTensor*> operands;
  for (const FloatTensor& code : codes) operands.push_back(&code);
  FloatNode coded = node;
  coded.attributes.pad_value = -1.0;
  const FloatTensor sources = evaluate_node(coded, operands);
  for (std::size_t e = 0; e < count; ++e) {
    const double code = sources.data[e];
    if (code < 0.0) {
      rows.constant(node.attributes.pad_value);
    } else {
      rows.term(static_cast<std::size_t>(code / kSlotScale),
                static_cast<std::size_t>(std::fmod(code, kSlotScale)), 1.0);
    }
    rows.end_row();
  }
  return rows.finish();
}

}  // namespace

LinearMap linearize(const FloatNode& node, std::span<const FloatTensor* const> constant_inputs,
                    std::span<const Shape> input_shapes) {
  const bool supported =
      node.op == FloatOp::kGemm || node.op == FloatOp::kMatMul || node.op == FloatOp::kConv ||
      node.op == FloatOp::kAdd || node.op == FloatOp::kSub || node.op == FloatOp::kMul ||
      node.op == FloatOp::kDiv || node.op == FloatOp::kNeg || node.op == FloatOp::kSum ||
      node.op == FloatOp::kMean || node.op == FloatOp::kAvgPool || is_movement(node.op);
  if (!supported) {
    fail(node,
         "not a linear op (linear ops: gemm, matmul, conv, add, sub, mul, div, neg, sum, "
         "mean, avg_pool and the movement ops)");
  }
  if (constant_inputs.size() != input_shapes.size()) {
    fail(node, "got " + std::to_string(constant_inputs.size()) + " constant slots for " +
                   std::to_string(input_shapes.size()) + " input shapes");
  }
  // Rebuild the node on inputs of the given shapes: the graph's checks apply unchanged.
  FloatGraph scratch;
  std::vector<ValueId> ids;
  for (std::size_t s = 0; s < input_shapes.size(); ++s) {
    if (element_count(input_shapes[s]) > std::numeric_limits<std::uint32_t>::max()) {
      fail(node, "input " + std::to_string(s) + " " + to_string(input_shapes[s]) +
                     " has more than 2^32 elements");
    }
    const FloatTensor* constant = constant_inputs[s];
    if (constant != nullptr && (constant->shape != input_shapes[s] ||
                                constant->data.size() != element_count(constant->shape))) {
      fail(node, "constant input " + std::to_string(s) + " is " + to_string(constant->shape) +
                     " with " + std::to_string(constant->data.size()) + " values, its slot is " +
                     to_string(input_shapes[s]));
    }
    ids.push_back(scratch.input("", input_shapes[s]));
  }
  ValueId rebuilt;
  try {
    rebuilt = scratch.add(node.op, ids, node.attributes, node.name);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("linearize: the inputs do not fit the node: " +
                                std::string(e.what()));
  }
  const Shape& shape = scratch.node(rebuilt).shape;
  if (shape != node.shape) {
    fail(node,
         "its inputs give shape " + to_string(shape) + ", the node says " + to_string(node.shape));
  }
  switch (node.op) {
    case FloatOp::kGemm:
      return gemm(node, constant_inputs, input_shapes);
    case FloatOp::kMatMul:
      return matmul(node, constant_inputs, input_shapes);
    case FloatOp::kConv:
      return conv(node, constant_inputs, input_shapes);
    case FloatOp::kAvgPool:
      return avg_pool(node, constant_inputs, input_shapes);
    case FloatOp::kSum:
    case FloatOp::kMean:
      return reduce(node, constant_inputs, input_shapes);
    case FloatOp::kAdd:
    case FloatOp::kSub:
    case FloatOp::kMul:
    case FloatOp::kDiv:
    case FloatOp::kNeg:
      return elementwise(node, constant_inputs, input_shapes);
    default:
      return movement(node, constant_inputs, input_shapes);
  }
}

}  // namespace fheml::ir
