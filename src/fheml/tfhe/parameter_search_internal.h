// Internal to the parameter searches (not installed, not part of the API): the minimum-cost loop
// of parameters.cpp, shared by search_parameters (one lookup) and search_circuit_parameters (a
// whole circuit, circuit_parameters.cpp), so that both walk the same space with the same pruning.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "fheml/tfhe/circuit_parameters.h"
#include "fheml/tfhe/parameters.h"

namespace fheml::tfhe::internal {

// The largest lookup table any search builds sets for: N * 2^extension_log <= 2^16, as N alone
// is at most 2^16 (SearchOptions).
inline constexpr std::size_t kMaxLog2LookupSize = 16;

// Throws std::invalid_argument, messages prefixed with `caller`, unless the ranges of `options`
// (GLWE dimension, polynomial size, LWE dimension, decomposition limits) are consistent. Does not
// look at options.log2_p_fail or options.nu2.
void validate_search_ranges(const char* caller, const SearchOptions& options);

// A necessary condition on a candidate, used only to prune before the exact acceptance test:
//   nu2 * ciphertext_variance(params) + nu2_fresh * fresh encryption variance
//   [+ key switch + modulus switch if at_lookup] <= max_variance.
// at_lookup: the variance at a bootstrap's input (a lookup); otherwise that of a ciphertext that
// is decrypted as it is. The key-switch rounding term of variance_at_lookup is left out, so the
// condition is implied by the exact one (it never prunes a set that the exact test accepts, up to
// the rounding of max_variance_for_failure, which errs on the safe side).
struct VarianceBound {
  double nu2 = 1;
  double nu2_fresh = 0;
  double max_variance = 0;
  bool at_lookup = true;
};

// Cheapest set by estimated_cost over the ranges of `options` (validated by the caller), every
// noise at the 128-bit curve's minimum for its dimension, that meets every bound and that
// `accept` (the authoritative noise-model test) accepts; nullopt when none does. Ties keep the
// first set in the walk order (k, then N, then n, then bootstrap level, then key-switch level).
// options.log2_p_fail and options.nu2 are not used. `bounds` must not be empty.
std::optional<PbsParameters> search_minimum_cost(
    const SearchOptions& options, std::span<const VarianceBound> bounds,
    const std::function<bool(const PbsParameters&)>& accept);

// Partitions (circuit_partitions.cpp). The bootstrapped variance of constraint `c` when the
// ciphertexts of group g have variance vc(g): min(sum over sources of share * vc, nu2 * the
// largest vc over the sources), both upper bounds of every element's; nu2 * vc(0) without
// sources (one partition).
template <typename Vc>
double bootstrapped_variance_of(const NoiseConstraint& c, const Vc& vc) {
  if (c.nu2 == 0.0) return 0.0;
  if (c.sources.empty()) return c.nu2 * vc(0);
  double sum = 0, largest = 0;
  for (const SourceShare& s : c.sources) {
    if (s.nu2 == 0.0) continue;
    const double v = vc(s.group);
    sum += s.nu2 * v;
    largest = v > largest ? v : largest;
  }
  return sum < c.nu2 * largest ? sum : c.nu2 * largest;
}

// --- The partition search's candidates and components (partition_candidates.cpp), shared
// with its descent (circuit_partitions.cpp).

// A parameter set the partition search may give a group of lookups.
struct Candidate {
  PbsParameters params;
  double cost = 0;            // estimated_cost, the key switch from its own k * N
  double vc = 0;              // ciphertext_variance
  double v_in = 0;            // key switch from its own k * N + its rounding + modulus switch
  std::size_t shape = 0;      // index of its (k, N) in the search's list
  std::size_t dimension = 0;  // k * N
};

// Per n and key-switch level: the variance-minimising base and its variance per input
// coefficient (independent of k and N), as search_minimum_cost.
struct KeySwitchChoice {
  std::size_t base_log = 0;
  double per_coefficient = std::numeric_limits<double>::infinity();
};

std::vector<KeySwitchChoice> keyswitch_choices(const SearchOptions& o);

// The sets of one (k, N, extension_log) with the variance-minimising base per level (as
// search_minimum_cost), reduced to those no cheaper set beats on both variances, cheapest first.
std::vector<Candidate> candidates(std::size_t k, std::size_t big_n, std::size_t extension_log,
                                  std::size_t shape, const SearchOptions& o,
                                  const std::vector<KeySwitchChoice>& ks_choices);

// Which groups must share a big key: the groups whose outputs one constraint adds (its sources),
// and the circuit's inputs with the sources of every constraint that adds them (nu2_fresh > 0),
// joined transitively. Component `inputs` holds the inputs (possibly alone).
struct Components {
  std::vector<std::uint32_t> of_group;
  std::uint32_t inputs = 0;
  std::uint32_t count = 0;
};

Components components(std::span<const NoiseConstraint> constraints, std::uint32_t group_count);

struct Partitioning {
  std::vector<PbsParameters> partitions;
  std::vector<std::uint32_t> group_partition;
  std::uint32_t input_partition = 0;
  double cost = 0;  // sum over lookup constraints of count * estimated_cost
};

// The cheapest partitioning found (CircuitSearchOptions::max_partitions), or nullopt when none
// with two or more partitions costs less than (1 - min_partition_gain) * single_cost. The
// constraints are validated and partitionable (every lookup has a group, every constraint with
// nu2 > 0 its sources); the result is checked by the caller with the exact model.
std::optional<Partitioning> search_partitions(std::span<const NoiseConstraint> constraints,
                                              const CircuitSearchOptions& options,
                                              const PbsParameters& single, double single_cost);

}  // namespace fheml::tfhe::internal
