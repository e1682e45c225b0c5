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

std::vector<std::uint32_t> node_partitions(const compiler::Circuit& circuit,
                                           std::size_t partition_count) {
  const std::size_t nodes = circuit.graph.nodes.size();
  if (circuit.partition.empty()) return std::vector<std::uint32_t>(nodes, 0);
  if (circuit.partition.size() != nodes) {
    throw std::invalid_argument("circuit has " + std::to_string(circuit.partition.size()) +
                                " partition indices for " + std::to_string(nodes) + " nodes");
  }
  for (std::size_t i = 0; i < nodes; ++i) {
    if (circuit.partition[i] >= partition_count) {
      throw std::invalid_argument("node %" + std::to_string(i) + " is in partition " +
                                  std::to_string(circuit.partition[i]) + " of " +
                                  std::to_string(partition_count));
    }
  }
  return circuit.partition;
}

KeyClasses key_classes(const ir::IntGraph& graph, std::span<const std::uint32_t> partition,
                       std::span<const std::uint32_t> classes) {
  KeyClasses out;
  out.node.assign(graph.nodes.size(), 0);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::IntNode& node = graph.nodes[i];
    out.node[i] = classes[partition[i]];
    if (node.op == ir::IntOp::kLookup) {
      const KeyswitchPair pair{out.node.at(node.inputs[0].index), partition[i]};
      if (pair.from != classes[pair.to] &&
          std::find(out.keyswitch_pairs.begin(), out.keyswitch_pairs.end(), pair) ==
              out.keyswitch_pairs.end()) {
        out.keyswitch_pairs.push_back(pair);
      }
    }
    if (node.op != ir::IntOp::kLinear || node.inputs.empty()) continue;
    out.node[i] = out.node.at(node.inputs[0].index);
    for (const ir::ValueId in : node.inputs) {
      if (out.node.at(in.index) != out.node[i]) {
        throw std::invalid_argument("node %" + std::to_string(i) +
                                    " adds ciphertexts under two big keys (those of partitions " +
                                    std::to_string(out.node[i]) + " and " +
                                    std::to_string(out.node[in.index]) +
                                    "): a linear node's operands need one");
      }
    }
  }
  std::sort(out.keyswitch_pairs.begin(), out.keyswitch_pairs.end());
  return out;
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

std::vector<std::uint32_t> big_key_classes(std::span<const tfhe::PbsParameters> partitions) {
  std::vector<std::uint32_t> classes(partitions.size());
  for (std::size_t p = 0; p < partitions.size(); ++p) {
    const tfhe::PbsParameters& b = partitions[p];
    std::size_t q = 0;
    for (; q < p; ++q) {
      const tfhe::PbsParameters& a = partitions[q];
      // Sets of one k * N and GLWE noise share one big key, whatever their k and N.
      if (tfhe::same_big_key(a, b)) break;
      // The noise model takes an input under a big key of a set's own k * N for one under its
      // own big key, whose first n coefficients its small key shares (tfhe/noise.h,
      // variance_at_lookup): two big keys of one k * N (another GLWE noise; the compiler makes
      // none) would make that wrong.
      if (a.glwe_dimension.value * a.polynomial_size.value ==
          b.glwe_dimension.value * b.polynomial_size.value) {
        throw std::invalid_argument(
            "partitions " + std::to_string(q) + " and " + std::to_string(p) +
            " have big keys of one k*N but different GLWE noises; a circuit's big keys of one "
            "k*N must be one key");
      }
    }
    classes[p] = static_cast<std::uint32_t>(q);
  }
  return classes;
}

std::vector<tfhe::PbsParameters> partition_parameters(const compiler::Circuit& circuit) {
  // One partition is the circuit's parameters, whatever partitions[0] says (a caller may have
  // set parameters alone).
  if (circuit.partitions.size() <= 1) return {circuit.parameters};
  return circuit.partitions;
}

std::vector<tfhe::PbsParameters> partition_parameters(const ClientCircuit& circuit) {
  if (circuit.partitions.size() <= 1) return {circuit.parameters};
  return circuit.partitions;
}

Program::Program(compiler::Circuit circuit) : circuit_(std::move(circuit)) {
  const ir::IntGraph& graph = circuit_.graph;
  detail::check_widths(circuit_);
  partitions_ = partition_parameters(circuit_);
  if (!(partitions_[0] == circuit_.parameters)) {
    throw std::invalid_argument("partition 0 (" + tfhe::describe(partitions_[0]) +
                                ") is not the circuit's parameters (" +
                                tfhe::describe(circuit_.parameters) + ")");
  }
  partition_ = detail::node_partitions(circuit_, partitions_.size());
  detail::KeyClasses classes = detail::key_classes(graph, partition_, big_key_classes(partitions_));
  key_class_ = std::move(classes.node);
  keyswitch_pairs_ = std::move(classes.keyswitch_pairs);
  depth_ = detail::lookup_depths(graph);
  stage_count_ = depth_.empty() ? 0 : *std::max_element(depth_.begin(), depth_.end());
  tables_.resize(graph.nodes.size());
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
    const tfhe::PolynomialSize big_n = tfhe::lookup_polynomial_size(partitions_[partition_[i]]);
    std::vector<std::vector<tfhe::Torus>> encoded(1);
    for (const auto& table : lookup.tables) {
      encoded[0].clear();
      for (const std::int64_t v : table) encoded[0].push_back(detail::encode_at(v, out_width));
      // make_lookup_table says what polynomial size a too wide table needs.
      tables_[i].push_back(tfhe::make_lookup_table(big_n, tfhe::MessageBits{lookup.bits}, encoded));
    }
  }
}

bool Program::reads_own_big_key(std::uint32_t p) const {
  const std::vector<std::uint32_t> classes = big_key_classes(partitions_);
  const ir::IntGraph& graph = circuit_.graph;
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    if (graph.nodes[i].op != ir::IntOp::kLookup || partition_[i] != p) continue;
    if (key_class_[graph.nodes[i].inputs[0].index] == classes.at(p)) return true;
  }
  return false;
}

bool Program::single_big_key() const {
  const std::vector<std::uint32_t> classes = big_key_classes(partitions_);
  return std::all_of(classes.begin(), classes.end(), [](std::uint32_t c) { return c == 0; });
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
