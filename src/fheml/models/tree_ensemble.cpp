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

#include "fheml/runtime/statistics.h"

namespace fheml::models {
namespace {

[[noreturn]] void bad(const std::string& message) { throw std::invalid_argument(message); }

std::string where(std::size_t tree, std::size_t node) {
  return "tree " + std::to_string(tree) + ", node " + std::to_string(node);
}

// --- The shape of one tree: parents and depths (validate() has made sure it is a tree).

struct TreeShape {
  std::vector<std::int32_t> parent;  // -1 for the root
  std::vector<std::uint32_t> depth;
  std::vector<std::size_t> internal;  // internal nodes, in index order (parents first)
  std::size_t leaves = 0;
  std::uint32_t max_depth = 0;
};

TreeShape shape_of(const Tree& tree) {
  TreeShape s;
  s.parent.assign(tree.nodes.size(), -1);
  s.depth.assign(tree.nodes.size(), 0);
  for (std::size_t n = 0; n < tree.nodes.size(); ++n) {
    const TreeNode& node = tree.nodes[n];
    if (node.feature == TreeNode::kLeaf) {
      ++s.leaves;
      continue;
    }
    s.internal.push_back(n);
    for (const std::int32_t child : {node.left, node.right}) {
      s.parent[static_cast<std::size_t>(child)] = static_cast<std::int32_t>(n);
      s.depth[static_cast<std::size_t>(child)] = s.depth[n] + 1;
      s.max_depth = std::max(s.max_depth, s.depth[n] + 1);
    }
  }
  return s;
}

bool is_leaf(const TreeNode& n) { return n.feature == TreeNode::kLeaf; }

// --- Affine expressions over ciphertexts. Sources: 0 is the thermometer input; s >= 1 the
// checkpoint lookups of stage s (the index class). Output expressions read value lookups.

struct Term {
  std::uint32_t source = 0;
  std::size_t element = 0;
  std::int64_t coefficient = 0;
};

struct Expr {
  std::int64_t bias = 0;
  std::vector<Term> terms;

  Expr& add(const Expr& other, std::int64_t factor = 1) {
    bias += factor * other.bias;
    for (Term t : other.terms) {
      t.coefficient *= factor;
      terms.push_back(t);
    }
    return *this;
  }
  // Equal (source, element) terms merged, zero coefficients dropped.
  void simplify() {
    std::map<std::pair<std::uint32_t, std::size_t>, std::int64_t> merged;
    for (const Term& t : terms) merged[{t.source, t.element}] += t.coefficient;
    terms.clear();
    for (const auto& [key, c] : merged)
      if (c != 0) terms.push_back({key.first, key.second, c});
  }
};

Expr constant(std::int64_t v) { return Expr{v, {}}; }

// One lookup element to build: its index and its table (2^bits entries).
struct LookupRequest {
  Expr index;
  std::vector<std::int64_t> table;
  std::string origin;
};

struct Stage {
  std::vector<LookupRequest> values;       // outputs: read by the output node only
  std::vector<LookupRequest> checkpoints;  // 0/1 reach indicators read by later indices
};

// The integer graph under construction.
struct Plan {
  std::uint32_t bits = 0;
  std::vector<Stage> stages;  // stage s + 1 at index s
  std::vector<Expr> outputs;  // Term.source = stage (1-based) of a value lookup
  std::vector<std::int64_t> out_lo, out_hi;
  TreeCircuitStats stats;

  // Adds a value lookup at `stage` (1-based); returns its term source and element.
  Term add_value(std::uint32_t stage, LookupRequest r) {
    if (stages.size() < stage) stages.resize(stage);
    stages[stage - 1].values.push_back(std::move(r));
    return Term{stage, stages[stage - 1].values.size() - 1, 1};
  }
  Term add_checkpoint(std::uint32_t stage, LookupRequest r) {
    if (stages.size() < stage) stages.resize(stage);
    stages[stage - 1].checkpoints.push_back(std::move(r));
    return Term{stage, stages[stage - 1].checkpoints.size() - 1, 1};
  }
};

// The stage after the latest checkpoint an index reads (1 when it reads inputs only).
std::uint32_t stage_of(const Expr& index) {
  std::uint32_t s = 0;
  for (const Term& t : index.terms) s = std::max(s, t.source);
  return s + 1;
}

// --- Per-tree circuits.

struct TreeContext {
  const Tree& tree;
  std::size_t index;  // of the tree in the ensemble
  TreeShape shape;
  std::vector<Expr> goes_left;                  // per internal node: [x_f <= t] on the grid
  std::vector<std::size_t> outputs;             // outputs this tree moves (non-constant)
  std::vector<std::vector<std::int64_t>> leaf;  // per node, per output: quantized leaf value
};

// The split bit's expression on the edge parent -> child: c or 1 - c.
Expr edge(const TreeContext& t, std::size_t child) {
  const auto parent = static_cast<std::size_t>(t.shape.parent[child]);
  const Expr& c = t.goes_left[parent];
  if (static_cast<std::size_t>(t.tree.nodes[parent].left) == child) return c;
  return constant(1).add(c, -1);
}

// Sum of the edge bits from `ancestor` down to `node` (d_node - d_ancestor terms).
Expr path_sum(const TreeContext& t, std::size_t ancestor, std::size_t node) {
  Expr sum;
  for (std::size_t n = node; n != ancestor; n = static_cast<std::size_t>(t.shape.parent[n]))
    sum.add(edge(t, n));
  return sum;
}

constexpr std::size_t kInfeasible = std::numeric_limits<std::size_t>::max() / 4;

// A block: the internal nodes of m's subtree down to relative depth < h.
struct Block {
  std::vector<std::size_t> nodes;  // internal nodes in the block, breadth first
  std::vector<std::size_t> exits;  // internal nodes at relative depth h
  std::size_t leaves = 0;
};

Block block_of(const TreeContext& t, std::size_t m, std::uint32_t h) {
  Block b;
  std::vector<std::size_t> level{m};
  for (std::uint32_t r = 0; r < h && !level.empty(); ++r) {
    std::vector<std::size_t> next;
    for (const std::size_t n : level) {
      b.nodes.push_back(n);
      for (const std::int32_t child : {t.tree.nodes[n].left, t.tree.nodes[n].right}) {
        const auto c = static_cast<std::size_t>(child);
        if (is_leaf(t.tree.nodes[c])) {
          ++b.leaves;
        } else {
          next.push_back(c);
        }
      }
    }
    level = std::move(next);
  }
  b.exits = std::move(level);
  return b;
}

// Scheme "value blocks": per block with leaves, one lookup per moved output returning the
// reached leaf's value. Returns the cost (lookups) and the chosen height per internal node;
// kInfeasible when some leaf cannot be reached within `bits`.
std::pair<std::size_t, std::vector<std::uint32_t>> plan_value_blocks(const TreeContext& t,
                                                                     std::uint32_t bits) {
  const std::size_t n = t.tree.nodes.size();
  std::vector<std::size_t> best(n, kInfeasible);
  std::vector<std::uint32_t> height(n, 0);
  const std::size_t per_block = t.outputs.size();
  for (auto it = t.shape.internal.rbegin(); it != t.shape.internal.rend(); ++it) {
    const std::size_t m = *it;
    const std::uint64_t reach_values = t.shape.depth[m] + 1;
    for (std::uint32_t h = 1; h <= bits; ++h) {
      const Block b = block_of(t, m, h);
      if (b.nodes.size() > bits || (reach_values << b.nodes.size()) > (std::uint64_t{1} << bits))
        break;
      std::size_t cost = b.leaves > 0 ? per_block : 0;
      for (const std::size_t e : b.exits) cost = std::min(kInfeasible, cost + best[e]);
      if (cost < best[m]) {
        best[m] = cost;
        height[m] = h;
      }
      if (b.exits.empty()) break;  // deeper blocks are the same block
    }
  }
  return {best[0], std::move(height)};
}

// Depth step between checkpoints of the indicator scheme: an index then spans at most
// interval + 2 values.
std::uint32_t checkpoint_interval(std::uint32_t bits) {
  return bits >= 2 ? (std::uint32_t{1} << bits) - 2 : 0;
}

// Scheme "reach indicators": one lookup per internal node (the indicator of its left child),
// plus one per checkpoint.
std::size_t indicator_cost(const TreeContext& t, std::uint32_t bits) {
  const std::uint32_t k = checkpoint_interval(bits);
  if (k == 0 || t.outputs.empty()) return t.outputs.empty() ? 0 : kInfeasible;
  std::size_t checkpoints = 0;
  for (const std::size_t m : t.shape.internal)
    if (t.shape.depth[m] > 0 && t.shape.depth[m] % k == 0) ++checkpoints;
  return t.shape.internal.size() + checkpoints;
}

std::vector<std::int64_t> padded(std::vector<std::int64_t> table, std::uint32_t bits) {
  table.resize(std::size_t{1} << bits, 0);
  return table;
}

void emit_value_blocks(const TreeContext& t, const std::vector<std::uint32_t>& height, Plan& plan) {
  std::vector<std::size_t> roots{0};
  while (!roots.empty()) {
    const std::size_t m = roots.back();
    roots.pop_back();
    const Block b = block_of(t, m, height[m]);
    roots.insert(roots.end(), b.exits.begin(), b.exits.end());
    if (b.leaves == 0) continue;
    // index = (s_m << |block|) + sum_i c_{node i} << i
    const std::size_t width = b.nodes.size();
    Expr index = constant(0).add(path_sum(t, 0, m), std::int64_t{1} << width);
    std::map<std::size_t, std::size_t> position;
    for (std::size_t i = 0; i < width; ++i) {
      index.add(t.goes_left[b.nodes[i]], std::int64_t{1} << i);
      position[b.nodes[i]] = i;
    }
    index.simplify();
    const std::size_t size = (t.shape.depth[m] + 1) << width;
    // The leaf each index reaches inside the block, or none.
    std::vector<std::int64_t> reached(size, -1);
    for (std::size_t idx = 0; idx < size; ++idx) {
      if ((idx >> width) != t.shape.depth[m]) continue;
      std::size_t node = m;
      while (!is_leaf(t.tree.nodes[node]) && position.count(node)) {
        const bool left = (idx >> position[node]) & 1;
        node = static_cast<std::size_t>(left ? t.tree.nodes[node].left : t.tree.nodes[node].right);
      }
      if (is_leaf(t.tree.nodes[node])) reached[idx] = static_cast<std::int64_t>(node);
    }
    for (std::size_t o = 0; o < t.outputs.size(); ++o) {
      std::vector<std::int64_t> table(size, 0);
      for (std::size_t idx = 0; idx < size; ++idx)
        if (reached[idx] >= 0) table[idx] = t.leaf[static_cast<std::size_t>(reached[idx])][o];
      const Term v = plan.add_value(
          1, {index, padded(std::move(table), plan.bits),
              "tree " + std::to_string(t.index) + " leaves below node " + std::to_string(m)});
      plan.outputs[t.outputs[o]].terms.push_back(v);
    }
    ++plan.stats.value_blocks;
  }
}

void emit_indicators(const TreeContext& t, Plan& plan) {
  const std::uint32_t k = checkpoint_interval(plan.bits);
  const std::size_t n = t.tree.nodes.size();
  // Per node: its checkpoint's reach indicator (an index-class term) when it has one.
  std::vector<Expr> checkpoint(n);
  std::vector<std::int64_t> anchor(n, -1);  // the checkpoint node an index counts from; -1: root
  std::vector<Expr> reach(n);               // output-class reach indicator of every node
  reach[0] = constant(1);
  const auto lookup_on = [&](const Expr& index, std::size_t target, const std::string& origin) {
    std::vector<std::int64_t> table(std::size_t{1} << plan.bits, 0);
    table.at(target) = 1;
    return LookupRequest{index, std::move(table), origin};
  };
  for (const std::size_t m : t.shape.internal) {
    const std::uint32_t d = t.shape.depth[m];
    if (m != 0) anchor[m] = anchor[static_cast<std::size_t>(t.shape.parent[m])];
    if (d > 0 && d % k == 0) {
      // m becomes a checkpoint: [m reached], counted from the previous checkpoint.
      Expr index;
      std::size_t target = 0;
      if (anchor[m] < 0) {
        index = path_sum(t, 0, m);
        target = d;
      } else {
        const auto a = static_cast<std::size_t>(anchor[m]);
        index = checkpoint[a];
        index.add(path_sum(t, a, m));
        target = d - t.shape.depth[a] + 1;
      }
      index.simplify();
      const Term chk = plan.add_checkpoint(
          stage_of(index),
          lookup_on(index, target,
                    "tree " + std::to_string(t.index) + " reaches node " + std::to_string(m)));
      checkpoint[m] = Expr{0, {chk}};
      anchor[m] = static_cast<std::int64_t>(m);
    }
    // [left child reached] = [anchor term + path bits + c_m == target]
    Expr index;
    std::size_t target = 0;
    if (anchor[m] < 0) {
      index = path_sum(t, 0, m);
      target = d + 1;
    } else {
      const auto a = static_cast<std::size_t>(anchor[m]);
      index = checkpoint[a];
      index.add(path_sum(t, a, m));
      target = d - t.shape.depth[a] + 2;
    }
    index.add(t.goes_left[m]);
    index.simplify();
    const auto left = static_cast<std::size_t>(t.tree.nodes[m].left);
    const auto right = static_cast<std::size_t>(t.tree.nodes[m].right);
    const Term l = plan.add_value(
        stage_of(index),
        lookup_on(index, target,
                  "tree " + std::to_string(t.index) + " reaches node " + std::to_string(left)));
    reach[left] = Expr{0, {l}};
    reach[right] = reach[m];
    reach[right].add(reach[left], -1);
    ++plan.stats.reach_indicators;
  }
  for (std::size_t node = 0; node < n; ++node) {
    if (!is_leaf(t.tree.nodes[node])) continue;
    for (std::size_t o = 0; o < t.outputs.size(); ++o)
      plan.outputs[t.outputs[o]].add(reach[node], t.leaf[node][o]);
  }
}

// Bounds of an expression given the ranges of its sources.
std::pair<std::int64_t, std::int64_t> bounds(const Expr& e,
                                             const std::vector<ir::IntRange>& source_range) {
  std::int64_t lo = e.bias, hi = e.bias;
  for (const Term& t : e.terms) {
    const ir::IntRange& r = source_range.at(t.source);
    const std::int64_t a = t.coefficient * r.lo, b = t.coefficient * r.hi;
    lo += std::min(a, b);
    hi += std::max(a, b);
  }
  return {lo, hi};
}

ir::IntNode linear_node(std::span<const Expr> rows, const std::vector<ir::ValueId>& sources,
                        const std::vector<ir::IntRange>& source_range, std::string origin,
                        std::optional<ir::IntRange> range = std::nullopt) {
  ir::IntNode node;
  node.op = ir::IntOp::kLinear;
  node.inputs = sources;
  node.shape = {1, rows.size()};
  node.origin = std::move(origin);
  node.linear.row_begin.push_back(0);
  std::int64_t lo = std::numeric_limits<std::int64_t>::max();
  std::int64_t hi = std::numeric_limits<std::int64_t>::min();
  for (const Expr& row : rows) {
    for (const Term& t : row.terms) {
      node.linear.entries.push_back(
          {t.source, static_cast<std::uint32_t>(t.element), t.coefficient});
    }
    node.linear.row_begin.push_back(node.linear.entries.size());
    node.linear.bias.push_back(row.bias);
    const auto [l, h] = bounds(row, source_range);
    lo = std::min(lo, l);
    hi = std::max(hi, h);
  }
  node.range = range.value_or(ir::IntRange{lo, hi});
  return node;
}

ir::IntNode lookup_node(ir::ValueId index, std::vector<LookupRequest>& requests, std::uint32_t bits,
                        std::string origin) {
  ir::IntNode node;
  node.op = ir::IntOp::kLookup;
  node.inputs = {index};
  node.shape = {1, requests.size()};
  node.origin = std::move(origin);
  node.lookup.bits = bits;
  std::map<std::vector<std::int64_t>, std::uint32_t> distinct;
  std::int64_t lo = 0, hi = 0;
  for (LookupRequest& r : requests) {
    for (const std::int64_t v : r.table) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const auto [it, added] =
        distinct.emplace(std::move(r.table), static_cast<std::uint32_t>(node.lookup.tables.size()));
    if (added) node.lookup.tables.push_back(it->first);
    node.lookup.table_of_element.push_back(it->second);
  }
  node.range = {lo, hi};
  return node;
}

// Rows whose Term.source numbers `operands` (absent ones unused) -> a linear node reading only
// the operands used, Term.source rewritten to the operand's position.
ir::IntNode linear_over(std::vector<Expr> rows,
                        const std::vector<std::optional<ir::ValueId>>& operands,
                        const std::vector<ir::IntRange>& ranges, std::string origin,
                        std::optional<ir::IntRange> range = std::nullopt) {
  std::vector<std::int64_t> position(operands.size(), -1);
  std::vector<ir::ValueId> inputs;
  std::vector<ir::IntRange> input_ranges;
  for (Expr& row : rows) {
    row.simplify();
    for (Term& t : row.terms) {
      if (!operands.at(t.source)) throw std::logic_error("tree circuit: term of a missing operand");
      if (position[t.source] < 0) {
        position[t.source] = static_cast<std::int64_t>(inputs.size());
        inputs.push_back(*operands[t.source]);
        input_ranges.push_back(ranges.at(t.source));
      }
      t.source = static_cast<std::uint32_t>(position[t.source]);
    }
  }
  return linear_node(rows, inputs, input_ranges, std::move(origin), range);
}

// Builds the integer graph of a plan: per stage an index node and a lookup node for the value
// lookups and for the checkpoints, then the output node over the value lookups. The output
// node reads lookups only, so the outputs' (wide) encoding class never holds a lookup's index.
quant::QuantizedGraph assemble(Plan& plan, const quant::InputQuantizer& input,
                               const quant::OutputDequantizer& output) {
  quant::QuantizedGraph q;
  q.inputs = {input};
  q.outputs = {output};
  ir::IntGraph& g = q.graph;
  ir::IntNode in;
  in.op = ir::IntOp::kInput;
  in.shape = input.encoded_shape();
  in.range = {0, 1};
  in.origin = "x (thermometer code)";
  // Index-class operands: 0 the input, s the checkpoints of stage s. Output operands: s the
  // value lookups of stage s (0 unused).
  std::vector<std::optional<ir::ValueId>> index_operands{g.add(std::move(in))};
  std::vector<ir::IntRange> index_ranges{{0, 1}};
  std::vector<std::optional<ir::ValueId>> value_operands{std::nullopt};
  std::vector<ir::IntRange> value_ranges{{0, 0}};
  for (std::size_t s = 0; s < plan.stages.size(); ++s) {
    Stage& stage = plan.stages[s];
    const std::string n = std::to_string(s + 1);
    std::optional<ir::ValueId> checkpoints, values;
    if (!stage.checkpoints.empty()) {
      std::vector<Expr> rows;
      for (const auto& r : stage.checkpoints) rows.push_back(r.index);
      const ir::ValueId idx =
          g.add(linear_over(rows, index_operands, index_ranges, "reach indices " + n));
      checkpoints = g.add(lookup_node(idx, stage.checkpoints, plan.bits, "reach " + n));
    }
    if (!stage.values.empty()) {
      std::vector<Expr> rows;
      for (const auto& r : stage.values) rows.push_back(r.index);
      const ir::ValueId idx =
          g.add(linear_over(rows, index_operands, index_ranges, "leaf indices " + n));
      values = g.add(lookup_node(idx, stage.values, plan.bits, "leaves " + n));
    }
    index_operands.push_back(checkpoints);
    index_ranges.push_back({0, 1});
    value_operands.push_back(values);
    value_ranges.push_back(values ? g.node(*values).range : ir::IntRange{0, 0});
  }
  const ir::IntRange tight{*std::min_element(plan.out_lo.begin(), plan.out_lo.end()),
                           *std::max_element(plan.out_hi.begin(), plan.out_hi.end())};
  g.outputs = {
      g.add(linear_over(plan.outputs, value_operands, value_ranges, "sum over trees", tight))};
  return q;
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

  // 1. Per lookup width (the compiler's latency estimate picks one), the widest leaf values
  //    whose sum decrypts under the failure budget: a leaf value multiplies a reach indicator's
  //    bootstrap noise, so wide leaves can need a lower-noise parameter set, or find none.
  std::optional<Candidate> best;
  for (std::uint32_t bits = 1; bits <= options.max_lookup_bits; ++bits) {
    for (std::uint32_t leaf_bits = options.leaf_bits; leaf_bits >= kMinLeafBits; --leaf_bits) {
      bool too_deep = false;
      std::optional<Candidate> c = build(bits, leaf_bits, too_deep);
      if (too_deep) break;  // narrower leaves do not make the trees shallower
      if (!c) continue;
      if (!best || c->ms < best->ms) best = std::move(c);
      break;
    }
  }
  if (!best) {
    bad("no circuit for the ensemble (" + tree_label(spec_) + ") with lookups of at most " +
        std::to_string(options.max_lookup_bits) + " bits: " + why_not +
        ". Raise max_lookup_bits or limit the trees' depth");
  }
  // 2. Up to kLeafBitsTradeoff bits fewer for the leaves where each bit buys at least 10% of
  //    latency (a cheaper parameter set): on a 50-tree forest of 3 classes, 8 -> 6 bits cut the
  //    bootstrap from 33 to 12 ms (bench/README.md, trees).
  for (std::uint32_t leaf_bits = best->stats.leaf_bits - 1;
       leaf_bits >=
       std::max(kMinLeafBits, options.leaf_bits - std::min(options.leaf_bits, kLeafBitsTradeoff));
       --leaf_bits) {
    bool too_deep = false;
    std::optional<Candidate> c = build(best->stats.lookup_bits, leaf_bits, too_deep);
    if (!c || c->ms > 0.9 * best->ms) break;
    best = std::move(c);
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
  return quantize_rows(circuit_->circuit().inputs.at(0), x);
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
