// Parameters for a whole circuit: one KS-PBS parameter set shared by all its bootstraps, chosen
// by minimum estimated_cost under the noise constraints the compiler collects (one per distinct
// kind of lookup or decrypted output, docs/compiler-plan.md section 1.6), with either a bound per
// bootstrap or a global failure budget for the circuit (Concrete's `p_error` and
// `global_p_error`: zama-ai/concrete docs/core-features/table_lookups_advanced.md, "Table lookup
// exactness"; here the budget is checked with the union bound, which holds without assuming
// independent failures).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

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
};

struct CircuitSearchOptions {
  // Ranges of the search; search.log2_p_fail is the bound per constraint element (per bootstrap,
  // per decrypted output) unless global_p_error is set. search.nu2 must stay 1: each constraint
  // carries its own.
  SearchOptions search;
  // If set, replaces the per-element bound: sum over constraints of count * P_fail must be
  // <= global_p_error (a union bound over every bootstrap and output), in (0, 1).
  std::optional<double> global_p_error;
};

struct CircuitParameters {
  PbsParameters parameters;
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
std::optional<CircuitParameters> search_circuit_parameters(
    std::span<const NoiseConstraint> constraints, const CircuitSearchOptions& options = {});

// Why search_circuit_parameters finds nothing: names the constraint farthest from being
// reachable alone (its label, bits, nu2, the variance it needs and the smallest variance the
// ranges can reach), or the range that excludes it (N too small for the table), or says that
// each constraint fits alone but not all together. Same exceptions as the search.
std::string explain_no_parameters(std::span<const NoiseConstraint> constraints,
                                  const CircuitSearchOptions& options = {});

}  // namespace fheml::tfhe
