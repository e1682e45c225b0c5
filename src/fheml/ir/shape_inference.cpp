// Shape inference of the float graph's ops (FloatGraph::add calls it for every node).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/ir/float_graph_internal.h"

namespace fheml::ir {
namespace detail {

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

}  // namespace detail

namespace {

using detail::list_to_string;
using detail::quoted;

// Shape inference of one node: what every check needs to name the node in its message.
class Inference {
 public:
  Inference(FloatOp op, const std::vector<Shape>& in, const FloatAttributes& attributes,
            const std::string& name, std::size_t index)
      : op_(op), in_(in), a_(attributes) {
    where_ = std::string(op_name(op)) + ' ' +
             (name.empty() ? '%' + std::to_string(index) : quoted(name));
  }

  Shape run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(where_ + ": " + what);
  }

  void expect_inputs(std::size_t low, std::size_t high) const;
  std::size_t axis(std::int64_t value, std::size_t rank, const char* what) const;
  std::vector<std::size_t> axes_set(std::size_t rank) const;
  Shape broadcast(const Shape& a, const Shape& b, const char* names) const;
  std::vector<std::size_t> per_spatial(const std::vector<std::size_t>& values, std::size_t count,
                                       std::size_t fallback, const char* what) const;

  Shape gemm() const;
  Shape matmul() const;
  Shape conv() const;
  Shape pool() const;
  Shape reduce() const;
  Shape reshape() const;
  Shape flatten() const;
  Shape transpose() const;
  Shape concat() const;
  Shape slice() const;
  Shape pad() const;
  Shape squeeze() const;
  Shape unsqueeze() const;

  FloatOp op_;
  const std::vector<Shape>& in_;
  const FloatAttributes& a_;
  std::string where_;
};

void Inference::expect_inputs(std::size_t low, std::size_t high) const {
  const std::size_t n = in_.size();
  if (n >= low && n <= high) return;
  std::string expected = std::to_string(low);
  if (high == std::numeric_limits<std::size_t>::max()) {
    expected = "at least " + expected;
  } else if (high != low) {
    expected += " or " + std::to_string(high);
  }
  fail("expected " + expected + " input" + (high == 1 && low == 1 ? "" : "s") + ", found " +
       std::to_string(n));
}

std::size_t Inference::axis(std::int64_t value, std::size_t rank, const char* what) const {
  const auto r = static_cast<std::int64_t>(rank);
  if (value < -r || value >= r) {
    fail(std::string(what) + " " + std::to_string(value) + " is out of range for rank " +
         std::to_string(rank) + " (expected -" + std::to_string(rank) + " <= axis < " +
         std::to_string(rank) + ")");
  }
  return static_cast<std::size_t>(value < 0 ? value + r : value);
}

// Normalized, duplicate-free `axes` of a reduction (every axis when empty).
std::vector<std::size_t> Inference::axes_set(std::size_t rank) const {
  std::vector<std::size_t> axes;
  if (a_.axes.empty()) {
    for (std::size_t i = 0; i < rank; ++i) axes.push_back(i);
    return axes;
  }
  for (std::int64_t value : a_.axes) {
    const std::size_t normalized = axis(value, rank, "axis");
    if (std::find(axes.begin(), axes.end(), normalized) != axes.end()) {
      fail("axis " + std::to_string(normalized) + " appears twice in axes " +
           list_to_string(a_.axes));
    }
    axes.push_back(normalized);
  }
  return axes;
}

Shape Inference::broadcast(const Shape& a, const Shape& b, const char* names) const {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::size_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::size_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      fail(std::string(names) + " do not broadcast: " + to_string(a) + " and " + to_string(b) +
           " differ at axis " + std::to_string(i) + " of the result (" + std::to_string(da) +
           " vs " + std::to_string(db) + ")");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<std::size_t> Inference::per_spatial(const std::vector<std::size_t>& values,
                                                std::size_t count, std::size_t fallback,
                                                const char* what) const {
  if (values.empty()) return std::vector<std::size_t>(count, fallback);
  if (values.size() != count) {
    fail(std::string(what) + " " + list_to_string(values) + " must have " + std::to_string(count) +
         " values (one per spatial axis), found " + std::to_string(values.size()));
  }
  return values;
}

Shape Inference::gemm() const {
  expect_inputs(2, 3);
  const Shape& a = in_[0];
  const Shape& b = in_[1];
  if (a.size() != 2) fail("A must be 2-D, found " + to_string(a));
  if (b.size() != 2) fail("B must be 2-D, found " + to_string(b));
  const std::size_t m = a_.trans_a ? a[1] : a[0];
  const std::size_t k = a_.trans_a ? a[0] : a[1];
  const std::size_t kb = a_.trans_b ? b[1] : b[0];
  const std::size_t n = a_.trans_b ? b[0] : b[1];
  if (k != kb) {
    fail("inner dimensions differ: A is " + to_string(a) + " (k=" + std::to_string(k) +
         (a_.trans_a ? ", trans_a" : "") + "), B is " + to_string(b) + " (k=" + std::to_string(kb) +
         (a_.trans_b ? ", trans_b" : "") + ")");
  }
  const Shape out{m, n};
  if (in_.size() == 3) {
    const Shape& c = in_[2];
    bool ok = c.size() <= 2;
    for (std::size_t i = 0; ok && i < c.size(); ++i) {
      const std::size_t target = out[2 - c.size() + i];
      ok = c[i] == target || c[i] == 1;
    }
    if (!ok) fail("C is " + to_string(c) + ", it must broadcast to the output " + to_string(out));
  }
  return out;
}

Shape Inference::matmul() const {
  expect_inputs(2, 2);
  const Shape& a = in_[0];
  const Shape& b = in_[1];
  if (a.empty() || b.empty()) {
    fail("operands must have rank >= 1, found " + to_string(a) + " and " + to_string(b));
  }
  const Shape a2 = a.size() == 1 ? Shape{1, a[0]} : a;
  const Shape b2 = b.size() == 1 ? Shape{b[0], 1} : b;
  const std::size_t k = a2.back();
  const std::size_t kb = b2[b2.size() - 2];
  if (k != kb) {
    fail("inner dimensions differ: A is " + to_string(a) + " (k=" + std::to_string(k) + "), B is " +
         to_string(b) + " (k=" + std::to_string(kb) + ")");
  }
  Shape out = broadcast(Shape(a2.begin(), a2.end() - 2), Shape(b2.begin(), b2.end() - 2),
                        "batch dimensions");
  if (a.size() > 1) out.push_back(a2[a2.size() - 2]);
  if (b.size() > 1) out.push_back(b2.back());
  return out;
}

Shape Inference::conv() const {
  expect_inputs(2, 3);
  const Shape& x = in_[0];
  const Shape& w = in_[1];
  if (x.size() != 3 && x.size() != 4) {
    fail("X must be [N,C,L] or [N,C,H,W], found " + to_string(x));
  }
  if (w.size() != x.size()) {
    fail("W must have the rank of X " + to_string(x) + ", found " + to_string(w));
  }
  const std::size_t spatial = x.size() - 2;
  const std::size_t groups = a_.groups;
  const std::size_t channels = x[1];
  const std::size_t maps = w[0];
  if (groups == 0) fail("groups must be at least 1, found 0");
  if (channels % groups != 0 || maps % groups != 0) {
    fail("groups=" + std::to_string(groups) + " must divide the input channels (" +
         std::to_string(channels) + ") and the output channels (" + std::to_string(maps) + ")");
  }
  if (w[1] * groups != channels) {
    fail("W is " + to_string(w) + ": W[1] must be C/groups = " + std::to_string(channels) + "/" +
         std::to_string(groups) + " = " + std::to_string(channels / groups) + ", found " +
         std::to_string(w[1]));
  }
  if (in_.size() == 3 && in_[2] != Shape{maps}) {
    fail("B must be [" + std::to_string(maps) + "] (one bias per output channel), found " +
         to_string(in_[2]));
  }
  const Shape kernel(w.begin() + 2, w.end());
  if (!a_.kernel.empty() && a_.kernel != kernel) {
    fail("kernel " + list_to_string(a_.kernel) + " differs from the kernel of W " + to_string(w));
  }
  const auto strides = per_spatial(a_.strides, spatial, 1, "strides");
  const auto dilations = per_spatial(a_.dilations, spatial, 1, "dilations");
  const auto pads = per_spatial(a_.pads, 2 * spatial, 0, "pads");
  Shape out{x[0], maps};
  for (std::size_t i = 0; i < spatial; ++i) {
    if (strides[i] == 0 || dilations[i] == 0) {
      fail("strides and dilations must be at least 1, found strides " + list_to_string(strides) +
           " and dilations " + list_to_string(dilations));
    }
    if (kernel[i] == 0) fail("W has an empty kernel: " + to_string(w));
    const std::size_t extent = dilations[i] * (kernel[i] - 1) + 1;
    const std::size_t padded = x[2 + i] + pads[i] + pads[spatial + i];
    if (padded < extent) {
      fail("spatial axis " + std::to_string(i) + ": the kernel spans " + std::to_string(extent) +
           " elements (dilations included) but the padded input has only " +
           std::to_string(padded));
    }
    out.push_back((padded - extent) / strides[i] + 1);
  }
  return out;
}

Shape Inference::pool() const {
  expect_inputs(1, 1);
  const Shape& x = in_[0];
  if (x.size() != 3 && x.size() != 4) {
    fail("X must be [N,C,L] or [N,C,H,W], found " + to_string(x));
  }
  const std::size_t spatial = x.size() - 2;
  if (a_.kernel.size() != spatial) {
    fail("kernel must have " + std::to_string(spatial) + " values (one per spatial axis of " +
         to_string(x) + "), found " + list_to_string(a_.kernel));
  }
  const auto strides = per_spatial(a_.strides, spatial, 1, "strides");
  const std::vector<std::size_t> no_dilations(spatial, 1);
  const auto dilations =
      op_ == FloatOp::kMaxPool ? per_spatial(a_.dilations, spatial, 1, "dilations") : no_dilations;
  const auto pads = per_spatial(a_.pads, 2 * spatial, 0, "pads");
  Shape out{x[0], x[1]};
  for (std::size_t i = 0; i < spatial; ++i) {
    if (a_.kernel[i] == 0 || strides[i] == 0 || dilations[i] == 0) {
      fail("kernel, strides and dilations must be at least 1, found kernel " +
           list_to_string(a_.kernel) + ", strides " + list_to_string(strides) + ", dilations " +
           list_to_string(dilations));
    }
    const std::size_t length = x[2 + i];
    const std::size_t extent = dilations[i] * (a_.kernel[i] - 1) + 1;
    const std::size_t padded = length + pads[i] + pads[spatial + i];
    if (padded < extent) {
      fail("spatial axis " + std::to_string(i) + ": the window spans " + std::to_string(extent) +
           " elements but the padded input has only " + std::to_string(padded));
    }
    const std::size_t count = (padded - extent) / strides[i] + 1;
    // Every window must see at least one element of the input: a window of padding only has
    // no maximum and no average.
    for (std::size_t o = 0; o < count; ++o) {
      bool sees_input = false;
      for (std::size_t j = 0; j < a_.kernel[i] && !sees_input; ++j) {
        const std::size_t position = o * strides[i] + j * dilations[i];
        sees_input = position >= pads[i] && position - pads[i] < length;
      }
      if (!sees_input) {
        fail("window " + std::to_string(o) + " of spatial axis " + std::to_string(i) +
             " covers only padding (input length " + std::to_string(length) + ", kernel " +
             std::to_string(a_.kernel[i]) + ", pads " + std::to_string(pads[i]) + " and " +
             std::to_string(pads[spatial + i]) + "): lower the pads");
      }
    }
    out.push_back(count);
  }
  return out;
}

Shape Inference::reduce() const {
  expect_inputs(1, 1);
  const Shape& x = in_[0];
  const auto axes = axes_set(x.size());
  Shape out;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) {
      out.push_back(x[i]);
    } else if (a_.keepdims) {
      out.push_back(1);
    }
  }
  return out;
}

Shape Inference::reshape() const {
  expect_inputs(1, 1);
  if (element_count(a_.shape) != element_count(in_[0])) {
    fail("cannot reshape " + to_string(in_[0]) + " (" + std::to_string(element_count(in_[0])) +
         " elements) to " + to_string(a_.shape) + " (" + std::to_string(element_count(a_.shape)) +
         " elements)");
  }
  return a_.shape;
}

Shape Inference::flatten() const {
  expect_inputs(1, 1);
  const Shape& x = in_[0];
  if (a_.axes.size() > 1) fail("expected one axis, found axes " + list_to_string(a_.axes));
  std::size_t split = 1;
  if (!a_.axes.empty()) {
    const auto r = static_cast<std::int64_t>(x.size());
    const std::int64_t value = a_.axes[0];
    if (value < -r || value > r) {
      fail("axis " + std::to_string(value) + " is out of range for rank " + std::to_string(r) +
           " (expected -" + std::to_string(r) + " <= axis <= " + std::to_string(r) + ")");
    }
    split = static_cast<std::size_t>(value < 0 ? value + r : value);
  } else if (x.empty()) {
    split = 0;
  }
  const Shape outer(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(split));
  const Shape inner(x.begin() + static_cast<std::ptrdiff_t>(split), x.end());
  return Shape{element_count(outer), element_count(inner)};
}

Shape Inference::transpose() const {
  expect_inputs(1, 1);
  const Shape& x = in_[0];
  if (a_.axes.empty()) return Shape(x.rbegin(), x.rend());
  if (a_.axes.size() != x.size()) {
    fail("permutation " + list_to_string(a_.axes) + " must have " + std::to_string(x.size()) +
         " axes (the rank of " + to_string(x) + ")");
  }
  Shape out;
  std::vector<bool> seen(x.size(), false);
  for (std::int64_t value : a_.axes) {
    const std::size_t from = axis(value, x.size(), "axis");
    if (seen[from]) fail("permutation " + list_to_string(a_.axes) + " repeats an axis");
    seen[from] = true;
    out.push_back(x[from]);
  }
  return out;
}

Shape Inference::concat() const {
  expect_inputs(1, std::numeric_limits<std::size_t>::max());
  if (a_.axes.size() != 1) fail("expected one axis, found axes " + list_to_string(a_.axes));
  const Shape& first = in_[0];
  const std::size_t along = axis(a_.axes[0], first.size(), "axis");
  Shape out = first;
  for (std::size_t s = 1; s < in_.size(); ++s) {
    const Shape& other = in_[s];
    bool ok = other.size() == first.size();
    for (std::size_t i = 0; ok && i < first.size(); ++i) ok = i == along || other[i] == first[i];
    if (!ok) {
      fail("input " + std::to_string(s) + " is " + to_string(other) + ", it must match input 0 " +
           to_string(first) + " on every axis but " + std::to_string(along));
    }
    out[along] += other[along];
  }
  return out;
}

Shape Inference::slice() const {
  expect_inputs(1, 1);
  const Shape& x = in_[0];
  const std::size_t n = a_.starts.size();
  if (a_.ends.size() != n || (!a_.axes.empty() && a_.axes.size() != n) ||
      (!a_.steps.empty() && a_.steps.size() != n)) {
    fail("starts " + list_to_string(a_.starts) + ", ends " + list_to_string(a_.ends) + ", axes " +
         list_to_string(a_.axes) + " and steps " + list_to_string(a_.steps) +
         " must have the same length (axes and steps may be empty)");
  }
  Shape out = x;
  std::vector<bool> seen(x.size(), false);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t along = a_.axes.empty() ? axis(static_cast<std::int64_t>(i), x.size(), "axis")
                                              : axis(a_.axes[i], x.size(), "axis");
    if (seen[along]) fail("axis " + std::to_string(along) + " is sliced twice");
    seen[along] = true;
    const std::int64_t step = a_.steps.empty() ? 1 : a_.steps[i];
    if (step == 0) fail("steps must not be 0, found " + list_to_string(a_.steps));
    const auto dim = static_cast<std::int64_t>(x[along]);
    std::int64_t start = a_.starts[i];
    std::int64_t end = a_.ends[i];
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    // |step| computed without overflow, also for INT64_MIN.
    const std::uint64_t stride =
        step > 0 ? static_cast<std::uint64_t>(step) : static_cast<std::uint64_t>(-(step + 1)) + 1;
    std::uint64_t distance = 0;
    if (step > 0) {
      start = std::clamp<std::int64_t>(start, 0, dim);
      end = std::clamp<std::int64_t>(end, 0, dim);
      if (end > start) distance = static_cast<std::uint64_t>(end - start);
    } else if (dim > 0) {
      start = std::clamp<std::int64_t>(start, 0, dim - 1);
      end = std::clamp<std::int64_t>(end, -1, dim - 1);
      if (start > end) distance = static_cast<std::uint64_t>(start - end);
    }
    out[along] = distance == 0 ? 0 : static_cast<std::size_t>((distance - 1) / stride + 1);
  }
  return out;
}

Shape Inference::pad() const {
  expect_inputs(1, 1);
  const Shape& x = in_[0];
  if (a_.pads.size() != 2 * x.size()) {
    fail("pads " + list_to_string(a_.pads) + " must have " + std::to_string(2 * x.size()) +
         " values (begins then ends of every axis of " + to_string(x) + ")");
  }
  Shape out = x;
  for (std::size_t i = 0; i < x.size(); ++i) out[i] += a_.pads[i] + a_.pads[x.size() + i];
  return out;
}

Shape Inference::squeeze() const {
  expect_inputs(1, 1);
  const Shape& x = in_[0];
  std::vector<bool> removed(x.size(), false);
  if (a_.axes.empty()) {
    for (std::size_t i = 0; i < x.size(); ++i) removed[i] = x[i] == 1;
  }
  for (std::int64_t value : a_.axes) {
    const std::size_t along = axis(value, x.size(), "axis");
    if (removed[along]) fail("axis " + std::to_string(along) + " appears twice");
    if (x[along] != 1) {
      fail("axis " + std::to_string(along) + " of " + to_string(x) + " has size " +
           std::to_string(x[along]) + ", only axes of size 1 can be squeezed");
    }
    removed[along] = true;
  }
  Shape out;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!removed[i]) out.push_back(x[i]);
  }
  return out;
}

Shape Inference::unsqueeze() const {
  expect_inputs(1, 1);
  const Shape& x = in_[0];
  if (a_.axes.empty()) fail("axes must name at least one axis to insert");
  const std::size_t rank = x.size() + a_.axes.size();
  std::vector<bool> inserted(rank, false);
  for (std::int64_t value : a_.axes) {
    const std::size_t along = axis(value, rank, "axis");
    if (inserted[along]) fail("axis " + std::to_string(along) + " appears twice");
    inserted[along] = true;
  }
  Shape out;
  std::size_t next = 0;
  for (std::size_t i = 0; i < rank; ++i) out.push_back(inserted[i] ? 1 : x[next++]);
  return out;
}

Shape Inference::run() {
  switch (op_) {
    case FloatOp::kInput:
      expect_inputs(0, 0);
      return a_.shape;
    case FloatOp::kConstant:
      expect_inputs(0, 0);
      if (a_.value.data.size() != element_count(a_.value.shape)) {
        fail("value has " + std::to_string(a_.value.data.size()) + " elements, its shape " +
             to_string(a_.value.shape) + " needs " + std::to_string(element_count(a_.value.shape)));
      }
      return a_.value.shape;
    case FloatOp::kGemm:
      return gemm();
    case FloatOp::kMatMul:
      return matmul();
    case FloatOp::kConv:
      return conv();
    case FloatOp::kAvgPool:
    case FloatOp::kMaxPool:
      return pool();
    case FloatOp::kSum:
    case FloatOp::kMean:
      return reduce();
    case FloatOp::kReshape:
      return reshape();
    case FloatOp::kFlatten:
      return flatten();
    case FloatOp::kTranspose:
      return transpose();
    case FloatOp::kConcat:
      return concat();
    case FloatOp::kSlice:
      return slice();
    case FloatOp::kPad:
      return pad();
    case FloatOp::kSqueeze:
      return squeeze();
    case FloatOp::kUnsqueeze:
      return unsqueeze();
    case FloatOp::kWhere:
      expect_inputs(3, 3);
      return broadcast(broadcast(in_[0], in_[1], "condition and a"), in_[2], "condition, a and b");
    default:
      break;
  }
  if (is_unary_elementwise(op_)) {
    expect_inputs(1, 1);
    return in_[0];
  }
  if (is_binary_elementwise(op_)) {
    expect_inputs(2, 2);
    return broadcast(in_[0], in_[1], "operand shapes");
  }
  fail("unknown op");
}

}  // namespace

Shape detail::infer_shape(FloatOp op, const std::vector<Shape>& in,
                          const FloatAttributes& attributes, const std::string& name,
                          std::size_t index) {
  return Inference(op, in, attributes, name, index).run();
}

}  // namespace fheml::ir
