#include "fheml/compiler/compile.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/compiler/encoding.h"
#include "fheml/tfhe/circuit_parameters.h"

namespace fheml::compiler {

Circuit compile(const ir::FloatGraph& graph, std::span<const quant::Sample> calibration,
                const CompileOptions& options) {
  const bool has_max_pool =
      std::any_of(graph.nodes().begin(), graph.nodes().end(),
                  [](const ir::FloatNode& n) { return n.op == ir::FloatOp::kMaxPool; });
  quant::QuantizeOptions q = options.quantization;
  if (!has_max_pool || options.refresh_max_pool) {
    q.refresh_max_pool = options.refresh_max_pool.value_or(false);
    return compile(quant::quantize(graph, calibration, q), options);
  }
  // Both ways, the cheaper kept; one that does not compile leaves the other.
  std::optional<Circuit> plain;
  std::string plain_error;
  try {
    q.refresh_max_pool = false;
    plain = compile(quant::quantize(graph, calibration, q), options);
  } catch (const std::invalid_argument& e) {
    plain_error = e.what();
  }
  try {
    q.refresh_max_pool = true;
    Circuit refreshed = compile(quant::quantize(graph, calibration, q), options);
    if (!plain || estimated_cost(refreshed) < estimated_cost(*plain)) return refreshed;
  } catch (const std::invalid_argument&) {
    if (!plain) throw std::invalid_argument(plain_error);
  }
  return std::move(*plain);
}

double estimated_cost(const Circuit& circuit) {
  if (!circuit.has_lookups) return 0;
  double cost = 0;
  for (std::size_t i = 0; i < circuit.graph.nodes.size(); ++i) {
    const ir::IntNode& n = circuit.graph.nodes[i];
    if (n.op != ir::IntOp::kLookup) continue;
    const tfhe::PbsParameters& p = circuit.partition.empty()
                                       ? circuit.parameters
                                       : circuit.partitions.at(circuit.partition[i]);
    cost += static_cast<double>(ir::element_count(n.shape)) * tfhe::estimated_cost(p);
  }
  return cost;
}

Circuit compile(quant::QuantizedGraph quantized, const CompileOptions& options) {
  Circuit circuit;
  circuit.graph = std::move(quantized.graph);
  circuit.inputs = std::move(quantized.inputs);
  circuit.outputs = std::move(quantized.outputs);
  circuit.output_noise_bits = options.output_noise_bits;
  assign_encoding(circuit);
  choose_parameters(circuit, options);
  return circuit;
}

std::string_view to_string(Profile profile) {
  return profile == Profile::kIndCpaD ? "ind-cpa-d" : "standard";
}

Profile parse_profile(std::string_view name) {
  if (name == "standard") return Profile::kStandard;
  if (name == "ind-cpa-d") return Profile::kIndCpaD;
  throw std::invalid_argument("profile must be 'standard' or 'ind-cpa-d', found '" +
                              std::string(name) + "'");
}

bool meets_ind_cpa_d(const Circuit& circuit) {
  constexpr double kTolerance = 1e-9;  // bits: a bound computed as log2(2^-64) may round
  if (circuit.log2_p_error > kIndCpaDLog2PError + kTolerance) return false;
  for (const NoiseSite& site : circuit.noise_sites) {
    if (site.log2_p_fail > kIndCpaDLog2PError + kTolerance) return false;
  }
  if (tfhe::achieved_security(circuit.parameters) < tfhe::SecurityLevel::k132) return false;
  for (const tfhe::PbsParameters& p : circuit.partitions) {
    if (tfhe::achieved_security(p) < tfhe::SecurityLevel::k132) return false;
  }
  return true;
}

namespace {

using tfhe::same_big_key;

// Why each partition beyond the cheapest of its big key exists: what would fail if its lookups
// took that partition's set instead (every partition is within the bound as chosen). A big key
// of its own is named as such.
std::string partition_reasons(std::span<const tfhe::NoiseConstraint> constraints,
                              const tfhe::CircuitParameters& found,
                              const tfhe::CircuitSearchOptions& search) {
  std::string out;
  for (std::size_t p = 0; p < found.partitions.size(); ++p) {
    std::size_t cheapest = p;
    for (std::size_t q = 0; q < found.partitions.size(); ++q) {
      if (same_big_key(found.partitions[q], found.partitions[p]) &&
          tfhe::estimated_cost(found.partitions[q]) <
              tfhe::estimated_cost(found.partitions[cheapest]))
        cheapest = q;
    }
    if (p == cheapest) {
      std::size_t first = 0;
      while (!same_big_key(found.partitions[first], found.partitions[p])) ++first;
      if (first == p && p > 0) {
        out += "; P" + std::to_string(p) + " has a big key of its own (k*N=" +
               std::to_string(found.partitions[p].glwe_dimension.value *
                              found.partitions[p].polynomial_size.value) +
               "): no linear part adds its lookups' outputs to another key's";
      }
      continue;
    }
    std::vector<std::uint32_t> moved = found.group_partition;
    for (std::uint32_t& q : moved) q = q == p ? static_cast<std::uint32_t>(cheapest) : q;
    const std::uint32_t inputs = found.input_partition == p
                                     ? static_cast<std::uint32_t>(cheapest)
                                     : found.input_partition;
    const tfhe::CircuitParameters what_if = tfhe::evaluate_circuit_parameters(
        constraints, found.partitions, moved, search, inputs);
    std::size_t worst = 0;
    for (std::size_t i = 1; i < what_if.log2_p_fail.size(); ++i) {
      if (what_if.log2_p_fail[i] > what_if.log2_p_fail[worst]) worst = i;
    }
    std::ostringstream line;
    line.precision(3);
    line << "; P" << p << " is not P" << cheapest << " (" << std::fixed
         << tfhe::estimated_cost(found.partitions[p]) /
                tfhe::estimated_cost(found.partitions[cheapest])
         << "x its cost) because in P" << cheapest << " " << constraints[worst].label
         << (what_if.within_bound ? " would still meet the bound at p 2^" : " would fail with p 2^")
         << what_if.log2_p_fail[worst];
    out += line.str();
  }
  return out;
}

// Whether every linear node adds ciphertexts under one big key, each node under its partition's
// (lookups: their own; inputs: the inputs'; linear nodes: their operands'). The search keeps
// operands together through the noise sources; a node those miss would be refused by
// runtime::Program, so compile checks first.
bool one_key_per_linear_node(const ir::IntGraph& graph,
                             std::span<const tfhe::PbsParameters> partitions,
                             std::span<const std::uint32_t> partition) {
  std::vector<std::uint32_t> key(graph.nodes.size(), 0);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::IntNode& node = graph.nodes[i];
    key[i] = partition[i];
    if (node.op != ir::IntOp::kLinear || node.inputs.empty()) continue;
    key[i] = key[node.inputs[0].index];
    for (const ir::ValueId in : node.inputs) {
      if (!same_big_key(partitions[key[in.index]], partitions[key[i]])) return false;
    }
  }
  return true;
}

}  // namespace

void choose_parameters(Circuit& circuit, const CompileOptions& options) {
  if (options.p_error && options.global_p_error) {
    throw std::invalid_argument(
        "set either p_error (per bootstrap) or global_p_error (whole circuit), not both");
  }
  const auto check = [](const char* name, double p) {
    if (!(p > 0.0 && p < 1.0)) {
      std::ostringstream found;
      found << p;  // %g: 1e-50 reads as itself, not as 0.000000
      throw std::invalid_argument(std::string(name) + " must be in (0, 1), found " + found.str());
    }
  };
  if (options.p_error) check("p_error", *options.p_error);
  if (options.global_p_error) check("global_p_error", *options.global_p_error);
  if (options.max_partitions < 1 || options.max_partitions > kMaxPartitions) {
    throw std::invalid_argument("max_partitions must be in 1.." + std::to_string(kMaxPartitions) +
                                " (1: one parameter set for the whole circuit), found " +
                                std::to_string(options.max_partitions));
  }
  const bool ind_cpa_d = options.profile == Profile::kIndCpaD;
  if (ind_cpa_d) {
    const auto at_most_2m64 = [](const char* name, double p) {
      if (std::log2(p) > kIndCpaDLog2PError + 1e-9) {
        std::ostringstream found;
        found << p;
        throw std::invalid_argument(std::string("the ind-cpa-d profile needs ") + name +
                                    " <= 2^-64 (5.4e-20), found " + found.str() +
                                    ": decryption failures seen by the server leak the key");
      }
    };
    if (options.p_error) at_most_2m64("p_error", *options.p_error);
    if (options.global_p_error) at_most_2m64("global_p_error", *options.global_p_error);
  }

  // Groups of the partition search: one per lookup node.
  std::vector<std::uint32_t> group_of(circuit.graph.nodes.size(), 0);
  std::vector<ir::ValueId> group_node;
  for (const NoiseSite& site : circuit.noise_sites) {
    if (site.is_output) continue;
    group_of[site.node.index] = static_cast<std::uint32_t>(group_node.size());
    group_node.push_back(site.node);
  }
  std::vector<tfhe::NoiseConstraint> constraints;
  for (const NoiseSite& site : circuit.noise_sites) {
    tfhe::NoiseConstraint c;
    c.kind = site.is_output ? tfhe::NoiseConstraint::Kind::kDecrypt
                            : tfhe::NoiseConstraint::Kind::kLookup;
    c.bits = tfhe::MessageBits{site.bits};
    c.nu2 = site.nu2;
    c.nu2_fresh = site.nu2_fresh;
    c.count = ir::element_count(circuit.graph.node(site.node).shape);
    c.label = site.label;
    if (!site.is_output) c.group = group_of[site.node.index];
    for (const SourceShare& share : site.sources) {
      c.sources.push_back({group_of[share.node.index], share.nu2});
    }
    constraints.push_back(std::move(c));
  }
  tfhe::CircuitSearchOptions search;
  search.search = options.search;
  if (ind_cpa_d) search.search.security = tfhe::SecurityLevel::k132;
  search.search.nu2 = 1;
  search.search.log2_p_fail = options.p_error ? std::log2(*options.p_error)
                              : ind_cpa_d     ? kIndCpaDLog2PError
                                              : -40.0;
  search.global_p_error = options.global_p_error;
  search.max_partitions = options.max_partitions;
  search.own_big_keys = options.own_big_keys;

  auto found = tfhe::search_circuit_parameters(constraints, search);
  const auto node_partitions = [&](const tfhe::CircuitParameters& f) {
    std::vector<std::uint32_t> partition(circuit.graph.nodes.size(), 0);
    for (std::size_t g = 0; g < f.group_partition.size(); ++g) {
      partition[group_node[g].index] = f.group_partition[g];
    }
    for (std::size_t i = 0; i < circuit.graph.nodes.size(); ++i) {
      if (circuit.graph.nodes[i].op == ir::IntOp::kInput) partition[i] = f.input_partition;
    }
    return partition;
  };
  if (found && found->partitions.size() > 1 &&
      !one_key_per_linear_node(circuit.graph, found->partitions, node_partitions(*found))) {
    search.own_big_keys = false;
    found = tfhe::search_circuit_parameters(constraints, search);
  }
  if (!found) {
    throw std::invalid_argument(
        std::string("no ") + (search.search.security == tfhe::SecurityLevel::k132 ? "132" : "128") +
        "-bit parameter set meets this circuit's failure budget: " +
        tfhe::explain_no_parameters(constraints, search) +
        (options.quantization.rounding_threshold_bits
             ? ". Lower rounding_threshold_bits or n_bits, or allow a larger p_error"
             : ". Lower n_bits, set rounding_threshold_bits, or allow a larger p_error") +
        (options.quantization.rounding_method == quant::RoundingMethod::kExact &&
                 options.quantization.rounding_threshold_bits
             ? "; exact rounding reads the low bits of wide accumulators, approximate rounding "
               "does not"
             : "") +
        (options.quantization.requantize_outputs
             ? ""
             : "; a wide output is decrypted exactly unless requantize_outputs is set"));
  }
  circuit.parameters = found->parameters;
  circuit.has_lookups = found->needs_bootstrap;
  circuit.partitions = found->partitions;
  circuit.partition.clear();
  if (found->partitions.size() > 1) circuit.partition = node_partitions(*found);
  circuit.parameter_choice = tfhe::describe(found->parameters) + "; " + found->binding;
  if (circuit.partitions.size() > 1) {
    circuit.parameter_choice = std::to_string(circuit.partitions.size()) + " partitions (";
    for (std::size_t p = 0; p < circuit.partitions.size(); ++p) {
      circuit.parameter_choice +=
          (p ? "; " : "") + std::to_string(p) + ": " + tfhe::describe(circuit.partitions[p]);
    }
    circuit.parameter_choice +=
        "); " + found->binding + partition_reasons(constraints, *found, search);
  }
  circuit.log2_p_error =
      options.global_p_error ? found->worst_log2_p_fail : search.search.log2_p_fail;
  circuit.global_p_error = found->global_p_fail;
  for (std::size_t i = 0; i < circuit.noise_sites.size(); ++i) {
    circuit.noise_sites[i].log2_p_fail = found->log2_p_fail[i];
  }
}

}  // namespace fheml::compiler
