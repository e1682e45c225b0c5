// Quantizer: integer nodes and their calibration values, lookups and rounding.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fheml/quant/quantize_internal.h"
#include "fheml/quant/weight_rounding.h"

namespace fheml::quant::detail {

// ---- integer nodes and their calibration values ----

ValueId Quantizer::add_node(IntNode node) {
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

IntRange Quantizer::observed(ValueId id) const {
  IntRange r{std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()};
  for (const auto& t : calibration_[id.index]) {
    for (const auto v : t.data) {
      r.lo = std::min(r.lo, v);
      r.hi = std::max(r.hi, v);
    }
  }
  return r;
}

Affine Quantizer::build_linear(std::vector<std::vector<Term>> rows, std::vector<double> constants,
                               const Shape& shape, const std::string& origin, bool integer_rows) {
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

  const std::vector<std::vector<std::int64_t>> levels =
      integer_rows ? std::vector<std::vector<std::int64_t>>(count) : round_rows(rows, scale, exact);

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
    for (std::size_t k = 0; k < rows[r].size(); ++k) {
      const Term& t = rows[r][k];
      const double w = levels[r].empty() ? std::nearbyint(t.weight / scale[r])
                                         : static_cast<double>(levels[r][k]);
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

std::vector<std::vector<std::int64_t>> Quantizer::round_rows(
    const std::vector<std::vector<Term>>& rows, const std::vector<double>& scale,
    const std::vector<bool>& exact) {
  std::vector<std::vector<std::int64_t>> levels(rows.size());
  if (!options_.optimize_weight_rounding || samples_.empty()) return levels;
  // Rows over the same inputs (a gemm's outputs, a conv's channels at one position) share the
  // inputs' inverse covariance: one group each.
  using Inputs = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
  std::map<Inputs, std::vector<std::size_t>> groups;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (exact[r] || rows[r].size() < 2 || rows[r].size() > kMaxRoundedInputs) continue;
    Inputs inputs;
    for (const Term& t : rows[r]) inputs.emplace_back(t.node, t.element);
    groups[std::move(inputs)].push_back(r);
  }
  const std::size_t count = samples_.size();
  const auto qmax = (std::int64_t{1} << (options_.n_bits.op_weights - 1)) - 1;
  for (const auto& [inputs, members] : groups) {
    const std::size_t n = inputs.size();
    std::vector<double> values(count * n), variance(n, 0.0), mean(n, 0.0);
    for (std::size_t f = 0; f < n; ++f) {
      const auto& node_values = calibration_[inputs[f].first];
      for (std::size_t s = 0; s < count; ++s) {
        const auto v = static_cast<double>(node_values[s].data[inputs[f].second]);
        values[s * n + f] = v;
        mean[f] += v / static_cast<double>(count);
      }
      for (std::size_t s = 0; s < count; ++s)
        variance[f] += (values[s * n + f] - mean[f]) * (values[s * n + f] - mean[f]);
    }
    // The inputs that vary most first (GPTQ's "act order"): their errors are the costliest and
    // the later ones absorb the corrections.
    std::vector<std::size_t> order(n);
    for (std::size_t f = 0; f < n; ++f) order[f] = f;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return variance[a] > variance[b]; });
    std::vector<double> weights(n * members.size()), steps(members.size());
    for (std::size_t c = 0; c < members.size(); ++c) {
      steps[c] = scale[members[c]];
      for (std::size_t f = 0; f < n; ++f)
        weights[f * members.size() + c] = rows[members[c]][f].weight;
    }
    const std::vector<std::int64_t> k = round_with_error_feedback(
        weights, n, steps, damped_inverse_covariance(values, count, n), order, qmax);
    for (std::size_t c = 0; c < members.size(); ++c) {
      auto& row = levels[members[c]];
      row.resize(n);
      for (std::size_t f = 0; f < n; ++f) row[f] = k[f * members.size() + c];
    }
  }
  return levels;
}

// ---- lookups ----

namespace {

// Where x -> f(x) steps over the integers of [lo, hi] when it takes two values and changes
// once: the first x with the second value. nullopt when f takes more values or changes more
// than once (as far as 2^(p+4) evenly spaced samples, at most 1024, can tell; a change is then
// located exactly by bisection between the two samples around it); lo when f is constant.
std::optional<std::int64_t> single_step(const std::function<std::int64_t(std::int64_t)>& f,
                                        std::int64_t lo, std::int64_t hi, std::uint32_t p) {
  const std::int64_t samples =
      std::min<std::int64_t>(hi - lo, std::int64_t{1} << std::min<std::uint32_t>(p + 4, 10));
  const std::int64_t first = f(lo);
  std::optional<std::int64_t> second;
  std::int64_t before = lo;  // the last sample with the first value
  std::optional<std::int64_t> after;
  for (std::int64_t i = 1; i <= samples; ++i) {
    const std::int64_t x = lo + (hi - lo) / samples * i + (hi - lo) % samples * i / samples;
    const std::int64_t v = f(x);
    if (v == first) {
      if (after) return std::nullopt;  // back to the first value: two changes
      before = x;
    } else {
      if (second && v != *second) return std::nullopt;  // a third value
      second = v;
      if (!after) after = x;
    }
  }
  if (!after) return lo;
  std::int64_t a = before, b = *after;  // f(a) == first, f(b) == second
  while (b - a > 1) {
    const std::int64_t m = a + (b - a) / 2;
    const std::int64_t v = f(m);
    if (v == first) {
      a = m;
    } else if (v == *second) {
      b = m;
    } else {
      return std::nullopt;
    }
  }
  return b;
}

}  // namespace

ValueId Quantizer::build_lookup(ValueId source, const std::string& origin,
                                const std::function<std::int64_t(std::size_t, double)>& table_value,
                                bool distinct_per_element) {
  // Copies: rounding below adds nodes, which moves the graph's storage.
  const Shape shape = result_.graph.node(source).shape;
  const std::uint32_t limit = options_.max_lookup_bits;
  const std::size_t count = ir::element_count(shape);
  // The range the lookup reads: calibrated (with the calibration margin), or the worst case
  // when that is narrower.
  const auto window = [&](ValueId id) {
    const IntRange worst = result_.graph.node(id).range;
    IntRange seen = observed(id);
    const auto margin = static_cast<std::int64_t>(
        std::ceil(options_.calibration_margin * static_cast<double>(seen.hi - seen.lo)));
    seen = {std::max(worst.lo, seen.lo - margin), std::min(worst.hi, seen.hi + margin)};
    return worst.bits() <= seen.bits() ? worst : seen;
  };
  IntRange range = window(source);
  // Reads source[e] - c[e] from here on, through a copy of the source with that bias (a linear
  // node: no bootstrap); element e's table reads x + c[e].
  std::vector<std::int64_t> centre;
  const auto subtract = [&](std::vector<std::int64_t> c, const std::string& suffix) {
    std::vector<std::vector<Term>> rows(count);
    std::vector<double> constants(count);
    for (std::size_t e = 0; e < count; ++e) {
      rows[e] = {Term{source.index, static_cast<std::uint32_t>(e), 1.0}};
      constants[e] = -static_cast<double>(c[e]);
    }
    const std::string copy_origin = result_.graph.node(source).origin + suffix;
    source = build_linear(std::move(rows), std::move(constants), shape, copy_origin,
                          /*integer_rows=*/true)
                 .node;
    range = window(source);
    centre = std::move(c);
  };

  // Step functions (a comparison, a threshold) on a value wider than a lookup, rounded
  // exactly: each element's step moves to 0 in a copy of the source (a linear node: no extra
  // bootstrap), and the rounding's bucket edges are put on it below, so that the lookup gives
  // f(x) on every input, not f at the centre of x's bucket.
  bool aligned = false;
  if (range.bits() > limit && options_.rounding_threshold_bits &&
      options_.rounding_method == RoundingMethod::kExact) {
    std::vector<std::int64_t> steps(count);
    bool all_steps = true;
    for (std::size_t e = 0; e < count && all_steps; ++e) {
      if (!distinct_per_element && e > 0) {
        steps[e] = steps[0];
        continue;
      }
      const auto at =
          single_step([&](std::int64_t x) { return table_value(e, static_cast<double>(x)); },
                      range.lo, range.hi, *options_.rounding_threshold_bits);
      if (!at) all_steps = false;
      if (at) steps[e] = *at;
    }
    if (all_steps) {
      subtract(std::move(steps), " minus step");
      distinct_per_element = distinct_per_element || count > 1;
      aligned = true;
    }
  }

  // Per-element centring. One window [lo, hi] serves every element of the node; when the
  // elements' own ranges sit apart (a layer's neurons: weights of other signs and scales),
  // that window is the union of theirs and a rounded lookup is coarser for every one. When
  // the lookup must round and reads a linear node, each element's centre is subtracted in a
  // copy of that node (its bias: no extra operation; the original is pruned when nothing else
  // reads it) and element e's table reads x + centre[e]: the window becomes the widest
  // element's.
  if (!aligned && range.bits() > limit && options_.rounding_threshold_bits && count > 1 &&
      result_.graph.node(source).op == IntOp::kLinear && !calibration_[source.index].empty()) {
    std::vector<std::int64_t> lo(count, std::numeric_limits<std::int64_t>::max());
    std::vector<std::int64_t> hi(count, std::numeric_limits<std::int64_t>::min());
    for (const auto& t : calibration_[source.index]) {
      for (std::size_t e = 0; e < count; ++e) {
        lo[e] = std::min(lo[e], t.data[e]);
        hi[e] = std::max(hi[e], t.data[e]);
      }
    }
    std::vector<std::int64_t> c(count);
    std::int64_t widest = 0;
    for (std::size_t e = 0; e < count; ++e) {
      c[e] = lo[e] + (hi[e] - lo[e]) / 2;
      widest = std::max(widest, hi[e] - lo[e]);
    }
    // Worth a copy of the node only if the window needs fewer bits, its margin included. (An
    // element's room beyond its calibrated range is now the margin and the window's slack,
    // where the union gave inner elements more: a wider margin here measured worse on held-out
    // rows (bench/README.md "Networks"), so the calibration margin stays the same.)
    const auto centred_width =
        static_cast<std::int64_t>(
            std::ceil(static_cast<double>(widest) * (1.0 + 2.0 * options_.calibration_margin))) +
        2;
    if (IntRange{0, centred_width}.bits() < IntRange{range.lo, range.hi}.bits()) {
      subtract(std::move(c), " centred");
      distinct_per_element = true;
    }
  }
  const std::uint32_t bits = range.bits();

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
    if (aligned) {
      // Bucket edges on the step (x = 0): offset a multiple of 2^shift, as near the centred
      // one as the window allows; one more bit when no multiple fits.
      for (;; ++shift) {
        const std::int64_t box = std::int64_t{1} << shift;
        const std::int64_t top = (std::int64_t{1} << (p + shift)) - 1;
        const std::int64_t least = (-range.lo + box - 1) >> shift;  // ceil(-lo / box)
        const std::int64_t most = (top - range.hi) >> shift;        // floor((top - hi) / box)
        if (least > most) continue;
        const std::int64_t centred =
            -range.lo + ((std::int64_t{1} << (p + shift)) - (range.hi - range.lo + 1)) / 2;
        offset = std::clamp((centred + box / 2) >> shift, least, most) << shift;
        break;
      }
    }
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
      double x =
          std::ldexp(static_cast<double>(m), static_cast<int>(shift)) - static_cast<double>(offset);
      if (shift > 0 && !approximate) x += std::ldexp(1.0, static_cast<int>(shift) - 1) - 0.5;
      table[m] = table_value(e, centre.empty() ? x : x + static_cast<double>(centre[e]));
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

ValueId Quantizer::round_low_bits(ValueId source, std::int64_t offset, std::uint32_t shift,
                                  std::uint32_t p, const std::string& origin) {
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
    const ValueId cleared =
        integer_linear(std::move(rows), std::vector<double>(count, static_cast<double>(-half_top)),
                       shape, origin + " round:clear");
    // Bootstrap 2: the chunk's value, in place.
    chunks.push_back(raw_lookup(cleared, offset, done, c, shape, origin + " round:chunk",
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

ValueId Quantizer::integer_linear(std::vector<std::vector<Term>> rows, std::vector<double> bias,
                                  const Shape& shape, const std::string& origin) {
  return build_linear(std::move(rows), std::move(bias), shape, origin, true).node;
}

ValueId Quantizer::raw_lookup(ValueId input, std::int64_t offset, std::uint32_t shift,
                              std::uint32_t bits, const Shape& shape, const std::string& origin,
                              const std::function<std::int64_t(std::size_t)>& entry,
                              IntRange range) {
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

}  // namespace fheml::quant::detail
