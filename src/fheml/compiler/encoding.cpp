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

// Noise multiplier of each element of `node` relative to one fresh/bootstrapped ciphertext:
// linear nodes read independent sources (inputs and lookup outputs), so it is sum c^2.
std::vector<double> element_multipliers(const ir::IntNode& node) {
  const std::size_t count = ir::element_count(node.shape);
  if (node.op != ir::IntOp::kLinear) return std::vector<double>(count, 1.0);
  std::vector<double> m(count, 0.0);
  for (std::size_t r = 0; r < count; ++r) {
    for (std::size_t k = node.linear.row_begin[r]; k < node.linear.row_begin[r + 1]; ++k) {
      const double c = static_cast<double>(node.linear.entries[k].coefficient);
      m[r] += c * c;
    }
  }
  return m;
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
  for (const ir::ValueId out : graph.outputs) {
    const std::uint32_t bits = graph.node(out).range.bits();
    need(out.index, bits > 1 ? bits - 1 : 1, label_of(graph, out, true));
  }
  circuit.width.assign(count, 1);
  for (std::uint32_t i = 0; i < count; ++i) circuit.width[i] = class_width[classes.find(i)];
  circuit.has_lookups = has_lookups;

  circuit.noise_sites.clear();
  for (std::uint32_t i = 0; i < count; ++i) {
    const ir::IntNode& n = graph.nodes[i];
    if (n.op != ir::IntOp::kLookup) continue;
    const ir::IntNode& source = graph.node(n.inputs[0]);
    const auto m = element_multipliers(source);
    const int shift = static_cast<int>(circuit.width[n.inputs[0].index]) -
                      static_cast<int>(n.lookup.bits + n.lookup.shift);
    const double nu2 = *std::max_element(m.begin(), m.end()) * std::ldexp(1.0, 2 * shift);
    circuit.noise_sites.push_back(
        {ir::ValueId{i}, false, n.lookup.bits, nu2, 0.0, label_of(graph, ir::ValueId{i}, false)});
  }
  for (const ir::ValueId out : graph.outputs) {
    const auto m = element_multipliers(graph.node(out));
    circuit.noise_sites.push_back({out, true, circuit.width[out.index],
                                   *std::max_element(m.begin(), m.end()), 0.0,
                                   label_of(graph, out, true)});
  }
}

}  // namespace fheml::compiler
