// Internal to the parameter searches (not installed, not part of the API): the minimum-cost loop
// of parameters.cpp, shared by search_parameters (one lookup) and search_circuit_parameters (a
// whole circuit, circuit_parameters.cpp), so that both walk the same space with the same pruning.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>

#include "fheml/tfhe/parameters.h"

namespace fheml::tfhe::internal {

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

}  // namespace fheml::tfhe::internal
