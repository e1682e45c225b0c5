#include "fheml/quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include "fheml/ir/window.h"

namespace fheml::quant {
namespace {

using ir::FloatNode;
using ir::FloatOp;
using ir::IntNode;
using ir::IntOp;
using ir::IntRange;
using ir::Shape;
using ir::ValueId;

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

std::string describe(const FloatNode& node) {
  std::string s(ir::op_name(node.op));
  if (!node.name.empty()) s += " " + node.name;
  return s;
}

// float ~ scale[e] * q[e] + bias[e], q = the values of integer node `node`.
struct Affine {
  ValueId node;
  std::vector<double> scale;
  std::vector<double> bias;
};

// Operand of an expression step: a previous value (0 = the source integer, k = step k-1) or a
// per-element constant.
struct Operand {
  int ref = -1;
  std::vector<double> constant;
};

struct Step {
  enum class Kind { kAffine, kUnary, kBinary, kWhere } kind = Kind::kAffine;
  const FloatNode* node = nullptr;  // unary: attributes
  FloatOp op = FloatOp::kAdd;       // binary
  std::vector<Operand> operands;
  std::vector<double> scale, bias;  // kAffine, applied to operands[0]
};

struct Expression {
  ValueId source;
  std::vector<Step> steps;
};

struct Repr {
  enum class Kind { kClear, kAffine, kFunction } kind = Kind::kClear;
  Shape shape;
  ir::FloatTensor clear;
  Affine affine;
  Expression function;
  std::string origin;
};

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

std::vector<double> broadcast_values(const ir::FloatTensor& t, const Shape& out) {
  const auto map = ir::broadcast_index(t.shape, out);
  std::vector<double> v(map.size());
  for (std::size_t i = 0; i < map.size(); ++i) v[i] = t.data[map[i]];
  return v;
}

class Quantizer {
 public:
  Quantizer(const ir::FloatGraph& graph, std::span<const Sample> calibration,
            const QuantizeOptions& options)
      : graph_(graph), options_(options) {
    check_options();
    if (calibration.empty()) fail("calibration needs at least one sample, found none");
    const std::size_t count = std::min(calibration.size(), options.max_calibration_samples);
    samples_.assign(calibration.begin(), calibration.begin() + static_cast<std::ptrdiff_t>(count));
  }

  QuantizedGraph run() {
    const auto& nodes = graph_.nodes();
    if (graph_.outputs().empty()) fail("the graph has no output: call mark_output");
    reprs_.resize(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) reprs_[i] = lower(nodes[i], i);
    for (const ValueId out : graph_.outputs()) emit_output(out);
    prune();
    return std::move(result_);
  }

 private:
  void check_options() const {
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

  // ---- integer nodes and their calibration values ----

  ValueId add_node(IntNode node) {
    const ValueId id = result_.graph.add(std::move(node));
    const IntNode& n = result_.graph.node(id);
    if (n.op != IntOp::kInput) {
      std::vector<ir::IntTensor> values(samples_.size());
      std::vector<const ir::IntTensor*> operands;
      for (std::size_t s = 0; s < samples_.size(); ++s) {
        operands.clear();
        for (const ValueId in : n.inputs) operands.push_back(&calibration_[in.index][s]);
        values[s] = ir::evaluate_node(n, operands);
      }
      calibration_.push_back(std::move(values));
    }
    return id;
  }

  IntRange observed(ValueId id) const {
    IntRange r{std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()};
    for (const auto& t : calibration_[id.index]) {
      for (const auto v : t.data) {
        r.lo = std::min(r.lo, v);
        r.hi = std::max(r.hi, v);
      }
    }
    return r;
  }

  // Linear node from float coefficients over elements of integer nodes; rows quantized to
  // integers (exactly when the coefficients of a row are integer multiples of its smallest).
  // Returns the affine view of the new node.
  struct Term {
    std::uint32_t node, element;
    double weight;
  };
  // integer_rows: the weights are integers to keep as they are and `constants` is an integer
  // bias of the node (scale 1, float bias 0).
  Affine build_linear(std::vector<std::vector<Term>> rows, std::vector<double> constants,
                      const Shape& shape, const std::string& origin, bool integer_rows = false) {
    const std::size_t count = rows.size();
    // Compose: a term on a linear node expands into that node's row.
    for (std::size_t r = 0; r < count; ++r) {
      std::vector<Term> expanded;
      for (const Term& t : rows[r]) {
        const IntNode& n = result_.graph.nodes[t.node];
        if (n.op != IntOp::kLinear) {
          expanded.push_back(t);
          continue;
        }
        constants[r] += t.weight * static_cast<double>(n.linear.bias[t.element]);
        for (std::size_t k = n.linear.row_begin[t.element]; k < n.linear.row_begin[t.element + 1];
             ++k) {
          const auto& e = n.linear.entries[k];
          expanded.push_back(
              {n.inputs[e.source].index, e.element, t.weight * static_cast<double>(e.coefficient)});
        }
      }
      std::sort(expanded.begin(), expanded.end(), [](const Term& a, const Term& b) {
        return std::pair{a.node, a.element} < std::pair{b.node, b.element};
      });
      std::vector<Term> merged;
      for (const Term& t : expanded) {
        if (!merged.empty() && merged.back().node == t.node && merged.back().element == t.element) {
          merged.back().weight += t.weight;
        } else {
          merged.push_back(t);
        }
      }
      std::erase_if(merged, [](const Term& t) { return t.weight == 0.0; });
      rows[r] = std::move(merged);
    }

    // Identity on one node: reuse it.
    const bool has_integer_bias = integer_rows && std::any_of(constants.begin(), constants.end(),
                                                              [](double c) { return c != 0.0; });
    if (count > 0 && !rows[0].empty() && !has_integer_bias) {
      const std::uint32_t node = rows[0][0].node;
      bool identity = ir::element_count(result_.graph.nodes[node].shape) == count;
      for (std::size_t r = 0; identity && r < count; ++r) {
        identity = rows[r].size() == 1 && rows[r][0].node == node && rows[r][0].element == r;
      }
      if (identity) {
        Affine a{ValueId{node}, std::vector<double>(count), std::move(constants)};
        for (std::size_t r = 0; r < count; ++r) a.scale[r] = rows[r][0].weight;
        return a;
      }
    }

    const double qmax = std::ldexp(1.0, static_cast<int>(options_.n_bits.op_weights) - 1) - 1;
    std::vector<double> scale(count, 1.0);
    std::vector<bool> exact(count, true);
    for (std::size_t r = 0; r < count; ++r) {
      double smallest = std::numeric_limits<double>::infinity(), largest = 0.0;
      for (const Term& t : rows[r]) {
        smallest = std::min(smallest, std::abs(t.weight));
        largest = std::max(largest, std::abs(t.weight));
      }
      if (rows[r].empty()) continue;
      if (integer_rows) continue;  // scale 1
      bool integral = largest / smallest <= qmax;
      for (const Term& t : rows[r]) {
        const double ratio = t.weight / smallest;
        integral = integral && std::abs(ratio - std::nearbyint(ratio)) <= 1e-9 * std::abs(ratio);
      }
      exact[r] = integral;
      scale[r] = integral ? smallest : largest / qmax;
    }
    if (!options_.per_channel_weights && !integer_rows) {
      // One scale for the op, unless every row is exact with the same one.
      const bool all_exact = std::all_of(exact.begin(), exact.end(), [](bool b) { return b; });
      double common = 0.0;
      bool same = true;
      for (std::size_t r = 0; r < count; ++r) {
        if (rows[r].empty()) continue;
        if (common == 0.0) common = scale[r];
        same = same && scale[r] == common;
      }
      if (!(all_exact && same)) {
        double largest = 0.0;
        for (const auto& row : rows) {
          for (const Term& t : row) largest = std::max(largest, std::abs(t.weight));
        }
        std::fill(scale.begin(), scale.end(), largest > 0 ? largest / qmax : 1.0);
      }
    }

    IntNode node;
    node.op = IntOp::kLinear;
    node.shape = shape;
    node.origin = origin;
    node.linear.row_begin.push_back(0);
    node.linear.bias.assign(count, 0);
    if (integer_rows) {
      for (std::size_t r = 0; r < count; ++r) {
        node.linear.bias[r] = static_cast<std::int64_t>(constants[r]);
        constants[r] = 0.0;
      }
    }
    std::map<std::uint32_t, std::uint32_t> source_index;
    double magnitude = 0.0;
    std::int64_t ilo = std::numeric_limits<std::int64_t>::max();
    std::int64_t ihi = std::numeric_limits<std::int64_t>::min();
    for (std::size_t r = 0; r < count; ++r) {
      magnitude = std::abs(static_cast<double>(node.linear.bias[r]));
      std::int64_t row_lo = node.linear.bias[r], row_hi = node.linear.bias[r];
      for (const Term& t : rows[r]) {
        const double w = std::nearbyint(t.weight / scale[r]);
        if (w == 0.0) continue;
        auto [it, inserted] =
            source_index.try_emplace(t.node, static_cast<std::uint32_t>(node.inputs.size()));
        if (inserted) node.inputs.push_back(ValueId{t.node});
        const auto c = static_cast<std::int64_t>(w);
        node.linear.entries.push_back({it->second, t.element, c});
        const IntRange src = result_.graph.nodes[t.node].range;
        magnitude += std::abs(w) * std::max(std::abs(static_cast<double>(src.lo)),
                                            std::abs(static_cast<double>(src.hi)));
        if (magnitude > std::ldexp(1.0, 61)) {
          fail(origin + ": an accumulator exceeds 2^61 in the worst case; lower n_bits");
        }
        row_lo += c > 0 ? c * src.lo : c * src.hi;
        row_hi += c > 0 ? c * src.hi : c * src.lo;
      }
      node.linear.row_begin.push_back(node.linear.entries.size());
      ilo = std::min(ilo, row_lo);
      ihi = std::max(ihi, row_hi);
    }
    node.range = {ilo, ihi};
    const ValueId id = add_node(std::move(node));
    return Affine{id, std::move(scale), std::move(constants)};
  }

  // ---- lookups ----

  // A lookup of integer function `table_value(element, x)` over node `source`, choosing the
  // index range (worst case when it is no wider than the calibrated one, else calibrated and
  // centred in the table so that near misses still read the function), rounding when the
  // range is wider than a lookup can take. `distinct_per_element` false: one table for all.
  ValueId build_lookup(ValueId source, const std::string& origin,
                       const std::function<std::int64_t(std::size_t, double)>& table_value,
                       bool distinct_per_element) {
    // Copies: rounding below adds nodes, which moves the graph's storage.
    const Shape shape = result_.graph.node(source).shape;
    const IntRange worst = result_.graph.node(source).range;
    IntRange seen = observed(source);
    const auto margin = static_cast<std::int64_t>(
        std::ceil(options_.calibration_margin * static_cast<double>(seen.hi - seen.lo)));
    seen = {std::max(worst.lo, seen.lo - margin), std::min(worst.hi, seen.hi + margin)};
    const IntRange range = worst.bits() <= seen.bits() ? worst : seen;
    const std::uint32_t bits = range.bits();
    const std::uint32_t limit = options_.max_lookup_bits;
    const std::size_t count = ir::element_count(shape);

    std::int64_t offset = 0;
    std::uint32_t shift = 0;
    std::uint32_t p = bits;
    bool approximate = false;
    ValueId input = source;
    if (bits <= limit) {
      const std::int64_t slack = (std::int64_t{1} << bits) - (range.hi - range.lo + 1);
      offset = -range.lo + slack / 2;
    } else if (options_.rounding_threshold_bits &&
               options_.rounding_method == RoundingMethod::kApproximate) {
      // Nearest index m = round((x - lo) / 2^shift); the top value must round below 2^p even
      // with half a box of noise: hi - lo < 2^(p+shift) - 2^shift.
      p = *options_.rounding_threshold_bits;
      shift = bits - p;
      const std::int64_t width = range.hi - range.lo;
      while (width >= (std::int64_t{1} << (p + shift)) - (std::int64_t{1} << shift)) ++shift;
      // Centred: near misses of the calibrated range still read the function.
      const std::int64_t slack =
          (std::int64_t{1} << (p + shift)) - (std::int64_t{1} << shift) - 1 - width;
      offset = -range.lo + slack / 2;
      approximate = true;
    } else if (options_.rounding_threshold_bits) {
      p = *options_.rounding_threshold_bits;
      shift = bits - p;
      offset = -range.lo + ((std::int64_t{1} << bits) - (range.hi - range.lo + 1)) / 2;
      input = round_low_bits(source, offset, shift, p, origin);
    } else {
      fail("lookup on %" + std::to_string(source.index) + " (" + origin + "): input needs " +
           std::to_string(bits) + " bits (range [" + std::to_string(range.lo) + ", " +
           std::to_string(range.hi) + "]); lookups take at most " + std::to_string(limit) +
           ": lower n_bits (op_inputs, op_weights) or set rounding_threshold_bits <= " +
           std::to_string(limit));
    }

    IntNode node;
    node.op = IntOp::kLookup;
    node.inputs = {input};
    node.shape = shape;
    node.origin = origin;
    node.lookup.offset = offset;
    node.lookup.shift = shift;
    node.lookup.bits = p;
    node.lookup.round_to_nearest = approximate;
    node.lookup.table_of_element.resize(count);
    const std::size_t entries = std::size_t{1} << p;
    std::map<std::vector<std::int64_t>, std::uint32_t> distinct;
    std::vector<std::int64_t> table(entries);
    std::int64_t lo = std::numeric_limits<std::int64_t>::max();
    std::int64_t hi = std::numeric_limits<std::int64_t>::min();
    for (std::size_t e = 0; e < count; ++e) {
      if (!distinct_per_element && e > 0) {
        node.lookup.table_of_element[e] = 0;
        continue;
      }
      for (std::size_t m = 0; m < entries; ++m) {
        // The integer input this entry stands for; with rounding, the centre of its interval
        // (exact: [m 2^shift, (m+1) 2^shift); approximate: m 2^shift +- half of it).
        double x = std::ldexp(static_cast<double>(m), static_cast<int>(shift)) -
                   static_cast<double>(offset);
        if (shift > 0 && !approximate) x += std::ldexp(1.0, static_cast<int>(shift) - 1) - 0.5;
        table[m] = table_value(e, x);
        lo = std::min(lo, table[m]);
        hi = std::max(hi, table[m]);
      }
      auto [it, inserted] =
          distinct.try_emplace(table, static_cast<std::uint32_t>(node.lookup.tables.size()));
      if (inserted) node.lookup.tables.push_back(table);
      node.lookup.table_of_element[e] = it->second;
    }
    node.range = {lo, hi};
    return add_node(std::move(node));
  }

  // Exact rounding: returns a node equal to source - ((source + offset) mod 2^shift), whose
  // value + offset is a multiple of 2^shift. The low bits are removed in chunks of up to p bits,
  // two bootstraps per chunk: the first reads the chunk with the bit above it in the padding
  // position through a constant table, whose sign gives that bit, which is cleared; the second
  // then reads the chunk with a zero padding bit.
  ValueId round_low_bits(ValueId source, std::int64_t offset, std::uint32_t shift, std::uint32_t p,
                         const std::string& origin) {
    const Shape shape = result_.graph.node(source).shape;
    const std::size_t count = ir::element_count(shape);
    ValueId current = source;  // source - (low bits removed so far)
    std::vector<ValueId> chunks;
    for (std::uint32_t done = 0; done < shift;) {
      const std::uint32_t c = std::min(p, shift - done);
      const std::int64_t half_top = std::int64_t{1} << (done + c - 1);
      // Bootstrap 1: +-2^(done+c-1) by the bit at position done+c of (current + offset).
      const ValueId sign = raw_lookup(current, offset, done, c, shape, origin + " round:sign",
                                      [&](std::size_t) { return half_top; }, {-half_top, half_top});
      // cleared = current - 2^(done+c-1) + sign: that bit is now zero.
      std::vector<std::vector<Term>> rows(count);
      for (std::size_t e = 0; e < count; ++e) {
        rows[e] = {{current.index, static_cast<std::uint32_t>(e), 1.0},
                   {sign.index, static_cast<std::uint32_t>(e), 1.0}};
      }
      const ValueId cleared = integer_linear(
          std::move(rows), std::vector<double>(count, static_cast<double>(-half_top)), shape,
          origin + " round:clear");
      // Bootstrap 2: the chunk's value, in place.
      chunks.push_back(
          raw_lookup(cleared, offset, done, c, shape, origin + " round:chunk",
                     [&](std::size_t m) { return static_cast<std::int64_t>(m) << done; },
                     {0, ((std::int64_t{1} << c) - 1) << done}));
      std::vector<std::vector<Term>> cur_rows(count);
      for (std::size_t e = 0; e < count; ++e) {
        cur_rows[e] = {{source.index, static_cast<std::uint32_t>(e), 1.0}};
        for (const ValueId k : chunks)
          cur_rows[e].push_back({k.index, static_cast<std::uint32_t>(e), -1.0});
      }
      current = integer_linear(std::move(cur_rows), std::vector<double>(count, 0.0), shape,
                               origin + " round");
      done += c;
    }
    return current;
  }

  // A linear node with integer weights and an integer bias (never rescaled).
  ValueId integer_linear(std::vector<std::vector<Term>> rows, std::vector<double> bias,
                         const Shape& shape, const std::string& origin) {
    return build_linear(std::move(rows), std::move(bias), shape, origin, true).node;
  }

  ValueId raw_lookup(ValueId input, std::int64_t offset, std::uint32_t shift, std::uint32_t bits,
                     const Shape& shape, const std::string& origin,
                     const std::function<std::int64_t(std::size_t)>& entry, IntRange range) {
    IntNode node;
    node.op = IntOp::kLookup;
    node.inputs = {input};
    node.shape = shape;
    node.origin = origin;
    node.range = range;
    node.lookup.offset = offset;
    node.lookup.shift = shift;
    node.lookup.bits = bits;
    std::vector<std::int64_t> table(std::size_t{1} << bits);
    for (std::size_t m = 0; m < table.size(); ++m) table[m] = entry(m);
    node.lookup.tables = {std::move(table)};
    node.lookup.table_of_element.assign(ir::element_count(shape), 0);
    return add_node(std::move(node));
  }

  // ---- representations ----

  Repr affine_repr(Affine a, Shape shape, std::string origin) {
    Repr r;
    r.kind = Repr::Kind::kAffine;
    r.shape = std::move(shape);
    r.affine = std::move(a);
    r.origin = std::move(origin);
    return r;
  }

  Expression as_expression(const Repr& r) const {
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

  ValueId source_of(const Repr& r) const {
    return r.kind == Repr::Kind::kFunction ? r.function.source : r.affine.node;
  }

  // Quantization of a univariate function's values: range from the calibration inputs.
  struct OutputQuantizer {
    double scale, bias;
    std::int64_t top;
  };

  // Observed range of a function over the calibration values of its source.
  std::pair<double, double> observed_range(const Expression& f, std::size_t count) {
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

  OutputQuantizer natural_quantizer(const Expression& f, std::size_t count, std::uint32_t bits) {
    const auto [lo, hi] = observed_range(f, count);
    const double top = std::ldexp(1.0, static_cast<int>(bits)) - 1;
    return {hi > lo ? (hi - lo) / top : 1.0, lo, static_cast<std::int64_t>(top)};
  }

  // A given step, values from `bias` up: shares the scale of another operand.
  OutputQuantizer quantizer_with_scale(const Expression& f, std::size_t count, double scale,
                                       std::optional<double> bias = {}) {
    auto [lo, hi] = observed_range(f, count);
    if (bias) lo = std::min(*bias, lo);
    return {scale, lo, static_cast<std::int64_t>(std::ceil((hi - lo) / scale))};
  }

  Affine materialize(const Repr& r, std::uint32_t bits, std::optional<OutputQuantizer> fixed = {}) {
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

  // The linear map of a float node applied to affine operands.
  Affine apply_linear(const FloatNode& node, const std::vector<const Repr*>& operands,
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

  // An affine tensor broadcast (numpy) to `shape`.
  Affine broadcast(const Affine& a, const Shape& from, const Shape& to) {
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

  // a - b (or a + b) of two affine tensors of one shape.
  Affine combine(const Affine& a, const Affine& b, double sign, const Shape& shape,
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

  // Scale shared by two operands about to be added or compared: an already-integer operand
  // keeps its own (no bootstrap to requantize it); two functions share the coarser one.
  std::optional<double> common_scale(const Repr& a, const Repr& b) {
    const auto natural = [&](const Repr& r) {
      return natural_quantizer(as_expression(r), ir::element_count(r.shape),
                               options_.n_bits.op_inputs)
          .scale;
    };
    if (a.kind == Repr::Kind::kAffine) return a.affine.scale.front();
    if (b.kind == Repr::Kind::kAffine) return b.affine.scale.front();
    return std::max(natural(a), natural(b));
  }

  // Product of two encrypted tensors of one shape. With x = s_a q_a + c_a, y = s_b q_b + c_b:
  //   x y = s_a s_b (q_a q_b + beta q_a + alpha q_b) + c_a c_b,  alpha = c_a/s_a, beta = c_b/s_b,
  // q_a q_b = floor((q_a+q_b)^2/4) - floor((q_a-q_b)^2/4) exactly (same parity), and the cross
  // terms are made integer by the smallest power of two K for which rounding K alpha and K beta
  // moves the result by at most a quarter of s_a s_b: L = K q_a q_b + round(K beta) q_a +
  // round(K alpha) q_b, x y ~ (s_a s_b / K) L + c_a c_b (K = 1 when the zero points are integers).
  Affine multiply(const Affine& a, const Affine& b, const Shape& shape, const std::string& origin) {
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

  // max(a, b) = b + relu(a - b) (min: a - relu(a - b)).
  Affine maximum(const Affine& a, const Affine& b, const Shape& shape, bool is_max,
                 const std::string& origin) {
    const std::size_t count = ir::element_count(shape);
    const Affine d = combine(a, b, -1.0, shape, origin + " a-b");
    Repr dr = affine_repr(d, shape, origin + " a-b");
    Expression f = as_expression(dr);
    Step relu;
    relu.kind = Step::Kind::kBinary;
    relu.op = FloatOp::kMax;
    relu.operands = {Operand{1, {}}, Operand{-1, std::vector<double>(count, 0.0)}};
    f.steps.push_back(std::move(relu));
    Repr rr;
    rr.kind = Repr::Kind::kFunction;
    rr.shape = shape;
    rr.function = std::move(f);
    rr.origin = "relu(" + origin + " a-b)";
    const double s = d.scale.front() != 0.0 ? std::abs(d.scale.front()) : 1.0;
    const Affine r = materialize(rr, options_.n_bits.op_inputs,
                                 quantizer_with_scale(rr.function, count, s, 0.0));
    return is_max ? combine(b, r, 1.0, shape, origin) : combine(a, r, -1.0, shape, origin);
  }

  // ---- the walk ----

  Repr lower(const FloatNode& node, std::size_t index) {
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

  Repr lower_input(const FloatNode& node) {
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
        fail("calibration input \"" + node.name + "\": expected shape " +
             ir::to_string(node.shape) + ", found " + ir::to_string(t.shape));
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
    const auto scale_for = [&](std::size_t c) {
      return hi[c] > lo[c] ? (hi[c] - lo[c]) / top : (lo[c] != 0.0 ? std::abs(lo[c]) : 1.0);
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

  Repr lower_unary(const FloatNode& node, const Repr& x, const std::string& origin) {
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

  // Appends the steps of `g` to `f` (same source) and returns the index of g's result.
  static int merge_into(Expression& f, const Expression& g) {
    const int base = static_cast<int>(f.steps.size());
    for (Step s : g.steps) {
      for (Operand& o : s.operands) {
        if (o.ref > 0) o.ref += base;
      }
      f.steps.push_back(std::move(s));
    }
    return base + static_cast<int>(g.steps.size());
  }

  Operand operand_for(const Repr& r, Expression& f, const Shape& shape) {
    if (r.kind == Repr::Kind::kClear) return Operand{-1, broadcast_values(r.clear, shape)};
    return Operand{merge_into(f, as_expression(r)), {}};
  }

  Repr lower_binary(const FloatNode& node, const Repr& a, const Repr& b,
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

  Repr lower_where(const FloatNode& node, const std::vector<const Repr*>& in,
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

  Repr move_function(const FloatNode& node, const Repr& x, const std::string& origin) {
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

  Repr lower_max_pool(const FloatNode& node, const Repr& x, const std::string& origin) {
    const Affine in = materialize(x, options_.n_bits.op_inputs);
    // Window members per output element, from the pooling geometry (dilations included).
    const Shape& os = node.shape;
    const ir::Window win =
        ir::window_of(x.shape, os, node.attributes.kernel, node.attributes, true);
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
    return affine_repr(candidates.front(), os, origin);
  }

  void emit_output(ValueId out) {
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

  // Drops nodes no output needs (intermediate linear nodes folded into later ones, gathers of
  // max pool windows...), keeping every input so that the quantizers keep their order.
  void prune() {
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

  const ir::FloatGraph& graph_;
  QuantizeOptions options_;
  std::vector<Sample> samples_;
  std::vector<Repr> reprs_;
  QuantizedGraph result_;
  std::vector<std::vector<ir::IntTensor>> calibration_;  // per integer node, per sample
};

}  // namespace

QuantizedGraph quantize(const ir::FloatGraph& graph, std::span<const Sample> calibration,
                        const QuantizeOptions& options) {
  return Quantizer(graph, calibration, options).run();
}

}  // namespace fheml::quant
