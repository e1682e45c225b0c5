#include "fheml/compiler/encoding.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace fheml::compiler {
namespace {

struct UnionFind {
  std::vector<std::uint32_t> parent;
  explicit UnionFind(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0u); }
  std::uint32_t find(std::uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(std::uint32_t a, std::uint32_t b) { parent[find(a)] = find(b); }
};

// Noise multipliers of each element of a node: sum c^2 over the bootstrapped ciphertexts (lookup
// outputs) and over the fresh ones (inputs) it is a linear combination of. A linear node's terms
// read distinct elements (the quantizer merges repeated ones), and the noises of distinct
// elements are independent, so the variances add; a linear node read by another contributes its
// own multipliers times c^2.
struct Multipliers {
  std::vector<double> bootstrapped, fresh;
};

std::vector<Multipliers> noise_multipliers(const ir::IntGraph& graph) {
  std::vector<Multipliers> out(graph.nodes.size());
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::IntNode& node = graph.nodes[i];
    const std::size_t count = ir::element_count(node.shape);
    Multipliers& m = out[i];
    m.bootstrapped.assign(count, node.op == ir::IntOp::kLookup ? 1.0 : 0.0);
    m.fresh.assign(count, node.op == ir::IntOp::kInput ? 1.0 : 0.0);
    if (node.op != ir::IntOp::kLinear) continue;
    for (std::size_t r = 0; r < count; ++r) {
      for (std::size_t k = node.linear.row_begin[r]; k < node.linear.row_begin[r + 1]; ++k) {
        const ir::IntLinearEntry& e = node.linear.entries[k];
        const Multipliers& source = out[node.inputs[e.source].index];
        const double c2 = static_cast<double>(e.coefficient) * static_cast<double>(e.coefficient);
        m.bootstrapped[r] += c2 * source.bootstrapped[e.element];
        m.fresh[r] += c2 * source.fresh[e.element];
      }
    }
  }
  return out;
}

double largest(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

// The bootstrapped multipliers split by the lookup node that produced the ciphertexts: per
// element, (lookup node, sum c^2) sorted by node. The partition search needs to know whose
// outputs a site reads (compiler/circuit.h, NoiseSite::sources).
using GroupRow = std::vector<std::pair<std::uint32_t, double>>;

std::vector<std::vector<GroupRow>> grouped_multipliers(const ir::IntGraph& graph) {
  std::vector<std::vector<GroupRow>> out(graph.nodes.size());
  for (std::uint32_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::IntNode& node = graph.nodes[i];
    const std::size_t count = ir::element_count(node.shape);
    std::vector<GroupRow>& rows = out[i];
    rows.resize(count);
    if (node.op == ir::IntOp::kLookup) {
      for (GroupRow& row : rows) row.emplace_back(i, 1.0);
    }
    if (node.op != ir::IntOp::kLinear) continue;
    for (std::size_t r = 0; r < count; ++r) {
      GroupRow& row = rows[r];
      for (std::size_t k = node.linear.row_begin[r]; k < node.linear.row_begin[r + 1]; ++k) {
        const ir::IntLinearEntry& e = node.linear.entries[k];
        const double c2 = static_cast<double>(e.coefficient) * static_cast<double>(e.coefficient);
        for (const auto& [group, m] : out[node.inputs[e.source].index][e.element]) {
          const auto it = std::lower_bound(row.begin(), row.end(), group,
                                           [](const std::pair<std::uint32_t, double>& a,
                                              std::uint32_t g) { return a.first < g; });
          if (it != row.end() && it->first == group) {
            it->second += c2 * m;
          } else {
            row.insert(it, {group, c2 * m});
          }
        }
      }
    }
  }
  return out;
}

// Per source lookup node: the largest multiplier over the elements, times `scale`.
std::vector<SourceShare> shares(const std::vector<GroupRow>& rows, double scale) {
  std::vector<SourceShare> out;
  for (const GroupRow& row : rows) {
    for (const auto& [group, m] : row) {
      const auto it = std::find_if(out.begin(), out.end(),
                                   [&](const SourceShare& s) { return s.node.index == group; });
      if (it == out.end()) {
        out.push_back({ir::ValueId{group}, m * scale});
      } else {
        it->nu2 = std::max(it->nu2, m * scale);
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const SourceShare& a, const SourceShare& b) { return a.node.index < b.node.index; });
  return out;
}

std::string label_of(const ir::IntGraph& graph, ir::ValueId id, bool output) {
  const ir::IntNode& n = graph.node(id);
  std::string label = std::string(output ? "output " : "lookup ") + "%" + std::to_string(id.index);
  if (!n.origin.empty()) label += " " + n.origin;
  return label;
}

}  // namespace

void assign_encoding(Circuit& circuit) {
  const ir::IntGraph& graph = circuit.graph;
  const std::size_t count = graph.nodes.size();
  UnionFind classes(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    if (graph.nodes[i].op != ir::IntOp::kLinear) continue;
    for (const ir::ValueId in : graph.nodes[i].inputs) classes.unite(i, in.index);
  }
  std::vector<std::uint32_t> class_width(count, 1);
  const auto need = [&](std::uint32_t node, std::uint32_t width, const std::string& why) {
    if (width > 62) {
      throw std::invalid_argument(why + " needs a " + std::to_string(width) +
                                  "-bit encoding; at most 62 fit the 64-bit torus with the "
                                  "noise: lower n_bits or set rounding_threshold_bits");
    }
    auto& w = class_width[classes.find(node)];
    w = std::max(w, width);
  };
  bool has_lookups = false;
  for (std::uint32_t i = 0; i < count; ++i) {
    const ir::IntNode& n = graph.nodes[i];
    if (n.op != ir::IntOp::kLookup) continue;
    has_lookups = true;
    need(n.inputs[0].index, n.lookup.bits + n.lookup.shift, label_of(graph, ir::ValueId{i}, false));
  }
  // Approximate outputs decode into a window that starts 2^(b-1) below the range and reach as
  // far above it: the noise may move a value that far out before the client clamps it back.
  const std::uint32_t noise_bits = circuit.output_noise_bits;
  if (noise_bits > kMaxOutputNoiseBits) {
    throw std::invalid_argument("output_noise_bits must be in 0.." +
                                std::to_string(kMaxOutputNoiseBits) + ", found " +
                                std::to_string(noise_bits));
  }
  const std::int64_t margin = noise_bits ? std::int64_t{1} << (noise_bits - 1) : 0;
  for (const ir::ValueId out : graph.outputs) {
    const ir::IntRange range = graph.node(out).range;
    if (noise_bits > 0 && range.bits() <= noise_bits) {
      throw std::invalid_argument(
          label_of(graph, out, true) + " spans " + std::to_string(range.bits()) + " bits ([" +
          std::to_string(range.lo) + ", " + std::to_string(range.hi) + "]): output_noise_bits " +
          std::to_string(noise_bits) +
          " would leave none of it exact; lower output_noise_bits (0: exact outputs)");
    }
    const std::uint32_t bits = ir::IntRange{range.lo - margin, range.hi + margin}.bits();
    need(out.index, bits > 1 ? bits - 1 : 1, label_of(graph, out, true));
  }
  circuit.width.assign(count, 1);
  for (std::uint32_t i = 0; i < count; ++i) circuit.width[i] = class_width[classes.find(i)];
  circuit.has_lookups = has_lookups;

  circuit.noise_sites.clear();
  const std::vector<Multipliers> multipliers = noise_multipliers(graph);
  const std::vector<std::vector<GroupRow>> grouped = grouped_multipliers(graph);
  for (std::uint32_t i = 0; i < count; ++i) {
    const ir::IntNode& n = graph.nodes[i];
    if (n.op != ir::IntOp::kLookup) continue;
    const Multipliers& m = multipliers[n.inputs[0].index];
    const int shift = static_cast<int>(circuit.width[n.inputs[0].index]) -
                      static_cast<int>(n.lookup.bits + n.lookup.shift);
    const double scale = std::ldexp(1.0, 2 * shift);
    circuit.noise_sites.push_back({ir::ValueId{i}, false, n.lookup.bits,
                                   largest(m.bootstrapped) * scale, largest(m.fresh) * scale, 0.0,
                                   label_of(graph, ir::ValueId{i}, false),
                                   shares(grouped[n.inputs[0].index], scale)});
  }
  for (const ir::ValueId out : graph.outputs) {
    const Multipliers& m = multipliers[out.index];
    // Checked at W - b bits: a half box of 2^(b-1) units of the output's integer.
    circuit.noise_sites.push_back({out, true, circuit.width[out.index] - noise_bits,
                                   largest(m.bootstrapped), largest(m.fresh), 0.0,
                                   label_of(graph, out, true), shares(grouped[out.index], 1.0)});
  }
}

}  // namespace fheml::compiler
