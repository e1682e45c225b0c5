// Parameters for a whole circuit: one KS-PBS parameter set shared by all its bootstraps, chosen
// by minimum estimated_cost under the noise constraints the compiler collects (one per distinct
// kind of lookup or decrypted output, docs/compiler-plan.md section 1.6), with either a bound per
// bootstrap or a global failure budget for the circuit (Concrete's `p_error` and
// `global_p_error`: zama-ai/concrete docs/core-features/table_lookups_advanced.md, "Table lookup
// exactness"; here the budget is checked with the union bound, which holds without assuming
// independent failures).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

// Where part of a constraint's bootstrapped noise comes from: the lookups of one group (see
// CircuitSearchOptions::max_partitions), nu2 = max over the constraint's elements of the squared
// 2-norm of the weights on that group's outputs.
struct SourceShare {
  std::uint32_t group = 0;
  double nu2 = 0;  // finite, >= 0
  bool operator==(const SourceShare&) const = default;
};

struct NoiseConstraint {
  enum class Kind {
    // A bootstrap on `bits`-bit messages (1..16; for many-LUT pass many_lut_precision) whose
    // input is a linear combination of squared 2-norm nu2 of ciphertexts of variance
    // ciphertext_variance(params) plus one of squared 2-norm nu2_fresh of fresh encryptions
    // under the big (k*N) key (a circuit's inputs): fails with
    // log2_failure_probability_for_variance(bits, variance_at_lookup(params, linear_variance)).
    // Its table needs N >= 2^(bits+1).
    kLookup,
    // An output decrypted at `bits` bits of message (1..62, with the same padding and half-box
    // rule as a lookup): fails with log2_failure_probability_for_variance(bits,
    // linear_variance), V = ciphertext_variance(params) in it if the circuit has any lookup, else
    // the fresh encryption variance of the big (k*N) key.
    kDecrypt,
  };
  Kind kind = Kind::kLookup;
  MessageBits bits{1};
  double nu2 = 1;         // squared 2-norm multiplier of the ciphertext variance, finite, >= 0
  std::size_t count = 1;  // elements sharing this constraint (for the global bound), >= 1
  std::string label;      // what the compiler names it by, e.g. "lookup %7 relu"
  // Squared 2-norm multiplier of the fresh encryption variance (the terms on a circuit's inputs,
  // which no bootstrap has touched), finite, >= 0. Fresh noise is many orders of magnitude
  // below a bootstrap's output: counting inputs in nu2 would bind a first layer's lookups for
  // noise they do not have.
  double nu2_fresh = 0;
  // Partitions only (max_partitions > 1; ignored otherwise). The group of lookups this
  // constraint is the input of (kLookup): all lookups of a group share one parameter set. And
  // nu2 split by the group whose outputs carry it: each share a max over elements, so the shares
  // sum to at least nu2 and sum(share * V of its group's set) bounds the bootstrapped variance of
  // every element. The search partitions only when every lookup constraint has a group and every
  // constraint with nu2 > 0 has its sources.
  std::optional<std::uint32_t> group{};
  std::vector<SourceShare> sources{};
};

struct CircuitSearchOptions {
  // Ranges of the search; search.log2_p_fail is the bound per constraint element (per bootstrap,
  // per decrypted output) unless global_p_error is set. search.nu2 must stay 1: each constraint
  // carries its own.
  SearchOptions search;
  // If set, replaces the per-element bound: sum over constraints of count * P_fail must be
  // <= global_p_error (a union bound over every bootstrap and output), in (0, 1).
  std::optional<double> global_p_error;
  // Partitions (Concrete's multi-parameter circuits): up to this many parameter sets, each with
  // its own small LWE key, key switching key and bootstrap key. Each group of lookups
  // (NoiseConstraint::group) takes the cheapest set its own input and its outputs' consumers
  // allow; 1 gives one set for the whole circuit. Sets of one k * N and GLWE noise share the big
  // key (its bits read as a GLWE key of any k and N with that product).
  std::size_t max_partitions = 1;
  // With partitions: sets of another k * N, each with a big key of its own, where the circuit
  // allows it. The ciphertexts a constraint's linear combination adds (its sources' outputs, and
  // the circuit's inputs when nu2_fresh > 0) must be under one big key, so the groups they come
  // from share one (a "component"; all inputs are under one big key); a lookup whose input is
  // under another big key than its own set's key-switches from it, with the cost and noise of a
  // key switch from that k * N. false: every set shares one k * N.
  bool own_big_keys = true;
  // A partitioned result is kept only if its estimated cost is below (1 - this) times the best
  // single set's, and each partition beyond the first must save this fraction: a partition costs
  // a bootstrap key and a key switching key of its own.
  double min_partition_gain = 0.05;
};

struct CircuitParameters {
  PbsParameters parameters;  // partitions[0]
  // With lookups: one set per partition (at least one); group_partition[g] is the partition of
  // group g (empty with one partition).
  std::vector<PbsParameters> partitions;
  std::vector<std::uint32_t> group_partition;
  // The partition whose big key encrypts the circuit's inputs (CircuitSearchOptions::
  // own_big_keys); 0 when every set shares one big key.
  std::uint32_t input_partition = 0;
  double estimated_cost = 0;    // sum over lookup constraints of count * estimated_cost(set)
  bool needs_bootstrap = true;  // false: no lookup; only the encryption key is meaningful
  bool within_bound = true;     // every constraint (or the global sum) meets the bound
  std::string binding;          // the constraint with the least slack, or the budget's use
  double worst_log2_p_fail = 0;
  double global_p_fail = 0;         // sum of count * P_fail over all constraints
  std::vector<double> log2_p_fail;  // per constraint, in the order given
};

// The variance of a constraint's linear combination under `params`: nu2 * V + nu2_fresh * fresh,
// V = ciphertext_variance(params) with lookups, the fresh encryption variance without.
double linear_variance(const NoiseConstraint& c, const PbsParameters& params, bool with_lookups);

// The same under partitions: sum over sources of share * ciphertext_variance(set of the share's
// group), at most nu2 * the largest over the partitions (both bound the true variance), plus
// nu2_fresh * the fresh variance of the input partition's big key. `group_partition` maps groups
// to indices of `partitions`.
double linear_variance(const NoiseConstraint& c, std::span<const PbsParameters> partitions,
                       std::span<const std::uint32_t> group_partition,
                       std::uint32_t input_partition = 0);

// Failure probabilities of `constraints` under `params` (no search), with the fields of
// CircuitParameters filled as search_circuit_parameters does (within_bound tells whether the
// set meets the bound of `options`). Throws std::invalid_argument for invalid constraints or
// options (see search_circuit_parameters).
CircuitParameters evaluate_circuit_parameters(std::span<const NoiseConstraint> constraints,
                                              const PbsParameters& params,
                                              const CircuitSearchOptions& options = {});

// With at least one lookup: the cheapest set (estimated_cost) in the ranges of options.search,
// N >= 2^(max lookup bits + 1), every noise at the 128-bit curve's minimum, meeting every
// constraint (or the global budget). A single lookup constraint {p, nu2} with a per-element bound
// gives exactly search_parameters(p, options.search with nu2).
// Without lookups (a linear model, needs_bootstrap = false): k = 1 and the smallest
// N = 2^m >= 2^max(10, min_log2_polynomial_size) whose 128-bit fresh noise decodes every output;
// the other fields are those of default_parameters(1), so that validate() accepts the set.
// nullopt when nothing in the ranges fits (explain_no_parameters says why).
// Throws std::invalid_argument for an empty list, bits outside 1..16 (lookup) or 1..62
// (decrypt), nu2 negative or not finite, count 0, global_p_error outside (0, 1), a non-negative
// log2_p_fail, search.nu2 != 1, or inconsistent ranges.
// Under partitions: as above, each lookup constraint at its group's set, its key switch from the
// big key its input is under (its sources' partition's, or input_partition's for a constraint
// without sources), the fresh noise of input_partition's big key. Throws std::invalid_argument
// also when a constraint adds ciphertexts under two big keys (sources of partitions of another
// k * N or GLWE noise, or such sources and the inputs), a lookup's set has an N below
// 2^(bits + 1), a group or input_partition has no partition, or (more than one partition) a
// lookup has no group or a constraint no sources.
CircuitParameters evaluate_circuit_parameters(std::span<const NoiseConstraint> constraints,
                                              std::span<const PbsParameters> partitions,
                                              std::span<const std::uint32_t> group_partition,
                                              const CircuitSearchOptions& options = {},
                                              std::uint32_t input_partition = 0);

// With options.max_partitions > 1 the result may hold several partitions (see
// CircuitSearchOptions): per (k, N), a descent from the best single set moves each group to the
// cheapest set that keeps its own input and its consumers within the bound, then partitions are
// merged while there are too many or one saves less than min_partition_gain. With own_big_keys,
// each component in turn then tries the other (k, N) (the same descent and merges, the rest of
// the circuit where it is), kept where the whole circuit saves min_partition_gain.
std::optional<CircuitParameters> search_circuit_parameters(
    std::span<const NoiseConstraint> constraints, const CircuitSearchOptions& options = {});

// Why search_circuit_parameters finds nothing: names the constraint farthest from being
// reachable alone (its label, bits, nu2, the variance it needs and the smallest variance the
// ranges can reach), or the range that excludes it (N too small for the table), or says that
// each constraint fits alone but not all together. Same exceptions as the search.
std::string explain_no_parameters(std::span<const NoiseConstraint> constraints,
                                  const CircuitSearchOptions& options = {});

}  // namespace fheml::tfhe
