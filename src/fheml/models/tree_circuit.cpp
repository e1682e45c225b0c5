#include "fheml/models/tree_circuit.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

namespace fheml::models::tree_circuit {

// --- The shape of one tree: parents and depths (validate() has made sure it is a tree).

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

// The stage after the latest checkpoint an index reads (1 when it reads inputs only).
std::uint32_t stage_of(const Expr& index) {
  std::uint32_t s = 0;
  for (const Term& t : index.terms) s = std::max(s, t.source);
  return s + 1;
}

// --- Per-tree circuits.

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

}  // namespace fheml::models::tree_circuit
