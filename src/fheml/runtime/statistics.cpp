#include "fheml/runtime/statistics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "fheml/compiler/compile.h"
#include "fheml/runtime/detail.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/parameters.h"

namespace fheml::runtime {
namespace {

std::string format(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

std::string pow2(double value) {
  if (value <= 0) return "0";
  return format("2^%.1f", std::log2(value));
}

}  // namespace

double estimated_bootstrap_ms(const tfhe::PbsParameters& params) {
  // The parameter search's cost model is single-thread nanoseconds measured on the project's
  // standard machine (tfhe/parameters.cpp, "Cost model"); checked against real KS+PBS medians
  // there (tests/tfhe/parameters_test.cpp, CostModel.EstimatesMeasuredLatency...).
  return tfhe::estimated_cost(params) * 1e-6;
}

Statistics compute_statistics(const compiler::Circuit& circuit, std::size_t threads) {
  detail::check_widths(circuit);
  const ir::IntGraph& graph = circuit.graph;
  const std::vector<std::uint32_t> depth = detail::lookup_depths(graph);
  Statistics s;
  s.threads = std::max<std::size_t>(threads, 1);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::IntNode& node = graph.nodes[i];
    const std::size_t count = ir::element_count(node.shape);
    s.max_width = std::max(s.max_width, circuit.width[i]);
    if (node.op == ir::IntOp::kLinear) {
      // One scalar multiply-add per term, one plaintext addition per row (the bias).
      s.linear_ops += node.linear.entries.size() + count;
    } else if (node.op == ir::IntOp::kLookup) {
      const ir::IntLookup& lookup = node.lookup;
      s.lookups_per_bits[lookup.bits] += count;
      s.bootstraps += count;
      s.max_lookup_bits = std::max(s.max_lookup_bits, lookup.bits);
      s.depth = std::max<std::size_t>(s.depth, depth[i]);
      if (s.bootstraps_per_stage.size() < depth[i]) s.bootstraps_per_stage.resize(depth[i]);
      s.bootstraps_per_stage[depth[i] - 1] += count;
      // The offset, then the shift into the top bits.
      const bool scaled = circuit.width[node.inputs[0].index] > lookup.bits + lookup.shift;
      s.linear_ops += count * (scaled ? 2 : 1);
    }
  }
  s.key_switches = s.bootstraps;
  s.max_bit_width = std::max(s.max_width, s.max_lookup_bits);

  const tfhe::PbsParameters& p = circuit.parameters;
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(circuit);
  const auto partition_of = [&](std::size_t node) -> std::uint32_t {
    return circuit.partition.empty() ? 0 : circuit.partition.at(node);
  };
  const std::vector<std::uint32_t> key_class_of = big_key_classes(partitions);
  const detail::KeyClasses classes = detail::key_classes(
      graph, detail::node_partitions(circuit, partitions.size()), key_class_of);
  if (circuit.has_lookups) {
    for (std::uint32_t q = 0; q < partitions.size(); ++q) {
      const tfhe::KeySizes k = tfhe::key_sizes(partitions[q]);
      s.key_sizes.keyswitch_compressed += k.keyswitch_compressed;
      // The server expands a partition's own key switch only if one of its lookups reads its
      // own big key (runtime::decompress with the program).
      bool reads_own = false;
      for (std::size_t i = 0; i < graph.nodes.size() && !reads_own; ++i) {
        reads_own = graph.nodes[i].op == ir::IntOp::kLookup && partition_of(i) == q &&
                    classes.node[graph.nodes[i].inputs[0].index] == key_class_of[q];
      }
      if (reads_own) s.key_sizes.keyswitch_expanded += k.keyswitch_expanded;
      s.key_sizes.bootstrap_compressed += k.bootstrap_compressed;
      s.key_sizes.bootstrap_expanded += k.bootstrap_expanded;
      s.key_sizes.bootstrap_fourier += k.bootstrap_fourier;
    }
  }
  for (const KeyswitchPair& pair : classes.keyswitch_pairs) {
    // The key switch of `to` from the big key of `from`: all of its k*N coefficients (no shared
    // prefix with another big key).
    const tfhe::PbsParameters& from = partitions[pair.from];
    const tfhe::PbsParameters& to = partitions[pair.to];
    const tfhe::KeyswitchShape shape{
        tfhe::extracted_lwe_dimension(from.glwe_dimension, from.polynomial_size), to.lwe_dimension,
        to.ks_base_log, to.ks_level, 0};
    s.key_sizes.keyswitch_compressed +=
        shape.entry_count() * sizeof(tfhe::Torus) + tfhe::kSeedBytes;
    s.key_sizes.keyswitch_expanded += shape.length() * sizeof(std::uint32_t);
  }
  s.ciphertext_bytes =
      tfhe::lwe_size(tfhe::extracted_lwe_dimension(p.glwe_dimension, p.polynomial_size)) *
      sizeof(tfhe::Torus);
  for (const ir::ValueId in : graph.inputs()) {
    s.input_bytes +=
        tfhe::kSeedBytes + ir::element_count(graph.node(in).shape) * sizeof(tfhe::Torus);
  }
  for (const ir::ValueId out : graph.outputs) {
    const tfhe::PbsParameters& key = partitions[classes.node[out.index]];
    s.output_bytes +=
        ir::element_count(graph.node(out).shape) *
        tfhe::lwe_size(tfhe::extracted_lwe_dimension(key.glwe_dimension, key.polynomial_size)) *
        sizeof(tfhe::Torus);
  }
  if (s.bootstraps > 0) {
    // Per stage and partition: each partition's bootstraps of a stage run as one batch.
    std::vector<double> ms;
    for (const tfhe::PbsParameters& part : partitions) ms.push_back(estimated_bootstrap_ms(part));
    s.bootstraps_per_partition.assign(partitions.size(), 0);
    std::vector<std::vector<std::size_t>> per_stage(s.bootstraps_per_stage.size(),
                                                    std::vector<std::size_t>(partitions.size(), 0));
    std::vector<std::vector<double>> stage_ms(s.bootstraps_per_stage.size(),
                                              std::vector<double>(partitions.size(), 0.0));
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
      if (graph.nodes[i].op != ir::IntOp::kLookup) continue;
      const std::size_t count = ir::element_count(graph.nodes[i].shape);
      const std::uint32_t q = partition_of(i);
      // A key switch from another big key reads that key's k * N coefficients.
      const tfhe::PbsParameters& from = partitions[classes.node[graph.nodes[i].inputs[0].index]];
      const double each =
          ms[q] *
          tfhe::estimated_cost(partitions[q], tfhe::LweDimension{from.glwe_dimension.value *
                                                                 from.polynomial_size.value}) /
          tfhe::estimated_cost(partitions[q]);
      s.bootstraps_per_partition.at(q) += count;
      per_stage[depth[i] - 1][q] += count;
      stage_ms[depth[i] - 1][q] += static_cast<double>(count) * each;
      s.estimated_latency_ms += static_cast<double>(count) * each;
    }
    s.bootstrap_ms = s.estimated_latency_ms / static_cast<double>(s.bootstraps);
    for (std::size_t t = 0; t < per_stage.size(); ++t) {
      for (std::size_t q = 0; q < partitions.size(); ++q) {
        const std::size_t count = per_stage[t][q];
        if (count == 0) continue;
        s.estimated_parallel_latency_ms += static_cast<double>((count + s.threads - 1) / s.threads) *
                                           stage_ms[t][q] / static_cast<double>(count);
      }
    }
  }
  return s;
}

std::string report(const compiler::Circuit& circuit, const Statistics& statistics) {
  detail::check_widths(circuit);
  const ir::IntGraph& graph = circuit.graph;
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-5s %-16s %-28s %-24s %4s %3s %9s %8s\n", "node", "op",
                "origin", "range", "bits", "W", "nu2", "log2 pf");
  out << line;
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::IntNode& node = graph.nodes[i];
    std::string op(ir::op_name(node.op));
    if (node.op == ir::IntOp::kLookup) {
      if (circuit.partitions.size() > 1 && !circuit.partition.empty())
        op += " P" + std::to_string(circuit.partition.at(i));
      op += " p=" + std::to_string(node.lookup.bits);
      if (node.lookup.shift > 0) op += ">>" + std::to_string(node.lookup.shift);
      if (node.lookup.tables.size() > 1) op += " x" + std::to_string(node.lookup.tables.size());
    }
    const bool is_output =
        std::find(graph.outputs.begin(), graph.outputs.end(),
                  ir::ValueId{static_cast<std::uint32_t>(i)}) != graph.outputs.end();
    if (is_output) op += " out";
    // The node's own noise site: its lookup, else its output decryption.
    std::string nu2 = "-", p_fail = "-";
    for (const compiler::NoiseSite& site : circuit.noise_sites) {
      if (site.node.index != i || (site.is_output && node.op == ir::IntOp::kLookup)) continue;
      // Bootstrapped ciphertexts' nu2; a lookup on inputs alone shows theirs ("in").
      nu2 = site.nu2 > 0 || site.nu2_fresh == 0 ? pow2(site.nu2) : "in " + pow2(site.nu2_fresh);
      p_fail = format("%.1f", site.log2_p_fail);
      break;
    }
    std::string origin = node.origin.size() > 28 ? node.origin.substr(0, 25) + "..." : node.origin;
    const std::string range =
        "[" + std::to_string(node.range.lo) + ", " + std::to_string(node.range.hi) + "]";
    std::snprintf(line, sizeof line, "%-5s %-16s %-28s %-24s %4u %3u %9s %8s\n",
                  ("%" + std::to_string(i)).c_str(), op.c_str(), origin.c_str(), range.c_str(),
                  node.range.bits(), circuit.width[i], nu2.c_str(), p_fail.c_str());
    out << line;
  }
  out << "noise sites:\n";
  for (const compiler::NoiseSite& site : circuit.noise_sites) {
    // nu2 over bootstrapped ciphertexts; "inputs": over fresh encryptions (far less noise).
    std::snprintf(line, sizeof line, "  %-40s bits %2u  nu2 %9s  inputs %9s  log2 p_fail %.1f\n",
                  site.label.c_str(), site.bits, pow2(site.nu2).c_str(),
                  pow2(site.nu2_fresh).c_str(), site.log2_p_fail);
    out << line;
  }
  if (circuit.partitions.size() > 1) {
    // Which lookups each partition holds; the per-node table marks them P0, P1, ...
    const std::vector<std::uint32_t> classes = big_key_classes(circuit.partitions);
    const std::size_t keys =
        std::set<std::uint32_t>(classes.begin(), classes.end()).size();
    out << "partitions: " << circuit.partitions.size()
        << " parameter sets, each with its own small key, key switching key and bootstrap key, "
        << (keys == 1 ? std::string("sharing the big key (k * N, GLWE noise)")
                      : std::to_string(keys) +
                            " big keys (sets of one k * N and GLWE noise share one; a lookup "
                            "reading another key-switches from it)")
        << "\n";
    for (std::size_t q = 0; q < circuit.partitions.size(); ++q) {
      std::size_t count = 0;
      std::string nodes;
      for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
        if (graph.nodes[i].op != ir::IntOp::kLookup || circuit.partition.at(i) != q) continue;
        count += ir::element_count(graph.nodes[i].shape);
        nodes += (nodes.empty() ? "%" : " %") + std::to_string(i);
      }
      out << "  P" << q << ": " << tfhe::describe(circuit.partitions[q]) << "; " << count
          << " bootstraps at " << format("%.2f", estimated_bootstrap_ms(circuit.partitions[q]))
          << " ms (lookups " << nodes << ")"
          << (classes[q] != q ? "; the big key of P" + std::to_string(classes[q]) : std::string())
          << "\n";
    }
  }
  out << "parameters: " << tfhe::describe(circuit.parameters)
      << (circuit.has_lookups ? "" : " (no lookups: only k, N and the GLWE noise are used)")
      << (circuit.partitions.size() > 1 ? " (partition 0)" : "") << "\n";
  int security = static_cast<int>(tfhe::achieved_security(circuit.parameters));
  for (const tfhe::PbsParameters& part : circuit.partitions) {
    security = std::min(security, static_cast<int>(tfhe::achieved_security(part)));
  }
  out << "security: " << security << " bits (lattice-estimator curve of concrete-security-curves, binary keys)\n";
  if (!circuit.parameter_choice.empty())
    out << "chosen because: " << circuit.parameter_choice << "\n";
  out << "p_error bound: 2^" << format("%.1f", circuit.log2_p_error) << " per lookup, global "
      << format("%.3g", circuit.global_p_error) << "\n";
  if (circuit.output_noise_bits > 0) {
    out << "outputs: approximate, the noise may change their lowest " << circuit.output_noise_bits
        << " bits (each within " << (std::int64_t{1} << (circuit.output_noise_bits - 1))
        << " of the exact integer with the output site's probability, clamped into its range)\n";
  }
  out << (compiler::meets_ind_cpa_d(circuit)
              ? "profile: ind-cpa-d (every bootstrap and output fails with p <= 2^-64, 132-bit "
                "keys: decrypted results may reach the server)\n"
              : "profile: standard (keep decrypted results, and whether they were wrong, from "
                "the server: README, Security; compile with profile ind-cpa-d otherwise)\n");

  const Statistics& s = statistics;
  out << "lookups:";
  if (s.lookups_per_bits.empty()) out << " none";
  for (const auto& [bits, count] : s.lookups_per_bits)
    out << " " << count << " x " << bits << "-bit";
  out << "; bootstraps " << s.bootstraps << ", key switches " << s.key_switches << ", linear ops "
      << s.linear_ops << ", depth " << s.depth << "\n";
  out << "max width " << s.max_width << ", max lookup bits " << s.max_lookup_bits
      << ", max bit width " << s.max_bit_width << "\n";
  const double mib = 1024.0 * 1024.0;
  out << "keys: bootstrap " << format("%.1f", double(s.key_sizes.bootstrap_compressed) / mib)
      << " MiB sent / " << format("%.1f", double(s.key_sizes.bootstrap_fourier) / mib)
      << " MiB held, key switch " << format("%.2f", double(s.key_sizes.keyswitch_compressed) / mib)
      << " MiB sent / " << format("%.1f", double(s.key_sizes.keyswitch_expanded) / mib)
      << " MiB held\n";
  out << "ciphertexts: " << s.ciphertext_bytes << " B each; per sample " << s.input_bytes
      << " B in, " << s.output_bytes << " B out\n";
  out << "estimated latency per sample: " << format("%.1f", s.estimated_latency_ms)
      << " ms on 1 thread, " << format("%.1f", s.estimated_parallel_latency_ms) << " ms on "
      << s.threads << " (" << format("%.2f", s.bootstrap_ms) << " ms per KS+PBS"
      << (s.bootstraps_per_partition.size() > 1 ? ", mean over the partitions" : "") << ")\n";
  if (s.last_run) {
    const Timings& t = *s.last_run;
    out << "last run (" << mode_name(t.mode) << ", " << t.samples << " samples): keygen "
        << format("%.3f", t.keygen_s) << " s, encrypt " << format("%.3f", t.encrypt_s) << " s, run "
        << format("%.3f", t.run_s) << " s, decrypt " << format("%.3f", t.decrypt_s) << " s\n";
  }
  return out.str();
}

}  // namespace fheml::runtime
