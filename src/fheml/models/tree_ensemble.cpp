#include "fheml/models/tree_ensemble.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

#include "fheml/models/tree_circuit.h"
#include "fheml/runtime/statistics.h"

namespace fheml::models {
namespace {

using namespace tree_circuit;

[[noreturn]] void bad(const std::string& message) { throw std::invalid_argument(message); }

std::string where(std::size_t tree, std::size_t node) {
  return "tree " + std::to_string(tree) + ", node " + std::to_string(node);
}

std::string tree_label(const TreeEnsembleSpec& spec) {
  return std::to_string(spec.trees.size()) + " tree" + (spec.trees.size() == 1 ? "" : "s");
}

}  // namespace

void validate(const TreeEnsembleSpec& spec) {
  if (spec.features == 0 || spec.outputs == 0) {
    bad("a tree ensemble needs at least one feature and one output, found " +
        std::to_string(spec.features) + " and " + std::to_string(spec.outputs));
  }
  if (spec.trees.empty()) bad("a tree ensemble needs at least one tree");
  if (!spec.base_score.empty() && spec.base_score.size() != spec.outputs) {
    bad("base_score has " + std::to_string(spec.base_score.size()) + " values, the model " +
        std::to_string(spec.outputs) + " outputs");
  }
  for (std::size_t c = 0; c < spec.base_score.size(); ++c) {
    if (!std::isfinite(spec.base_score[c]))
      bad("base_score[" + std::to_string(c) + "] is not finite");
  }
  for (std::size_t t = 0; t < spec.trees.size(); ++t) {
    const auto& nodes = spec.trees[t].nodes;
    if (nodes.empty()) bad("tree " + std::to_string(t) + " has no node");
    std::vector<std::uint8_t> parents(nodes.size(), 0);
    std::vector<std::size_t> depth(nodes.size(), 0);
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      const TreeNode& node = nodes[n];
      if (n > 0 && parents[n] != 1) bad(where(t, n) + " is not reached from the root");
      if (is_leaf(node)) {
        if (node.value.size() != spec.outputs) {
          bad(where(t, n) + ": a leaf has " + std::to_string(node.value.size()) +
              " values, the model " + std::to_string(spec.outputs) + " outputs");
        }
        for (const double v : node.value)
          if (!std::isfinite(v)) bad(where(t, n) + ": leaf value is not finite");
        continue;
      }
      if (node.feature < 0 || static_cast<std::size_t>(node.feature) >= spec.features) {
        bad(where(t, n) + ": feature " + std::to_string(node.feature) + " outside 0.." +
            std::to_string(spec.features - 1) + " (leaves have feature -1)");
      }
      if (!std::isfinite(node.threshold)) bad(where(t, n) + ": threshold is not finite");
      for (const std::int32_t child : {node.left, node.right}) {
        if (child <= static_cast<std::int32_t>(n) ||
            static_cast<std::size_t>(child) >= nodes.size()) {
          bad(where(t, n) + ": child " + std::to_string(child) +
              " must index a later node of the "
              "tree (0.." +
              std::to_string(nodes.size() - 1) + ")");
        }
        const auto c = static_cast<std::size_t>(child);
        if (++parents[c] > 1) bad(where(t, c) + " has two parents");
        depth[c] = depth[n] + 1;
        if (depth[c] > kMaxTreeDepth) {
          bad("tree " + std::to_string(t) + " is deeper than " + std::to_string(kMaxTreeDepth));
        }
      }
    }
  }
}

// Every threshold strictly inside its feature's grid (calibration rows narrower than the trees'
// splits widen it by a step past the outermost threshold): a value beyond the grid then compares
// with every threshold as the grid's end does, so clipping it never changes a prediction
// (quant::InputQuantizer::quantize_levels relies on it and reports nothing for trees).
void TreeEnsemble::cover_thresholds(std::uint32_t n_bits) {
  const double top = std::ldexp(1.0, static_cast<int>(n_bits)) - 1;
  std::vector<double> t_lo(spec_.features, INFINITY), t_hi(spec_.features, -INFINITY);
  for (const Tree& tree : spec_.trees) {
    for (const TreeNode& node : tree.nodes) {
      if (is_leaf(node)) continue;
      const auto f = static_cast<std::size_t>(node.feature);
      t_lo[f] = std::min(t_lo[f], node.threshold);
      t_hi[f] = std::max(t_hi[f], node.threshold);
    }
  }
  for (std::size_t f = 0; f < spec_.features; ++f) {
    if (t_lo[f] > t_hi[f] || (t_lo[f] > lo_[f] && t_hi[f] < hi_[f])) continue;
    const double lo = std::min(lo_[f], t_lo[f]), hi = std::max(hi_[f], t_hi[f]);
    const double step = (hi > lo ? hi - lo : std::max(std::abs(lo), 1.0)) / top;
    if (t_lo[f] <= lo_[f]) lo_[f] = lo - step;
    if (t_hi[f] >= hi_[f]) hi_[f] = hi + step;
  }
}

TreeEnsemble::TreeEnsemble(const TreeEnsembleSpec& spec, const Matrix& calibration,
                           const TreeEnsembleOptions& options)
    : spec_(spec) {
  validate(spec_);
  if (spec_.base_score.empty()) spec_.base_score.assign(spec_.outputs, 0.0);
  if (spec_.link == Link::kSigmoid && spec_.outputs != 1) {
    bad("link sigmoid needs one output (a binary classifier), the model has " +
        std::to_string(spec_.outputs));
  }
  if (options.n_bits < 1 || options.n_bits > quant::kMaxThermometerBits) {
    bad("n_bits must be in 1.." + std::to_string(quant::kMaxThermometerBits) +
        " for trees (each feature travels as 2^n_bits - 1 ciphertexts), found " +
        std::to_string(options.n_bits));
  }
  if (options.leaf_bits < kMinLeafBits || options.leaf_bits > 24) {
    bad("leaf_bits must be in " + std::to_string(kMinLeafBits) + "..24, found " +
        std::to_string(options.leaf_bits));
  }
  if (options.max_lookup_bits < 1 || options.max_lookup_bits > 8) {
    bad("max_lookup_bits must be in 1..8, found " + std::to_string(options.max_lookup_bits));
  }
  std::tie(lo_, hi_) = feature_ranges(calibration, spec_.features);
  cover_thresholds(options.n_bits);

  // Input grid per feature, as the linear models quantize (quant::quantize's rule).
  quant::InputQuantizer input;
  input.name = "x";
  input.shape = {1, spec_.features};
  input.bits = options.n_bits;
  input.encoding = quant::InputEncoding::kThermometer;
  input.scale.resize(spec_.features);
  input.zero_point.resize(spec_.features);
  const auto top = static_cast<std::int64_t>((std::int64_t{1} << options.n_bits) - 1);
  for (std::size_t f = 0; f < spec_.features; ++f) {
    const double s = hi_[f] > lo_[f] ? (hi_[f] - lo_[f]) / static_cast<double>(top)
                                     : (lo_[f] != 0.0 ? std::abs(lo_[f]) : 1.0);
    input.scale[f] = s;
    input.zero_point[f] = -lo_[f] / s;
  }
  const std::size_t levels = input.levels();

  // Splits on the grid: k = the largest level whose dequantized value goes left (-1: none).
  const auto goes_left = [&](double x, double threshold) {
    return spec_.split == SplitRule::kLessEqual ? x <= threshold : x < threshold;
  };
  split_levels_.resize(spec_.trees.size());
  std::set<std::pair<std::int32_t, std::int64_t>> distinct;
  for (std::size_t t = 0; t < spec_.trees.size(); ++t) {
    const auto& nodes = spec_.trees[t].nodes;
    split_levels_[t].assign(nodes.size(), 0);
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      if (is_leaf(nodes[n])) continue;
      const auto f = static_cast<std::size_t>(nodes[n].feature);
      const double guess = std::floor(nodes[n].threshold / input.scale[f] + input.zero_point[f]);
      auto k = static_cast<std::int64_t>(std::clamp(guess, -1.0, static_cast<double>(top)));
      while (k < top && goes_left(input.dequantize(k + 1, f), nodes[n].threshold)) ++k;
      while (k >= 0 && !goes_left(input.dequantize(k, f), nodes[n].threshold)) --k;
      split_levels_[t][n] = k;
      distinct.insert({nodes[n].feature, k});
    }
  }

  // Leaf values per output: centred per tree (the centre joins the output bias), one step per
  // output over the widest tree.
  const double weight =
      spec_.aggregation == Aggregation::kMean ? 1.0 / static_cast<double>(spec_.trees.size()) : 1.0;
  const std::size_t C = spec_.outputs;
  std::vector<std::vector<double>> centre(spec_.trees.size(), std::vector<double>(C, 0.0));
  std::vector<double> half_spread(C, 0.0);
  for (std::size_t t = 0; t < spec_.trees.size(); ++t) {
    for (std::size_t c = 0; c < C; ++c) {
      double lo = INFINITY, hi = -INFINITY;
      for (const TreeNode& node : spec_.trees[t].nodes) {
        if (!is_leaf(node)) continue;
        lo = std::min(lo, node.value[c] * weight);
        hi = std::max(hi, node.value[c] * weight);
      }
      centre[t][c] = (lo + hi) / 2;
      half_spread[c] = std::max(half_spread[c], (hi - lo) / 2);
    }
  }

  std::vector<TreeContext> contexts;
  contexts.reserve(spec_.trees.size());
  for (std::size_t t = 0; t < spec_.trees.size(); ++t) {
    const Tree& tree = spec_.trees[t];
    TreeContext ctx{tree, t, shape_of(tree), {}, {}, {}};
    stats_.internal_nodes += ctx.shape.internal.size();
    stats_.leaves += ctx.shape.leaves;
    ctx.goes_left.resize(tree.nodes.size());
    for (const std::size_t n : ctx.shape.internal) {
      const std::int64_t k = split_levels_[t][n];
      const auto f = static_cast<std::size_t>(tree.nodes[n].feature);
      if (k < 0) {
        ctx.goes_left[n] = constant(0);
      } else if (k >= top) {
        ctx.goes_left[n] = constant(1);
      } else {  // [q_f <= k] = 1 - [q_f >= k + 1], bit k of feature f's code
        ctx.goes_left[n] = Expr{1, {{0, f * levels + static_cast<std::size_t>(k), -1}}};
      }
    }
    contexts.push_back(std::move(ctx));
  }
  stats_.trees = spec_.trees.size();
  stats_.distinct_splits = distinct.size();

  // Leaves at `leaf_bits`: fills each context's quantized values and moved outputs, returns
  // the output dequantizer.
  const auto quantize_leaves = [&](std::uint32_t leaf_bits) {
    const double q_max = std::ldexp(1.0, static_cast<int>(leaf_bits) - 1) - 1;
    quant::OutputDequantizer output;
    output.shape = {1, C};
    output.scale.resize(C);
    output.bias = spec_.base_score;
    for (std::size_t c = 0; c < C; ++c) {
      output.scale[c] = half_spread[c] > 0 ? half_spread[c] / q_max : 1.0;
      for (std::size_t t = 0; t < spec_.trees.size(); ++t) output.bias[c] += centre[t][c];
    }
    for (TreeContext& ctx : contexts) {
      ctx.outputs.clear();
      ctx.leaf.assign(ctx.tree.nodes.size(), {});
      for (std::size_t c = 0; c < C; ++c) {
        bool moves = false;
        std::vector<std::int64_t> q(ctx.tree.nodes.size(), 0);
        for (std::size_t n = 0; n < ctx.tree.nodes.size(); ++n) {
          if (!is_leaf(ctx.tree.nodes[n])) continue;
          q[n] = std::llround((ctx.tree.nodes[n].value[c] * weight - centre[ctx.index][c]) /
                              output.scale[c]);
          moves = moves || q[n] != 0;
        }
        if (!moves || ctx.shape.internal.empty()) continue;
        ctx.outputs.push_back(c);
        for (std::size_t n = 0; n < ctx.tree.nodes.size(); ++n)
          if (is_leaf(ctx.tree.nodes[n])) ctx.leaf[n].push_back(q[n]);
      }
    }
    return output;
  };

  // A candidate circuit at one lookup width and one leaf width; nullopt with `why_not` set when
  // no parameter set meets the budget, or with `too_deep` set when a tree needs wider lookups.
  struct Candidate {
    compiler::Circuit circuit;
    TreeCircuitStats stats;
    double ms = 0;
  };
  std::string why_not;
  const TreeCircuitStats counted = stats_;
  const auto build = [&](std::uint32_t bits, std::uint32_t leaf_bits,
                         bool& too_deep) -> std::optional<Candidate> {
    too_deep = false;
    const quant::OutputDequantizer output = quantize_leaves(leaf_bits);
    Plan plan;
    plan.bits = bits;
    plan.outputs.assign(C, Expr{});
    plan.out_lo.assign(C, 0);
    plan.out_hi.assign(C, 0);
    plan.stats = counted;
    for (const TreeContext& ctx : contexts) {
      if (ctx.outputs.empty()) continue;
      const auto [value_cost, height] = plan_value_blocks(ctx, bits);
      const std::size_t indicators = indicator_cost(ctx, bits);
      if (value_cost >= kInfeasible && indicators >= kInfeasible) {
        too_deep = true;
        why_not = "tree " + std::to_string(ctx.index) + " (depth " +
                  std::to_string(ctx.shape.max_depth) + ") needs lookups wider than " +
                  std::to_string(bits) + " bits";
        return std::nullopt;
      }
      if (value_cost <= indicators) {
        emit_value_blocks(ctx, height, plan);
      } else {
        emit_indicators(ctx, plan);
      }
      for (std::size_t o = 0; o < ctx.outputs.size(); ++o) {
        std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = -lo;
        for (const auto& values : ctx.leaf) {
          if (values.empty()) continue;
          lo = std::min(lo, values[o]);
          hi = std::max(hi, values[o]);
        }
        plan.out_lo[ctx.outputs[o]] += lo;
        plan.out_hi[ctx.outputs[o]] += hi;
      }
    }
    if (plan.stages.empty()) {
      bad("the ensemble (" + tree_label(spec_) +
          ") has no split that changes its output: it predicts a constant, nothing to compute "
          "on encrypted data");
    }
    for (const Stage& s : plan.stages) plan.stats.lookups += s.values.size() + s.checkpoints.size();
    plan.stats.lookup_bits = bits;
    plan.stats.leaf_bits = leaf_bits;
    plan.stats.lookup_depth = plan.stages.size();
    Candidate c;
    c.stats = plan.stats;
    try {
      c.circuit = compiler::compile(assemble(plan, input, output), options.compile);
    } catch (const std::invalid_argument& e) {
      why_not = "at " + std::to_string(bits) + "-bit lookups and " + std::to_string(leaf_bits) +
                "-bit leaves: " + e.what();
      return std::nullopt;
    }
    c.ms = runtime::compute_statistics(c.circuit).estimated_latency_ms;
    return c;
  };

  // Per lookup width: (1) the widest leaf values whose sum decrypts under the failure budget (a
  // leaf value multiplies a reach indicator's bootstrap noise, so wide leaves can need a
  // lower-noise parameter set, or find none); (2) up to kLeafBitsTradeoff bits fewer for the
  // leaves where each bit buys at least 10% of latency (a cheaper parameter set: on a 50-tree
  // forest of 3 classes, 8 -> 6 bits cut the bootstrap from 33 to 12 ms, bench/README.md,
  // trees). The compiler's latency estimate then picks the width: the trade-off is made at every
  // width, since a width that loses at full leaves may win once its leaves narrow.
  std::optional<Candidate> best;
  for (std::uint32_t bits = 1; bits <= options.max_lookup_bits; ++bits) {
    std::optional<Candidate> at_width;
    bool too_deep = false;
    for (std::uint32_t leaf_bits = options.leaf_bits; leaf_bits >= kMinLeafBits; --leaf_bits) {
      at_width = build(bits, leaf_bits, too_deep);
      if (too_deep || at_width) break;  // narrower leaves do not make the trees shallower
    }
    if (too_deep || !at_width) continue;
    for (std::uint32_t leaf_bits = at_width->stats.leaf_bits - 1;
         leaf_bits >=
         std::max(kMinLeafBits, options.leaf_bits - std::min(options.leaf_bits, kLeafBitsTradeoff));
         --leaf_bits) {
      std::optional<Candidate> c = build(bits, leaf_bits, too_deep);
      if (!c || c->ms > 0.9 * at_width->ms) break;
      at_width = std::move(c);
    }
    if (!best || at_width->ms < best->ms) best = std::move(at_width);
  }
  if (!best) {
    bad("no circuit for the ensemble (" + tree_label(spec_) + ") with lookups of at most " +
        std::to_string(options.max_lookup_bits) + " bits: " + why_not +
        ". Raise max_lookup_bits or limit the trees' depth");
  }
  stats_ = best->stats;
  circuit_ = std::make_unique<runtime::FheCircuit>(std::move(best->circuit), options.runtime);
}

void TreeEnsemble::check_rows(const Matrix& x) const { models::check_rows(x, spec_.features); }

namespace {

// The leaf of `tree` reached by row x under `left(node, x)`.
template <class GoesLeft>
const TreeNode& reached_leaf(const Tree& tree, GoesLeft left) {
  std::size_t n = 0;
  while (!is_leaf(tree.nodes[n])) {
    n = static_cast<std::size_t>(left(n) ? tree.nodes[n].left : tree.nodes[n].right);
  }
  return tree.nodes[n];
}

}  // namespace

Matrix TreeEnsemble::float_decision_function(const Matrix& x) const {
  check_rows(x);
  const std::size_t C = spec_.outputs;
  const double weight =
      spec_.aggregation == Aggregation::kMean ? 1.0 / static_cast<double>(spec_.trees.size()) : 1.0;
  Matrix out{x.rows, C, std::vector<double>(x.rows * C)};
  for (std::size_t r = 0; r < x.rows; ++r) {
    const double* row = x.data.data() + r * x.cols;
    std::vector<double> sum(C, 0.0);
    for (const Tree& tree : spec_.trees) {
      const TreeNode& leaf = reached_leaf(tree, [&](std::size_t n) {
        const double v = row[tree.nodes[n].feature];
        return spec_.split == SplitRule::kLessEqual ? v <= tree.nodes[n].threshold
                                                    : v < tree.nodes[n].threshold;
      });
      for (std::size_t c = 0; c < C; ++c) sum[c] += leaf.value[c];
    }
    for (std::size_t c = 0; c < C; ++c) out.data[r * C + c] = spec_.base_score[c] + weight * sum[c];
  }
  return out;
}

Matrix TreeEnsemble::quantized_float_decision_function(const Matrix& x) const {
  const std::vector<std::int64_t> q = quantize_input(x);
  Matrix dequantized = x;
  const quant::InputQuantizer& input = circuit_->circuit().inputs.at(0);
  for (std::size_t i = 0; i < q.size(); ++i)
    dequantized.data[i] = input.dequantize(q[i], i % spec_.features);
  return float_decision_function(dequantized);
}

std::vector<std::int64_t> TreeEnsemble::quantize_input(const Matrix& x) const {
  check_rows(x);
  return quantize_rows(circuit_->circuit().inputs.at(0), x, circuit_->out_of_range());
}

std::vector<std::int64_t> TreeEnsemble::run_integers(std::span<const std::int64_t> levels,
                                                     std::size_t rows, runtime::Mode mode) {
  const std::size_t F = spec_.features;
  if (levels.size() != rows * F) {
    throw std::invalid_argument("quantized input: " + std::to_string(rows) + " rows of " +
                                std::to_string(F) + " features need " + std::to_string(rows * F) +
                                " values, found " + std::to_string(levels.size()));
  }
  const quant::InputQuantizer& input = circuit_->circuit().inputs.at(0);
  const auto top = (std::int64_t{1} << input.bits) - 1;
  std::vector<runtime::IntSample> samples(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    ir::IntTensor row({1, F});
    for (std::size_t f = 0; f < F; ++f) {
      const std::int64_t v = levels[r * F + f];
      if (v < 0 || v > top) {
        throw std::invalid_argument("quantized input [" + std::to_string(r) + ", " +
                                    std::to_string(f) + "] is " + std::to_string(v) +
                                    ", outside the grid 0.." + std::to_string(top));
      }
      row.data[f] = v;
    }
    samples[r].push_back(input.encode(row));
  }
  const std::vector<runtime::IntSample> results = circuit_->run_integers(samples, mode);
  std::vector<std::int64_t> out;
  out.reserve(rows * spec_.outputs);
  for (const runtime::IntSample& r : results)
    out.insert(out.end(), r[0].data.begin(), r[0].data.end());
  return out;
}

Matrix TreeEnsemble::dequantize_output(std::span<const std::int64_t> q, std::size_t rows) const {
  return dequantize_rows(circuit_->circuit().outputs.at(0), q, rows);
}

Matrix TreeEnsemble::decision_function(const Matrix& x, runtime::Mode mode) {
  const std::vector<std::int64_t> q = quantize_input(x);
  return dequantize_output(run_integers(q, x.rows, mode), x.rows);
}

Matrix TreeEnsemble::predict(const Matrix& x, runtime::Mode mode) {
  return apply_link(spec_.link, decision_function(x, mode));
}

}  // namespace fheml::models
