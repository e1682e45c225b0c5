// Quantizer: representations of float values, materialize, broadcast, common scale, multiply,
// max (and max pool), and the building of univariate expressions.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fheml/ir/window.h"
#include "fheml/quant/quantize_internal.h"

namespace fheml::quant::detail {
namespace {

double evaluate_expression(const Expression& f, std::size_t e, double x,
                           std::vector<double>& values) {
  values.clear();
  values.push_back(x);
  const auto get = [&](const Operand& o) { return o.ref >= 0 ? values[o.ref] : o.constant[e]; };
  for (const Step& s : f.steps) {
    double v = 0.0;
    switch (s.kind) {
      case Step::Kind::kAffine:
        v = s.scale[e] * get(s.operands[0]) + s.bias[e];
        break;
      case Step::Kind::kUnary:
        v = ir::apply_unary(*s.node, get(s.operands[0]));
        break;
      case Step::Kind::kBinary:
        v = ir::apply_binary(s.op, get(s.operands[0]), get(s.operands[1]));
        break;
      case Step::Kind::kWhere:
        v = get(s.operands[0]) != 0.0 ? get(s.operands[1]) : get(s.operands[2]);
        break;
    }
    values.push_back(v);
  }
  return values.back();
}

}  // namespace

// ---- representations ----

Repr Quantizer::affine_repr(Affine a, Shape shape, std::string origin) {
  Repr r;
  r.kind = Repr::Kind::kAffine;
  r.shape = std::move(shape);
  r.affine = std::move(a);
  r.origin = std::move(origin);
  return r;
}

Expression Quantizer::as_expression(const Repr& r) const {
  if (r.kind == Repr::Kind::kFunction) return r.function;
  Expression f;
  f.source = r.affine.node;
  Step s;
  s.kind = Step::Kind::kAffine;
  s.operands = {Operand{0, {}}};
  s.scale = r.affine.scale;
  s.bias = r.affine.bias;
  f.steps.push_back(std::move(s));
  return f;
}

ValueId Quantizer::source_of(const Repr& r) const {
  return r.kind == Repr::Kind::kFunction ? r.function.source : r.affine.node;
}

std::pair<double, double> Quantizer::observed_range(const Expression& f, std::size_t count) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  std::vector<double> scratch;
  for (const auto& t : calibration_[f.source.index]) {
    for (std::size_t e = 0; e < count; ++e) {
      const double v = evaluate_expression(f, e, static_cast<double>(t.data[e]), scratch);
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (!(lo <= hi)) lo = hi = 0.0;
  return {lo, hi};
}

std::optional<double> Quantizer::observed_grid(const Expression& f, std::size_t count,
                                               std::int64_t top) {
  // Few distinct values, all lo + k g for the smallest gap g, k <= top: the function's outputs
  // sit on a grid (an activation rounded to levels, as fheml's QAT networks end each layer
  // with). Three values at least: two are always "on a grid".
  constexpr std::size_t kMaxDistinct = 1024;
  std::set<double> seen;
  std::vector<double> scratch;
  for (const auto& t : calibration_[f.source.index]) {
    for (std::size_t e = 0; e < count; ++e) {
      const double v = evaluate_expression(f, e, static_cast<double>(t.data[e]), scratch);
      if (!std::isfinite(v)) continue;
      seen.insert(v);
      if (seen.size() > kMaxDistinct) return std::nullopt;
    }
  }
  if (seen.size() < 3) return std::nullopt;
  double gap = std::numeric_limits<double>::infinity();
  for (auto it = std::next(seen.begin()); it != seen.end(); ++it)
    gap = std::min(gap, *it - *std::prev(it));
  const double lo = *seen.begin();
  if ((*seen.rbegin() - lo) / gap > static_cast<double>(top) + 1e-6) return std::nullopt;
  for (const double v : seen) {
    const double k = (v - lo) / gap;
    if (std::abs(k - std::nearbyint(k)) > 1e-6) return std::nullopt;
  }
  return gap;
}

Quantizer::OutputQuantizer Quantizer::natural_quantizer(const Expression& f, std::size_t count,
                                                        std::uint32_t bits) {
  const auto [lo, hi] = observed_range(f, count);
  const double top = std::ldexp(1.0, static_cast<int>(bits)) - 1;
  // Values already on a grid of at most 2^bits levels keep it: spreading them over the observed
  // range instead would move every level (a QAT layer whose largest activation level is not
  // reached on the calibration rows), and the next layer's integer weights with them.
  if (const auto grid = observed_grid(f, count, static_cast<std::int64_t>(top)))
    return {*grid, lo, static_cast<std::int64_t>(top)};
  return {hi > lo ? (hi - lo) / top : 1.0, lo, static_cast<std::int64_t>(top)};
}

Quantizer::OutputQuantizer Quantizer::quantizer_with_scale(const Expression& f, std::size_t count,
                                                           double scale,
                                                           std::optional<double> bias) {
  auto [lo, hi] = observed_range(f, count);
  if (bias) lo = std::min(*bias, lo);
  return {scale, lo, static_cast<std::int64_t>(std::ceil((hi - lo) / scale))};
}

Affine Quantizer::materialize(const Repr& r, std::uint32_t bits,
                              std::optional<OutputQuantizer> fixed) {
  if (r.kind == Repr::Kind::kClear) {
    throw std::logic_error("quantizer: a constant reached an encrypted-only path");
  }
  if (r.kind == Repr::Kind::kAffine) return r.affine;
  const Expression& f = r.function;
  const std::size_t count = ir::element_count(r.shape);
  const OutputQuantizer q = fixed ? *fixed : natural_quantizer(f, count, bits);
  // Per element scale and bias: the tensor's, or each channel's (axis 1) when asked.
  std::vector<double> scale(count, q.scale), bias(count, q.bias);
  bool per_channel = false;
  if (!fixed && options_.per_channel_activations && r.shape.size() >= 2 && r.shape[1] > 1) {
    per_channel = true;
    const std::size_t channels = r.shape[1];
    const std::size_t inner = count / (r.shape[0] * channels);
    std::vector<double> lo(channels, std::numeric_limits<double>::infinity());
    std::vector<double> hi(channels, -std::numeric_limits<double>::infinity());
    std::vector<double> scratch;
    for (const auto& t : calibration_[f.source.index]) {
      for (std::size_t e = 0; e < count; ++e) {
        const double v = evaluate_expression(f, e, static_cast<double>(t.data[e]), scratch);
        if (!std::isfinite(v)) continue;
        const std::size_t c = (e / inner) % channels;
        lo[c] = std::min(lo[c], v);
        hi[c] = std::max(hi[c], v);
      }
    }
    const double top = static_cast<double>(q.top);
    for (std::size_t e = 0; e < count; ++e) {
      const std::size_t c = (e / inner) % channels;
      if (!(lo[c] <= hi[c])) lo[c] = hi[c] = 0.0;
      scale[e] = hi[c] > lo[c] ? (hi[c] - lo[c]) / top : 1.0;
      bias[e] = lo[c];
    }
  }
  // One table per element unless nothing differs between elements.
  bool uniform = !per_channel;
  for (const Step& s : f.steps) {
    const auto same = [](const std::vector<double>& v) {
      return std::all_of(v.begin(), v.end(), [&](double x) { return x == v.front(); });
    };
    if (s.kind == Step::Kind::kAffine) uniform = uniform && same(s.scale) && same(s.bias);
    for (const Operand& o : s.operands) {
      if (o.ref < 0) uniform = uniform && same(o.constant);
    }
  }
  const auto entry = [&, scratch = std::vector<double>()](std::size_t e, double x) mutable {
    const double v = evaluate_expression(f, e, x, scratch);
    if (std::isnan(v)) return std::int64_t{0};
    return static_cast<std::int64_t>(
        std::clamp(std::nearbyint((v - bias[e]) / scale[e]), 0.0, static_cast<double>(q.top)));
  };
  const ValueId node = build_lookup(f.source, r.origin, entry, !uniform);
  return Affine{node, std::move(scale), std::move(bias)};
}

Affine Quantizer::apply_linear(const FloatNode& node, const std::vector<const Repr*>& operands,
                               const std::vector<Affine>& affines) {
  std::vector<const ir::FloatTensor*> constants;
  std::vector<Shape> shapes;
  for (const Repr* r : operands) {
    constants.push_back(r->kind == Repr::Kind::kClear ? &r->clear : nullptr);
    shapes.push_back(r->shape);
  }
  const ir::LinearMap map = ir::linearize(node, constants, shapes);
  const std::size_t count = ir::element_count(node.shape);
  std::vector<std::vector<Term>> rows(count);
  std::vector<double> bias = map.bias;
  for (std::size_t r = 0; r < count; ++r) {
    for (std::size_t k = map.row_begin[r]; k < map.row_begin[r + 1]; ++k) {
      const ir::LinearEntry& e = map.entries[k];
      const Affine& a = affines[e.slot];
      rows[r].push_back({a.node.index, e.element, e.weight * a.scale[e.element]});
      bias[r] += e.weight * a.bias[e.element];
    }
  }
  return build_linear(std::move(rows), std::move(bias), node.shape, describe(node));
}

Affine Quantizer::broadcast(const Affine& a, const Shape& from, const Shape& to) {
  if (from == to) return a;
  const auto map = ir::broadcast_index(from, to);
  std::vector<std::vector<Term>> rows(map.size());
  std::vector<double> bias(map.size());
  for (std::size_t i = 0; i < map.size(); ++i) {
    const auto e = static_cast<std::uint32_t>(map[i]);
    rows[i] = {{a.node.index, e, a.scale[e]}};
    bias[i] = a.bias[map[i]];
  }
  return build_linear(std::move(rows), std::move(bias), to, "broadcast");
}

Affine Quantizer::combine(const Affine& a, const Affine& b, double sign, const Shape& shape,
                          const std::string& origin) {
  const std::size_t count = ir::element_count(shape);
  std::vector<std::vector<Term>> rows(count);
  std::vector<double> bias(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto e = static_cast<std::uint32_t>(i);
    rows[i] = {{a.node.index, e, a.scale[i]}, {b.node.index, e, sign * b.scale[i]}};
    bias[i] = a.bias[i] + sign * b.bias[i];
  }
  return build_linear(std::move(rows), std::move(bias), shape, origin);
}

std::optional<double> Quantizer::common_scale(const Repr& a, const Repr& b) {
  const auto natural = [&](const Repr& r) {
    return natural_quantizer(as_expression(r), ir::element_count(r.shape),
                             options_.n_bits.op_inputs)
        .scale;
  };
  if (a.kind == Repr::Kind::kAffine) return a.affine.scale.front();
  if (b.kind == Repr::Kind::kAffine) return b.affine.scale.front();
  return std::max(natural(a), natural(b));
}

Affine Quantizer::multiply(const Affine& a, const Affine& b, const Shape& shape,
                           const std::string& origin) {
  const std::size_t count = ir::element_count(shape);
  for (std::size_t i = 0; i < count; ++i) {
    if (a.scale[i] == 0.0 || b.scale[i] == 0.0) {
      fail(origin +
           ": product with a constant (padded) element of an encrypted tensor is not "
           "supported");
    }
  }
  const auto magnitude = [&](ValueId n) {
    const IntRange r = result_.graph.node(n).range;
    return std::max(std::abs(static_cast<double>(r.lo)), std::abs(static_cast<double>(r.hi)));
  };
  const double mag_a = magnitude(a.node), mag_b = magnitude(b.node);
  double k = 1.0;
  for (; k < std::ldexp(1.0, 20); k *= 2) {
    double worst = 0.0;
    for (std::size_t i = 0; i < count; ++i) {
      const double alpha = k * a.bias[i] / a.scale[i], beta = k * b.bias[i] / b.scale[i];
      worst = std::max(worst, std::abs(beta - std::nearbyint(beta)) * mag_a +
                                  std::abs(alpha - std::nearbyint(alpha)) * mag_b);
    }
    if (worst <= 0.25 * k) break;
  }
  std::vector<std::vector<Term>> sum(count), diff(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto e = static_cast<std::uint32_t>(i);
    sum[i] = {{a.node.index, e, 1.0}, {b.node.index, e, 1.0}};
    diff[i] = {{a.node.index, e, 1.0}, {b.node.index, e, -1.0}};
  }
  const ValueId s = integer_linear(sum, std::vector<double>(count, 0.0), shape, origin + " a+b");
  const ValueId d = integer_linear(diff, std::vector<double>(count, 0.0), shape, origin + " a-b");
  const auto quarter_square = [](std::size_t, double x) {
    const auto i = static_cast<std::int64_t>(std::nearbyint(x));
    return (i * i) / 4;  // floor: i*i >= 0
  };
  const ValueId ls = build_lookup(s, origin + " (a+b)^2/4", quarter_square, false);
  const ValueId ld = build_lookup(d, origin + " (a-b)^2/4", quarter_square, false);
  std::vector<std::vector<Term>> prod(count);
  std::vector<double> scale(count), bias(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto e = static_cast<std::uint32_t>(i);
    prod[i] = {{ls.index, e, k}, {ld.index, e, -k}};
    const double beta = std::nearbyint(k * b.bias[i] / b.scale[i]);
    const double alpha = std::nearbyint(k * a.bias[i] / a.scale[i]);
    if (beta != 0.0) prod[i].push_back({a.node.index, e, beta});
    if (alpha != 0.0) prod[i].push_back({b.node.index, e, alpha});
    scale[i] = a.scale[i] * b.scale[i] / k;
    bias[i] = a.bias[i] * b.bias[i];
  }
  const ValueId p = integer_linear(prod, std::vector<double>(count, 0.0), shape, origin);
  return Affine{p, std::move(scale), std::move(bias)};
}

Affine Quantizer::maximum(const Affine& a, const Affine& b, const Shape& shape, bool is_max,
                          const std::string& origin) {
  const std::size_t count = ir::element_count(shape);
  const IntRange ra = result_.graph.node(a.node).range, rb = result_.graph.node(b.node).range;
  const std::size_t before = result_.graph.nodes.size();
  const Affine d = combine(a, b, -1.0, shape, origin + " a-b");
  // Operands on one grid (the same scale and offset per element: a max pool's window members,
  // and the maxima of a max pool's levels): a - b is their integer difference, and its range
  // is [lo_a - hi_b, hi_a - lo_b] over the operands' own ranges. Interval arithmetic over the
  // terms a and b are made of (the relus of a previous level) would double it at each level.
  const auto same = [](const std::vector<double>& x, const std::vector<double>& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (std::abs(x[i] - y[i]) > 1e-12 * std::max(std::abs(x[i]), std::abs(y[i]))) return false;
    }
    return true;
  };
  const bool one_grid =
      same(a.scale, b.scale) && same(a.bias, b.bias) && same(d.scale, a.scale) &&
      d.node.index >= before &&
      std::all_of(d.bias.begin(), d.bias.end(), [](double v) { return v == 0.0; });
  if (one_grid) tighten(d.node, {ra.lo - rb.hi, ra.hi - rb.lo});
  // relu(a - b) on the grid of a - b, element by element (per-channel operands have a scale per
  // channel): with a zero offset its integer is max(x, 0), exact.
  bool distinct = false;
  for (std::size_t i = 0; i < count; ++i)
    distinct = distinct || d.bias[i] != 0.0 || d.scale[i] == 0.0;
  const auto entry = [&](std::size_t e, double x) {
    if (d.scale[e] == 0.0) return std::int64_t{0};
    return static_cast<std::int64_t>(
        std::nearbyint(std::max(d.scale[e] * x + d.bias[e], 0.0) / d.scale[e]));
  };
  const ValueId relu = build_lookup(d.node, "relu(" + origin + " a-b)", entry, distinct);
  std::vector<double> relu_bias(count, 0.0);
  for (std::size_t i = 0; i < count; ++i) {
    if (d.scale[i] == 0.0) relu_bias[i] = std::max(d.bias[i], 0.0);  // a constant element
  }
  const Affine r{relu, d.scale, std::move(relu_bias)};
  const std::size_t result_from = result_.graph.nodes.size();
  const Affine out =
      is_max ? combine(b, r, 1.0, shape, origin) : combine(a, r, -1.0, shape, origin);
  // The result is max(a, b) (min(a, b)) exactly when the lookup reads all of a - b's range
  // without rounding (a table as wide as that range: build_lookup took it rather than the
  // calibrated window): its range is then that of the maximum (minimum) of the operands'.
  const IntRange dr = result_.graph.node(d.node).range;
  const ir::IntNode& rn = result_.graph.node(relu);
  const bool exact = one_grid && rn.op == ir::IntOp::kLookup && rn.lookup.shift == 0 &&
                     rn.lookup.bits >= dr.bits();
  if (exact && out.node.index >= result_from && same(out.scale, a.scale) &&
      same(out.bias, a.bias)) {
    tighten(out.node, is_max ? IntRange{std::max(ra.lo, rb.lo), std::max(ra.hi, rb.hi)}
                             : IntRange{std::min(ra.lo, rb.lo), std::min(ra.hi, rb.hi)});
  }
  return out;
}

void Quantizer::tighten(ValueId node, IntRange range) {
  IntRange& r = result_.graph.nodes[node.index].range;
  r = {std::max(r.lo, range.lo), std::min(r.hi, range.hi)};
  if (r.lo > r.hi) throw std::logic_error("quantizer: a tightened range is empty");
}

// ---- expressions, moves and max pool ----

int Quantizer::merge_into(Expression& f, const Expression& g) {
  const int base = static_cast<int>(f.steps.size());
  for (Step s : g.steps) {
    for (Operand& o : s.operands) {
      if (o.ref > 0) o.ref += base;
    }
    f.steps.push_back(std::move(s));
  }
  return base + static_cast<int>(g.steps.size());
}

Operand Quantizer::operand_for(const Repr& r, Expression& f, const Shape& shape) {
  if (r.kind == Repr::Kind::kClear) return Operand{-1, broadcast_values(r.clear, shape)};
  return Operand{merge_into(f, as_expression(r)), {}};
}

Repr Quantizer::move_function(const FloatNode& node, const Repr& x, const std::string& origin) {
  // Gather the source integers, then permute every per-element constant the same way.
  const std::vector<const ir::FloatTensor*> constants{nullptr};
  const std::vector<Shape> shapes{x.shape};
  const ir::LinearMap map = ir::linearize(node, constants, shapes);
  const std::size_t count = ir::element_count(node.shape);
  std::vector<std::uint32_t> from(count);
  std::vector<std::vector<Term>> rows(count);
  for (std::size_t r = 0; r < count; ++r) {
    if (map.row_begin[r + 1] - map.row_begin[r] != 1) {
      throw std::logic_error("quantizer: movement row is not a single element");
    }
    from[r] = map.entries[map.row_begin[r]].element;
    rows[r] = {{x.function.source.index, from[r], 1.0}};
  }
  const ValueId gathered =
      integer_linear(rows, std::vector<double>(count, 0.0), node.shape, origin);
  Repr r = x;
  r.shape = node.shape;
  r.function.source = gathered;
  const auto permute = [&](std::vector<double>& v) {
    if (v.empty()) return;
    std::vector<double> p(count);
    for (std::size_t i = 0; i < count; ++i) p[i] = v[from[i]];
    v = std::move(p);
  };
  for (Step& s : r.function.steps) {
    permute(s.scale);
    permute(s.bias);
    for (Operand& o : s.operands) permute(o.constant);
  }
  return r;
}

Repr Quantizer::lower_max_pool(const FloatNode& node, const Repr& x, const std::string& origin) {
  const Affine in = materialize(x, options_.n_bits.op_inputs);
  // Window members per output element, from the pooling geometry (dilations included).
  const Shape& os = node.shape;
  const ir::Window win = ir::window_of(x.shape, os, node.attributes.kernel, node.attributes, true);
  const std::size_t count = ir::element_count(os);
  const std::size_t planes = os[0] * os[1];  // (n, c) pairs, in order
  std::vector<std::vector<std::uint32_t>> windows(count);
  std::size_t width = 0;
  for (std::size_t plane = 0; plane < planes; ++plane) {
    for (std::size_t oh = 0; oh < win.h.out; ++oh) {
      for (std::size_t ow = 0; ow < win.w.out; ++ow) {
        const std::size_t o = (plane * win.h.out + oh) * win.w.out + ow;
        for (std::size_t kh = 0; kh < win.h.kernel; ++kh) {
          for (std::size_t kw = 0; kw < win.w.kernel; ++kw) {
            std::size_t ih = 0, iw = 0;
            if (!win.h.position(oh, kh, ih) || !win.w.position(ow, kw, iw)) continue;
            windows[o].push_back(
                static_cast<std::uint32_t>((plane * win.h.in + ih) * win.w.in + iw));
          }
        }
        if (windows[o].empty()) fail(origin + ": a pooling window holds only padding");
        width = std::max(width, windows[o].size());
      }
    }
  }
  // Candidates: position k of every window (repeating a member where a window is short).
  std::vector<Affine> candidates;
  for (std::size_t k = 0; k < width; ++k) {
    std::vector<std::vector<Term>> rows(count);
    std::vector<double> bias(count);
    for (std::size_t o = 0; o < count; ++o) {
      const std::uint32_t e = windows[o][std::min(k, windows[o].size() - 1)];
      rows[o] = {{in.node.index, e, in.scale[e]}};
      bias[o] = in.bias[e];
    }
    candidates.push_back(build_linear(std::move(rows), std::move(bias), os, origin + " window"));
  }
  while (candidates.size() > 1) {
    std::vector<Affine> next;
    for (std::size_t i = 0; i + 1 < candidates.size(); i += 2) {
      next.push_back(maximum(candidates[i], candidates[i + 1], os, true, origin));
    }
    if (candidates.size() % 2) next.push_back(candidates.back());
    candidates = std::move(next);
  }
  const Affine& pooled = candidates.front();
  if (options_.refresh_max_pool && width > 1 &&
      result_.graph.node(pooled.node).range.bits() <= options_.max_lookup_bits) {
    // An exact identity lookup: the same integers on the same grid, from a fresh bootstrap.
    const ValueId fresh = build_lookup(
        pooled.node, origin + " refresh",
        [](std::size_t, double x) { return static_cast<std::int64_t>(std::nearbyint(x)); }, false);
    return affine_repr(Affine{fresh, pooled.scale, pooled.bias}, os, origin);
  }
  return affine_repr(pooled, os, origin);
}

}  // namespace fheml::quant::detail
