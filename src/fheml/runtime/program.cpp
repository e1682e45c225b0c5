#include <algorithm>
#include <stdexcept>
#include <string>

#include "fheml/runtime/detail.h"
#include "fheml/runtime/runtime.h"

namespace fheml::runtime {
namespace detail {

std::vector<std::uint32_t> lookup_depths(const ir::IntGraph& graph) {
  std::vector<std::uint32_t> depth(graph.nodes.size(), 0);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::IntNode& node = graph.nodes[i];
    std::uint32_t d = 0;
    for (const ir::ValueId in : node.inputs) d = std::max(d, depth.at(in.index));
    depth[i] = node.op == ir::IntOp::kLookup ? d + 1 : d;
  }
  return depth;
}

void check_widths(const compiler::Circuit& circuit) {
  const std::size_t nodes = circuit.graph.nodes.size();
  if (circuit.width.size() != nodes) {
    throw std::invalid_argument("circuit has " + std::to_string(circuit.width.size()) +
                                " widths for " + std::to_string(nodes) +
                                " nodes: run compiler::assign_encoding first");
  }
  for (std::size_t i = 0; i < nodes; ++i) {
    if (circuit.width[i] < 1 || circuit.width[i] > 62) {
      throw std::invalid_argument("node %" + std::to_string(i) + " has width " +
                                  std::to_string(circuit.width[i]) +
                                  "; the 64-bit torus holds widths 1..62");
    }
  }
}

}  // namespace detail

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kDisable:
      return "disable";
    case Mode::kSimulate:
      return "simulate";
    case Mode::kExecute:
      return "execute";
  }
  return "?";
}

Program::Program(compiler::Circuit circuit) : circuit_(std::move(circuit)) {
  const ir::IntGraph& graph = circuit_.graph;
  detail::check_widths(circuit_);
  depth_ = detail::lookup_depths(graph);
  stage_count_ = depth_.empty() ? 0 : *std::max_element(depth_.begin(), depth_.end());
  tables_.resize(graph.nodes.size());
  const tfhe::PolynomialSize big_n = circuit_.parameters.polynomial_size;
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::IntNode& node = graph.nodes[i];
    if (node.op != ir::IntOp::kLookup) continue;
    const std::string name = "lookup %" + std::to_string(i);
    if (!circuit_.has_lookups) {
      throw std::invalid_argument(name +
                                  " in a circuit marked without lookups: run "
                                  "compiler::assign_encoding to set has_lookups");
    }
    const ir::IntLookup& lookup = node.lookup;
    const std::uint32_t in_width = circuit_.width[node.inputs[0].index];
    if (in_width < lookup.bits + lookup.shift) {
      throw std::invalid_argument(name + " reads " + std::to_string(lookup.bits) +
                                  " bits shifted by " + std::to_string(lookup.shift) +
                                  " from a class of width " + std::to_string(in_width) +
                                  "; it needs width >= bits + shift: run "
                                  "compiler::assign_encoding");
    }
    const std::uint32_t out_width = circuit_.width[i];
    std::vector<std::vector<tfhe::Torus>> encoded(1);
    for (const auto& table : lookup.tables) {
      encoded[0].clear();
      for (const std::int64_t v : table) encoded[0].push_back(detail::encode_at(v, out_width));
      // make_lookup_table says what polynomial size a too wide table needs.
      tables_[i].push_back(tfhe::make_lookup_table(big_n, tfhe::MessageBits{lookup.bits}, encoded));
    }
  }
}

std::vector<IntSample> run_clear(const compiler::Circuit& circuit,
                                 std::span<const IntSample> samples) {
  detail::check_widths(circuit);
  const ir::IntGraph& graph = circuit.graph;
  std::vector<IntSample> results;
  results.reserve(samples.size());
  for (const IntSample& sample : samples) {
    IntSample outputs = ir::evaluate(graph, sample);
    for (std::size_t o = 0; o < outputs.size(); ++o) {
      const ir::ValueId id = graph.outputs[o];
      const std::int64_t lo = graph.node(id).range.lo;
      for (auto& v : outputs[o].data) v = detail::wrap_into_window(v, circuit.width[id.index], lo);
    }
    results.push_back(std::move(outputs));
  }
  return results;
}

}  // namespace fheml::runtime
