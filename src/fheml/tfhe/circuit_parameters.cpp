#include "fheml/tfhe/circuit_parameters.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameter_search_internal.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe {
namespace {

using Kind = NoiseConstraint::Kind;

constexpr const char* kCaller = "search_circuit_parameters";
constexpr std::size_t kMaxLookupBits = 16;
// bits + padding + the half-box bit must fit the 64-bit torus.
constexpr std::size_t kMaxDecryptBits = kTorusBits - 2;
// Without bootstraps the big key is also the only key; below 2^10 its 128-bit noise (2^-23.6 at
// N = 1024 by the curve of security.h) is useless for any real output, so start there.
constexpr std::size_t kMinLog2PolynomialSizeNoBootstrap = 10;

bool has_lookup(std::span<const NoiseConstraint> constraints) {
  return std::any_of(constraints.begin(), constraints.end(),
                     [](const NoiseConstraint& c) { return c.kind == Kind::kLookup; });
}

std::size_t max_lookup_bits(std::span<const NoiseConstraint> constraints) {
  std::size_t bits = 0;
  for (const NoiseConstraint& c : constraints) {
    if (c.kind == Kind::kLookup) bits = std::max(bits, c.bits.value);
  }
  return bits;
}

std::string quoted_label(const NoiseConstraint& c) {
  return c.label.empty() ? std::string("(unlabelled)") : "\"" + c.label + "\"";
}

std::string describe_constraint_for_error(std::size_t index, const NoiseConstraint& c) {
  return "constraint " + std::to_string(index) + " " + quoted_label(c);
}

void validate(std::span<const NoiseConstraint> constraints, const CircuitSearchOptions& options) {
  const auto fail = [](const std::string& message) {
    throw std::invalid_argument(std::string(kCaller) + ": " + message);
  };
  if (constraints.empty()) {
    fail("the constraint list is empty; pass one constraint per lookup kind and output");
  }
  for (std::size_t i = 0; i < constraints.size(); ++i) {
    const NoiseConstraint& c = constraints[i];
    const bool lookup = c.kind == Kind::kLookup;
    if (!lookup && c.kind != Kind::kDecrypt) {
      fail(describe_constraint_for_error(i, c) + " has an unknown kind " +
           std::to_string(static_cast<int>(c.kind)));
    }
    const std::size_t max_bits = lookup ? kMaxLookupBits : kMaxDecryptBits;
    if (c.bits.value < 1 || c.bits.value > max_bits) {
      fail(describe_constraint_for_error(i, c) + ": " + (lookup ? "lookup" : "decrypted output") +
           " message bits must be in 1.." + std::to_string(max_bits) + ", found " +
           std::to_string(c.bits.value) +
           (lookup ? "; lower the precision or split the lookup" : ""));
    }
    if (!(c.nu2 >= 0.0) || !std::isfinite(c.nu2)) {
      fail(describe_constraint_for_error(i, c) + ": nu2 must be finite and >= 0, found " +
           std::to_string(c.nu2) + "; pass the squared 2-norm of the weights (1 for a plain " +
           "lookup)");
    }
    if (!(c.nu2_fresh >= 0.0) || !std::isfinite(c.nu2_fresh)) {
      fail(describe_constraint_for_error(i, c) + ": nu2_fresh must be finite and >= 0, found " +
           std::to_string(c.nu2_fresh) + "; pass the squared 2-norm of the weights on inputs");
    }
    if (c.count == 0) {
      fail(describe_constraint_for_error(i, c) +
           ": count must be >= 1 (the number of elements sharing the constraint), found 0");
    }
  }
  if (options.global_p_error) {
    const double g = *options.global_p_error;
    if (!(g > 0.0 && g < 1.0)) {
      fail("global_p_error must be a probability in (0, 1), found " + std::to_string(g) +
           "; pass e.g. 1e-5, or leave it unset for a bound per bootstrap");
    }
  } else if (!(options.search.log2_p_fail < 0.0) || !std::isfinite(options.search.log2_p_fail)) {
    fail("search.log2_p_fail (the bound per bootstrap) must be a finite negative number, found " +
         std::to_string(options.search.log2_p_fail) + "; pass e.g. -40");
  }
  if (options.max_partitions < 1) {
    fail("max_partitions must be >= 1 (1: one parameter set for the circuit), found 0");
  }
  if (!(options.min_partition_gain >= 0.0 && options.min_partition_gain < 1.0)) {
    fail("min_partition_gain must be in [0, 1), found " +
         std::to_string(options.min_partition_gain));
  }
  for (std::size_t i = 0; i < constraints.size(); ++i) {
    for (const SourceShare& share : constraints[i].sources) {
      if (!(share.nu2 >= 0.0) || !std::isfinite(share.nu2)) {
        fail(describe_constraint_for_error(i, constraints[i]) +
             ": a source share's nu2 must be finite and >= 0, found " + std::to_string(share.nu2));
      }
    }
  }
  if (options.search.nu2 != 1.0) {
    fail("search.nu2 must stay 1, found " + std::to_string(options.search.nu2) +
         ": each constraint carries its own nu2");
  }
  internal::validate_search_ranges(kCaller, options.search);
}

// log2 of the bound a single element of `c` must meet: the per-element bound, or (global mode)
// the whole budget spent on this constraint's elements alone, a necessary condition.
double log2_element_bound(const NoiseConstraint& c, const CircuitSearchOptions& options) {
  if (!options.global_p_error) return options.search.log2_p_fail;
  return std::log2(*options.global_p_error / static_cast<double>(c.count));
}

double log2_failure(const NoiseConstraint& c, const PbsParameters& params, bool with_lookups) {
  const double linear = linear_variance(c, params, with_lookups);
  return log2_failure_probability_for_variance(
      c.bits, c.kind == Kind::kLookup ? variance_at_lookup(params, linear) : linear);
}

std::size_t big_dimension(const PbsParameters& p) {
  return p.glwe_dimension.value * p.polynomial_size.value;
}

// The partition whose big key a constraint's linear combination is under: its sources' (one by
// the check of evaluate_circuit_parameters), the inputs' without sources.
std::uint32_t source_partition(const NoiseConstraint& c,
                               std::span<const std::uint32_t> group_partition,
                               std::uint32_t input_partition) {
  return c.sources.empty() ? input_partition : group_partition[c.sources.front().group];
}

// Under partitions (more than one): each lookup at its group's set, its key switch from the big
// key of its input.
double log2_failure(const NoiseConstraint& c, std::span<const PbsParameters> partitions,
                    std::span<const std::uint32_t> group_partition, std::uint32_t input_partition) {
  if (partitions.size() == 1) return log2_failure(c, partitions[0], true);
  const double linear = linear_variance(c, partitions, group_partition, input_partition);
  if (c.kind != Kind::kLookup) return log2_failure_probability_for_variance(c.bits, linear);
  const PbsParameters& from = partitions[source_partition(c, group_partition, input_partition)];
  return log2_failure_probability_for_variance(
      c.bits, variance_at_lookup(partitions[group_partition[*c.group]],
                                 LweDimension{big_dimension(from)}, linear));
}

// Whether the search may partition: every lookup has a group, every source names a group some
// lookup has, and every constraint with bootstrapped noise says where it comes from (shares
// summing to at least nu2).
bool partitionable(std::span<const NoiseConstraint> constraints) {
  std::set<std::uint32_t> groups;
  for (const NoiseConstraint& c : constraints) {
    if (c.kind != Kind::kLookup) continue;
    if (!c.group) return false;
    groups.insert(*c.group);
  }
  for (const NoiseConstraint& c : constraints) {
    double sum = 0;
    for (const SourceShare& s : c.sources) {
      if (!groups.contains(s.group)) return false;
      sum += s.nu2;
    }
    if (c.nu2 > 0 && !(sum >= c.nu2 * (1 - 1e-12))) return false;
  }
  return true;
}

// The constraints the search has to check. Per-element bound: one per (kind, bits), with the
// largest nu2 and the largest nu2_fresh (the failure grows with both; the pair may come from two
// constraints, which only errs on the safe side). Global bound: one per (kind, bits, nu2,
// nu2_fresh), counts summed, so that the union bound is unchanged. The label is that of the
// constraint with the largest nu2 per element, the first one for the global bound.
std::vector<NoiseConstraint> reduce(std::span<const NoiseConstraint> constraints, bool global) {
  std::vector<NoiseConstraint> reduced;
  std::map<std::tuple<int, std::size_t, double, double>, std::size_t> index;
  for (const NoiseConstraint& c : constraints) {
    const auto key = std::make_tuple(static_cast<int>(c.kind), c.bits.value, global ? c.nu2 : 0.0,
                                     global ? c.nu2_fresh : 0.0);
    const auto [it, inserted] = index.emplace(key, reduced.size());
    if (inserted) {
      reduced.push_back(c);
      continue;
    }
    NoiseConstraint& kept = reduced[it->second];
    if (global) {
      kept.count += c.count;
    } else {
      const double fresh = std::max(kept.nu2_fresh, c.nu2_fresh);
      if (c.nu2 > kept.nu2) kept = c;
      kept.nu2_fresh = fresh;
    }
  }
  return reduced;
}

bool meets_bound(std::span<const NoiseConstraint> constraints, const PbsParameters& params,
                 bool with_lookups, const CircuitSearchOptions& options) {
  if (!options.global_p_error) {
    return std::all_of(constraints.begin(), constraints.end(), [&](const NoiseConstraint& c) {
      return log2_failure(c, params, with_lookups) <= options.search.log2_p_fail;
    });
  }
  // Union bound (Boole's inequality): P(any element fails) <= sum of the elements' failure
  // probabilities, whatever their dependence. Concrete's global_p_error combines them as
  // 1 - prod(1 - p_i) for independent failures (zama-ai/concrete docs/core-features/
  // table_lookups_advanced.md, "Table lookup exactness"), which the sum bounds from above.
  double total = 0;
  for (const NoiseConstraint& c : constraints) {
    total += static_cast<double>(c.count) * std::exp2(log2_failure(c, params, with_lookups));
  }
  return total <= *options.global_p_error;
}

std::string format(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), pattern, value);
  return buffer;
}

// "2^-40.02", "< 2^-1000" below that (the model's tail is meaningless there), or "0" for -inf.
std::string power_of_two(double log2_value) {
  if (std::isinf(log2_value) && log2_value < 0) return "0";
  if (log2_value < -1000) return "< 2^-1000";
  return format("2^%.2f", log2_value);
}

std::string describe_constraint(const NoiseConstraint& c) {
  return std::string(c.kind == Kind::kLookup ? "lookup " : "output ") + quoted_label(c) + " (" +
         std::to_string(c.bits.value) + " bits, nu2=" + power_of_two(std::log2(c.nu2)) +
         (c.nu2_fresh > 0 ? ", on inputs " + power_of_two(std::log2(c.nu2_fresh)) : "") + ")";
}

std::string binding_sentence(std::span<const NoiseConstraint> constraints,
                             const std::vector<double>& log2_p_fail, double global_p_fail,
                             const CircuitSearchOptions& options) {
  if (!options.global_p_error) {
    // Same bound for all: the least slack is the largest failure (the first one on ties).
    const std::size_t worst = static_cast<std::size_t>(
        std::max_element(log2_p_fail.begin(), log2_p_fail.end()) - log2_p_fail.begin());
    const double bound = options.search.log2_p_fail;
    const double slack = bound - log2_p_fail[worst];
    return describe_constraint(constraints[worst]) + ": p_fail " +
           power_of_two(log2_p_fail[worst]) + (slack >= 0 ? " within" : " OVER") + " the bound " +
           power_of_two(bound) +
           (slack > 1000 ? std::string(" (slack > 1000 in log2)")
                         : " (slack " + format("%.2f", slack) + " in log2)");
  }
  const double budget = *options.global_p_error;
  std::size_t largest = 0;
  double largest_share = -1;
  for (std::size_t i = 0; i < constraints.size(); ++i) {
    const double share = static_cast<double>(constraints[i].count) * std::exp2(log2_p_fail[i]);
    if (share > largest_share) {
      largest = i;
      largest_share = share;
    }
  }
  const double percent_of_total = global_p_fail > 0 ? 100.0 * largest_share / global_p_fail : 0.0;
  return "global p_fail " + power_of_two(std::log2(global_p_fail)) + " uses " +
         format("%.1f", 100.0 * global_p_fail / budget) + "% of global_p_error " +
         power_of_two(std::log2(budget)) + "; largest share (" + format("%.1f", percent_of_total) +
         "%): " + describe_constraint(constraints[largest]) + " x" +
         std::to_string(constraints[largest].count) + " at " + power_of_two(log2_p_fail[largest]) +
         " each";
}

CircuitParameters evaluate_unchecked(std::span<const NoiseConstraint> constraints,
                                     std::span<const PbsParameters> partitions,
                                     std::span<const std::uint32_t> group_partition,
                                     const CircuitSearchOptions& options,
                                     std::uint32_t input_partition = 0) {
  const bool with_lookups = has_lookup(constraints);
  const bool partitioned = partitions.size() > 1;
  CircuitParameters result;
  result.parameters = partitions[0];
  if (with_lookups) result.partitions.assign(partitions.begin(), partitions.end());
  if (partitioned) result.group_partition.assign(group_partition.begin(), group_partition.end());
  result.input_partition = input_partition;
  result.needs_bootstrap = with_lookups;
  result.worst_log2_p_fail = -std::numeric_limits<double>::infinity();
  result.log2_p_fail.reserve(constraints.size());
  for (const NoiseConstraint& c : constraints) {
    const double l = partitioned ? log2_failure(c, partitions, group_partition, input_partition)
                                 : log2_failure(c, partitions[0], with_lookups);
    result.log2_p_fail.push_back(l);
    result.worst_log2_p_fail = std::max(result.worst_log2_p_fail, l);
    if (c.kind == Kind::kLookup) {
      // The key switch reads the big key the lookup's input is under.
      const PbsParameters& set = partitions[partitioned ? group_partition[*c.group] : 0];
      const PbsParameters& from =
          partitions[partitioned ? source_partition(c, group_partition, input_partition) : 0];
      result.estimated_cost +=
          static_cast<double>(c.count) * estimated_cost(set, LweDimension{big_dimension(from)});
    }
  }
  if (partitioned) {
    for (std::size_t i = 0; i < constraints.size(); ++i) {
      result.global_p_fail +=
          static_cast<double>(constraints[i].count) * std::exp2(result.log2_p_fail[i]);
    }
  } else {
    // Summed over the constraints as the search reduces them, in the same order as
    // meets_bound, so that a set the search accepted is reported within the global bound to
    // the last bit.
    for (const NoiseConstraint& c : reduce(constraints, true)) {
      result.global_p_fail +=
          static_cast<double>(c.count) * std::exp2(log2_failure(c, partitions[0], with_lookups));
    }
  }
  result.within_bound = options.global_p_error
                            ? result.global_p_fail <= *options.global_p_error
                            : result.worst_log2_p_fail <= options.search.log2_p_fail;
  result.binding = binding_sentence(constraints, result.log2_p_fail, result.global_p_fail, options);
  return result;
}

// No bootstrap: the fields a bootstrap would use come from a known-valid set.
PbsParameters encryption_only_parameters(std::size_t polynomial_size, SecurityLevel level) {
  PbsParameters params = default_parameters(MessageBits{1});
  params.glwe_dimension = GlweDimension{1};
  params.polynomial_size = PolynomialSize{polynomial_size};
  params.glwe_noise = min_noise_std(polynomial_size, level);
  params.lwe_noise = min_noise_std(params.lwe_dimension.value, level);
  return params;
}

std::size_t first_log2_polynomial_size(std::span<const NoiseConstraint> constraints,
                                       const SearchOptions& search) {
  if (!has_lookup(constraints)) {
    return std::max(search.min_log2_polynomial_size, kMinLog2PolynomialSizeNoBootstrap);
  }
  // The test polynomial holds 2^bits boxes of the padded message space 2^(bits+1).
  return std::max(search.min_log2_polynomial_size, max_lookup_bits(constraints) + 1);
}

std::string range_text(const SearchOptions& search, std::size_t first_log2_n, bool lookups) {
  std::string text = lookups ? "k in [" + std::to_string(search.min_glwe_dimension) + ", " +
                                   std::to_string(search.max_glwe_dimension) + "], "
                             : std::string("k = 1, ");
  text += "N in [2^" + std::to_string(first_log2_n) + ", 2^" +
          std::to_string(search.max_log2_polynomial_size) + "]";
  if (lookups) {
    text += ", n in [" + std::to_string(search.min_lwe_dimension) + ", " +
            std::to_string(search.max_lwe_dimension) + "]";
  }
  return text;
}

}  // namespace

double linear_variance(const NoiseConstraint& c, const PbsParameters& params, bool with_lookups) {
  const double fresh = fresh_encryption_variance(params.glwe_noise);
  return c.nu2 * (with_lookups ? ciphertext_variance(params) : fresh) + c.nu2_fresh * fresh;
}

double linear_variance(const NoiseConstraint& c, std::span<const PbsParameters> partitions,
                       std::span<const std::uint32_t> group_partition,
                       std::uint32_t input_partition) {
  const double fresh = fresh_encryption_variance(partitions[input_partition].glwe_noise);
  return internal::bootstrapped_variance_of(
             c,
             [&](std::uint32_t g) {
               return ciphertext_variance(
                   partitions[group_partition.empty() ? 0 : group_partition[g]]);
             }) +
         c.nu2_fresh * fresh;
}

CircuitParameters evaluate_circuit_parameters(std::span<const NoiseConstraint> constraints,
                                              const PbsParameters& params,
                                              const CircuitSearchOptions& options) {
  validate(constraints, options);
  return evaluate_unchecked(constraints, std::span(&params, 1), {}, options);
}

CircuitParameters evaluate_circuit_parameters(std::span<const NoiseConstraint> constraints,
                                              std::span<const PbsParameters> partitions,
                                              std::span<const std::uint32_t> group_partition,
                                              const CircuitSearchOptions& options,
                                              std::uint32_t input_partition) {
  validate(constraints, options);
  const auto fail = [](const std::string& message) {
    throw std::invalid_argument("evaluate_circuit_parameters: " + message);
  };
  if (partitions.empty()) fail("no parameter set given; pass at least one partition");
  if (input_partition >= partitions.size()) {
    fail("the inputs' partition " + std::to_string(input_partition) + " does not exist (" +
         std::to_string(partitions.size()) + " partitions)");
  }
  if (partitions.size() > 1) {
    if (!partitionable(constraints)) {
      fail(
          "with several partitions every lookup needs a group and every constraint with nu2 > 0 "
          "its sources");
    }
    for (const NoiseConstraint& c : constraints) {
      const auto check = [&](std::uint32_t g) {
        if (g >= group_partition.size() || group_partition[g] >= partitions.size()) {
          fail("group " + std::to_string(g) + " of " + quoted_label(c) + " has no partition (" +
               std::to_string(group_partition.size()) + " groups mapped to " +
               std::to_string(partitions.size()) + " partitions)");
        }
      };
      if (c.group) check(*c.group);
      for (const SourceShare& s : c.sources) check(s.group);
      // What one linear combination adds must be under one big key.
      const PbsParameters& key = partitions[source_partition(c, group_partition, input_partition)];
      const auto mixed = [&](const PbsParameters& other, const std::string& what) {
        fail(quoted_label(c) + " adds ciphertexts under two big keys (" + describe(key) + " and " +
             what + " " + describe(other) +
             "): the sources of one linear combination need one k * N and GLWE noise");
      };
      for (const SourceShare& s : c.sources) {
        const PbsParameters& p = partitions[group_partition[s.group]];
        if (!same_big_key(p, key)) mixed(p, "group " + std::to_string(s.group) + "'s");
      }
      if (c.nu2_fresh > 0 && !same_big_key(partitions[input_partition], key)) {
        mixed(partitions[input_partition], "the inputs'");
      }
    }
  }
  for (const NoiseConstraint& c : constraints) {
    if (c.kind != NoiseConstraint::Kind::kLookup) continue;
    const PbsParameters& set =
        partitions.size() > 1 ? partitions[group_partition[*c.group]] : partitions[0];
    if (lookup_polynomial_size(set).value < (std::size_t{2} << c.bits.value)) {
      fail(quoted_label(c) + " (" + std::to_string(c.bits.value) + " bits) needs tables of >= " +
           std::to_string(std::size_t{2} << c.bits.value) + ", its partition has " + describe(set));
    }
  }
  return evaluate_unchecked(constraints, partitions, group_partition, options, input_partition);
}

std::optional<CircuitParameters> search_circuit_parameters(
    std::span<const NoiseConstraint> constraints, const CircuitSearchOptions& options) {
  validate(constraints, options);
  const bool global = options.global_p_error.has_value();
  const std::vector<NoiseConstraint> reduced = reduce(constraints, global);
  const bool with_lookups = has_lookup(constraints);
  SearchOptions ranges = options.search;
  ranges.min_log2_polynomial_size = first_log2_polynomial_size(constraints, options.search);
  if (ranges.min_log2_polynomial_size > ranges.max_log2_polynomial_size) return std::nullopt;

  if (!with_lookups) {
    // The fresh noise only shrinks with N (security.h), so the first N that decodes is the
    // smallest key and ciphertext.
    for (std::size_t log_n = ranges.min_log2_polynomial_size;
         log_n <= ranges.max_log2_polynomial_size; ++log_n) {
      const PbsParameters params =
          encryption_only_parameters(std::size_t{1} << log_n, options.search.security);
      if (!meets_bound(reduced, params, false, options)) continue;
      CircuitParameters result =
          evaluate_unchecked(constraints, std::span(&params, 1), {}, options);
      result.binding += "; no bootstrap: N=2^" + std::to_string(log_n) +
                        " is the smallest N >= 2^" +
                        std::to_string(ranges.min_log2_polynomial_size) +
                        " whose fresh noise decodes every output";
      return result;
    }
    return std::nullopt;
  }

  std::vector<internal::VarianceBound> bounds;
  bounds.reserve(reduced.size());
  for (const NoiseConstraint& c : reduced) {
    bounds.push_back({c.nu2, c.nu2_fresh,
                      max_variance_for_failure(c.bits, log2_element_bound(c, options)),
                      c.kind == Kind::kLookup});
  }
  const std::optional<PbsParameters> found =
      internal::search_minimum_cost(ranges, bounds, [&](const PbsParameters& candidate) {
        return meets_bound(reduced, candidate, true, options);
      });
  if (!found) return std::nullopt;
  CircuitParameters single = evaluate_unchecked(constraints, std::span(&*found, 1), {}, options);
  if (options.max_partitions < 2 || !partitionable(constraints)) return single;
  const std::optional<internal::Partitioning> split =
      internal::search_partitions(constraints, options, *found, single.estimated_cost);
  if (!split) return single;
  CircuitParameters result = evaluate_unchecked(
      constraints, split->partitions, split->group_partition, options, split->input_partition);
  // The descent's sums are checked again by the exact model; an edge case it disagrees on keeps
  // the single set.
  if (!result.within_bound || !(result.estimated_cost < single.estimated_cost)) return single;
  return result;
}

std::string explain_no_parameters(std::span<const NoiseConstraint> constraints,
                                  const CircuitSearchOptions& options) {
  validate(constraints, options);
  const SearchOptions& search = options.search;
  const bool global = options.global_p_error.has_value();
  const bool with_lookups = has_lookup(constraints);
  const std::vector<NoiseConstraint> reduced = reduce(constraints, global);
  const std::size_t first_log2_n = first_log2_polynomial_size(constraints, search);
  if (first_log2_n > search.max_log2_polynomial_size) {
    if (!with_lookups) {
      return "a circuit without lookups uses N >= 2^" +
             std::to_string(kMinLog2PolynomialSizeNoBootstrap) +
             ", but max_log2_polynomial_size is " + std::to_string(search.max_log2_polynomial_size);
    }
    const auto widest = std::max_element(reduced.begin(), reduced.end(),
                                         [](const NoiseConstraint& a, const NoiseConstraint& b) {
                                           return (a.kind == Kind::kLookup ? a.bits.value : 0) <
                                                  (b.kind == Kind::kLookup ? b.bits.value : 0);
                                         });
    return describe_constraint(*widest) + " needs N >= 2^" +
           std::to_string(widest->bits.value + 1) + " for its table of 2^" +
           std::to_string(widest->bits.value) +
           " entries with padding; the search range stops at " + "N = 2^" +
           std::to_string(search.max_log2_polynomial_size) +
           " (max_log2_polynomial_size, at most 16): lower the precision";
  }

  // Per constraint: the largest variance its bound allows (at the bootstrap input for a lookup,
  // at decryption for an output), and the smallest the ranges reach for it alone.
  const std::size_t m = reduced.size();
  std::vector<double> needed(m);
  std::vector<double> reached(m, std::numeric_limits<double>::infinity());
  std::vector<std::string> reached_at(m);
  for (std::size_t j = 0; j < m; ++j) {
    needed[j] = max_variance_for_failure(reduced[j].bits, log2_element_bound(reduced[j], options));
  }
  const auto consider = [&](const PbsParameters& params) {
    for (std::size_t j = 0; j < m; ++j) {
      const NoiseConstraint& c = reduced[j];
      const double linear = linear_variance(c, params, with_lookups);
      const double v = c.kind == Kind::kLookup ? variance_at_lookup(params, linear) : linear;
      if (v < reached[j]) {
        reached[j] = v;
        reached_at[j] = describe(params);
      }
    }
  };
  if (!with_lookups) {
    for (std::size_t log_n = first_log2_n; log_n <= search.max_log2_polynomial_size; ++log_n) {
      consider(encryption_only_parameters(std::size_t{1} << log_n, search.security));
    }
  } else {
    // Each noise term is minimised by its own choice of base and level (the cost is ignored);
    // the key-switch rounding term, which this leaves out, is ~2^-64 or less.
    for (std::size_t k = search.min_glwe_dimension; k <= search.max_glwe_dimension; ++k) {
      for (std::size_t log_n = first_log2_n; log_n <= search.max_log2_polynomial_size; ++log_n) {
        const std::size_t big_n = std::size_t{1} << log_n;
        if (k * big_n < kMinSecureDimension) continue;
        const NoiseStdDev glwe_noise = min_noise_std(k * big_n, search.security);
        std::pair<std::size_t, std::size_t> pbs{0, 0};
        double pbs_variance = std::numeric_limits<double>::infinity();
        for (std::size_t l = 1; l <= search.max_pbs_level; ++l) {
          for (std::size_t b = 1; b * l <= search.max_pbs_base_log_times_level; ++b) {
            const double v = external_product_variance(GlweDimension{k}, PolynomialSize{big_n},
                                                       DecompositionBaseLog{b},
                                                       DecompositionLevelCount{l}, glwe_noise);
            if (v < pbs_variance) {
              pbs_variance = v;
              pbs = {b, l};
            }
          }
        }
        for (std::size_t n = search.min_lwe_dimension; n <= search.max_lwe_dimension; ++n) {
          const NoiseStdDev lwe_noise = min_noise_std(n, search.security);
          std::pair<std::size_t, std::size_t> ks{0, 0};
          double ks_variance = std::numeric_limits<double>::infinity();
          for (std::size_t l = 1; l <= search.max_ks_level; ++l) {
            for (std::size_t b = 1; b * l <= search.max_ks_base_log_times_level; ++b) {
              const double v = keyswitch_variance(LweDimension{1}, DecompositionBaseLog{b},
                                                  DecompositionLevelCount{l}, lwe_noise);
              if (v < ks_variance) {
                ks_variance = v;
                ks = {b, l};
              }
            }
          }
          // Lookup tables of N * 2^e (bootstrap.h) as the search tries them.
          for (std::size_t e = search.min_extension_log;
               e <= search.max_extension_log && log_n + e <= internal::kMaxLog2LookupSize; ++e) {
            consider(PbsParameters{
                LweDimension{n}, GlweDimension{k}, PolynomialSize{big_n}, lwe_noise, glwe_noise,
                DecompositionBaseLog{pbs.first}, DecompositionLevelCount{pbs.second},
                DecompositionBaseLog{ks.first}, DecompositionLevelCount{ks.second}, e});
          }
        }
      }
    }
  }

  const std::string range = range_text(search, first_log2_n, with_lookups);
  std::size_t hardest = 0;
  double hardest_gap = -std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < m; ++j) {
    const double gap = std::log2(reached[j]) - std::log2(needed[j]);
    if (gap > hardest_gap) {
      hardest = j;
      hardest_gap = gap;
    }
  }
  if (std::isinf(reached[hardest])) {
    return "no parameter set in the ranges (" + range +
           ") has k*N >= " + std::to_string(kMinSecureDimension) +
           ", the smallest dimension the 128-bit curve covers";
  }
  const NoiseConstraint& c = reduced[hardest];
  const double log2_bound = log2_element_bound(c, options);
  std::string bound_text = "p_fail <= " + power_of_two(log2_bound);
  if (global) {
    bound_text += " (global_p_error " + power_of_two(std::log2(*options.global_p_error)) +
                  " over its " + std::to_string(c.count) +
                  (c.count == 1 ? " element)" : " elements)");
  }
  const std::string where = c.kind == Kind::kLookup ? "at the bootstrap input" : "at decryption";
  const std::string need = describe_constraint(c) +
                           " needs a variance <= " + power_of_two(std::log2(needed[hardest])) +
                           " " + where + " for " + bound_text;
  const std::string best =
      power_of_two(std::log2(reached[hardest])) + " (" + reached_at[hardest] + ")";
  if (hardest_gap > 0) {
    return need + "; the smallest reachable with " + range + " is " + best +
           (with_lookups ? ": lower its precision or weights, relax the bound, or widen the ranges"
                         : ": lower the output precision or weights, or relax the bound");
  }
  return "each constraint fits alone but not all at once (" + range +
         (global ? "; the union bound adds up all elements" : "") + "); the tightest: " + need +
         ", and it reaches " + best + " alone";
}

}  // namespace fheml::tfhe
