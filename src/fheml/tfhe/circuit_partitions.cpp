// Partitions of a circuit's lookups, each with its own parameter set (Concrete's "multi-parameter"
// optimisation: zama-ai/concrete compilers/concrete-optimizer, optimization/dag/multi_parameters).
// Here the partitions share the big GLWE key (k, N, GLWE noise): every ciphertext between
// operations is under the same key, so linear parts mix partitions freely and no conversion key
// exists; a partition is its small key n, its key switch and its bootstrap decomposition. That
// is what the circuits of this project need first: their lookups have one or two precisions but
// very different noise needs (a lookup whose outputs feed a dot product of squared norm 2^9 needs
// a low-noise, 2-level bootstrap key; the next one, read by a decrypted output, does not).
//
// The search, per (k, N): the sets on the Pareto front of (cost, ciphertext variance, variance
// added at a lookup's input), cheapest first; a start at the cheapest set that all groups accept
// together; a descent that moves each group to the cheapest set its own input and its consumers
// accept (a set already in use first; a new one only if it saves min_partition_gain); merges of
// partitions while there are more than max_partitions or one saves less than min_partition_gain.
// Failure checks use the per-element bound, or (global_p_error) the union bound recomputed
// exactly for the constraints a move touches.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameter_search_internal.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe::internal {

namespace {

using Kind = NoiseConstraint::Kind;
constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
// Keeps the search's own sums (which add the terms in another order than variance_at_lookup)
// on the safe side of the exact check that follows it.
constexpr double kMargin = 1.0 - 1e-9;
constexpr int kRounds = 4;

struct Candidate {
  PbsParameters params;
  double cost = 0;
  double vc = 0;    // ciphertext_variance
  double v_in = 0;  // key switch + its rounding + modulus switch, at a lookup's input
};

// Per n and key-switch level: the variance-minimising base and its variance per input
// coefficient (independent of k and N), as search_minimum_cost.
struct KeySwitchChoice {
  std::size_t base_log = 0;
  double per_coefficient = std::numeric_limits<double>::infinity();
};

std::vector<KeySwitchChoice> keyswitch_choices(const SearchOptions& o) {
  std::vector<KeySwitchChoice> out;
  for (std::size_t n = o.min_lwe_dimension; n <= o.max_lwe_dimension; ++n) {
    const NoiseStdDev lwe_noise = min_noise_std(n, o.security);
    for (std::size_t ks_l = 1; ks_l <= o.max_ks_level; ++ks_l) {
      KeySwitchChoice best;
      for (std::size_t b = 1; b * ks_l <= o.max_ks_base_log_times_level; ++b) {
        const double v = keyswitch_variance(LweDimension{1}, DecompositionBaseLog{b},
                                            DecompositionLevelCount{ks_l}, lwe_noise);
        if (v < best.per_coefficient) best = {b, v};
      }
      out.push_back(best);
    }
  }
  return out;
}

// The sets of one (k, N) with the variance-minimising base per level (as search_minimum_cost),
// reduced to those no cheaper set beats on both variances, cheapest first.
std::vector<Candidate> candidates(std::size_t k, std::size_t big_n, const SearchOptions& o,
                                  const std::vector<KeySwitchChoice>& ks_choices) {
  const std::size_t kn = k * big_n;
  const NoiseStdDev glwe_noise = min_noise_std(kn, o.security);
  const double fresh = fresh_encryption_variance(glwe_noise);
  std::vector<std::pair<std::size_t, double>> pbs;  // (base_log, variance) per level
  for (std::size_t l = 1; l <= o.max_pbs_level; ++l) {
    std::pair<std::size_t, double> best{0, std::numeric_limits<double>::infinity()};
    for (std::size_t b = 1; b * l <= o.max_pbs_base_log_times_level; ++b) {
      const double v = external_product_variance(GlweDimension{k}, PolynomialSize{big_n},
                                                 DecompositionBaseLog{b},
                                                 DecompositionLevelCount{l}, glwe_noise);
      if (v < best.second) best = {b, v};
    }
    pbs.push_back(best);
  }
  std::vector<Candidate> all;
  for (std::size_t n = o.min_lwe_dimension; n <= o.max_lwe_dimension; ++n) {
    const NoiseStdDev lwe_noise = min_noise_std(n, o.security);
    const double ms = modulus_switch_variance(LweDimension{n}, PolynomialSize{big_n});
    for (std::size_t ks_l = 1; ks_l <= o.max_ks_level; ++ks_l) {
      const KeySwitchChoice& ks =
          ks_choices[(n - o.min_lwe_dimension) * o.max_ks_level + (ks_l - 1)];
      if (ks.base_log == 0) continue;
      const double v_in = static_cast<double>(kn) * ks.per_coefficient +
                          keyswitch_rounding_variance(LweDimension{kn}, LweDimension{n},
                                                      DecompositionBaseLog{ks.base_log},
                                                      DecompositionLevelCount{ks_l}) +
                          ms;
      for (std::size_t l = 1; l <= o.max_pbs_level; ++l) {
        if (pbs[l - 1].first == 0) continue;
        Candidate c;
        c.params = PbsParameters{LweDimension{n},
                                 GlweDimension{k},
                                 PolynomialSize{big_n},
                                 lwe_noise,
                                 glwe_noise,
                                 DecompositionBaseLog{pbs[l - 1].first},
                                 DecompositionLevelCount{l},
                                 DecompositionBaseLog{ks.base_log},
                                 DecompositionLevelCount{ks_l}};
        c.cost = estimated_cost(c.params);
        c.vc = std::max(fresh, static_cast<double>(n) * pbs[l - 1].second);
        c.v_in = v_in;
        all.push_back(c);
      }
    }
  }
  std::sort(all.begin(), all.end(),
            [](const Candidate& a, const Candidate& b) { return a.cost < b.cost; });
  // Pareto front: keep a set unless a cheaper kept one is no noisier on both counts. `stairs`
  // holds the kept sets' minimal points, vc ascending and v_in descending: a set is dominated
  // iff the stair at the largest vc <= its own has v_in <= its own.
  std::vector<Candidate> front;
  std::map<double, double> stairs;  // vc -> v_in
  for (const Candidate& c : all) {
    auto it = stairs.upper_bound(c.vc);
    if (it != stairs.begin() && std::prev(it)->second <= c.v_in) continue;
    front.push_back(c);
    // Points it dominates (vc >= its own, v_in >= its own) leave the staircase.
    auto first = stairs.lower_bound(c.vc);
    auto last = first;
    while (last != stairs.end() && last->second >= c.v_in) ++last;
    stairs.erase(first, last);
    stairs[c.vc] = c.v_in;
  }
  return front;
}

// One (k, N): groups assigned to candidates, with the checks of a move.
class Descent {
 public:
  Descent(std::span<const NoiseConstraint> constraints, const CircuitSearchOptions& options,
          std::vector<Candidate> cands, std::size_t group_count)
      : constraints_(constraints),
        options_(options),
        cands_(std::move(cands)),
        fresh_(fresh_encryption_variance(cands_.front().params.glwe_noise)),
        assigned_(group_count, kNone),
        affected_(group_count),
        count_(group_count, 0) {
    const bool global = options.global_p_error.has_value();
    for (std::size_t i = 0; i < constraints.size(); ++i) {
      const NoiseConstraint& c = constraints[i];
      // Per element: its bound; global: the whole budget on this constraint alone (necessary).
      const double log2_bound =
          global ? std::log2(*options.global_p_error / static_cast<double>(c.count))
                 : options.search.log2_p_fail;
      max_variance_.push_back(max_variance_for_failure(c.bits, log2_bound) * kMargin);
      std::set<std::uint32_t> groups;
      if (c.kind == Kind::kLookup) {
        groups.insert(*c.group);
        count_[*c.group] += static_cast<double>(c.count);
      }
      for (const SourceShare& s : c.sources) groups.insert(s.group);
      for (const std::uint32_t g : groups) affected_[g].push_back(i);
    }
    terms_.assign(constraints.size(), 0.0);
  }

  std::size_t candidate_count() const { return cands_.size(); }
  const Candidate& candidate(std::size_t x) const { return cands_[x]; }

  // Assigns every group to the cheapest candidate all accept together; false if none does.
  bool start() {
    std::vector<std::uint32_t> all(assigned_.size());
    for (std::uint32_t g = 0; g < all.size(); ++g) all[g] = g;
    const std::size_t x = cheapest_for(all, kNone);
    if (x == kNone) return false;
    for (const std::uint32_t g : all) assigned_[g] = x;
    recompute_terms();
    return true;
  }

  // Moves single groups to cheaper sets until nothing moves (at most kRounds passes).
  void descend(bool allow_new) {
    std::vector<std::uint32_t> order(assigned_.size());
    for (std::uint32_t g = 0; g < order.size(); ++g) order[g] = g;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::uint32_t a, std::uint32_t b) { return count_[a] > count_[b]; });
    for (int round = 0; round < kRounds; ++round) {
      bool moved = false;
      for (const std::uint32_t g : order) {
        if (count_[g] == 0) continue;
        const std::vector<std::uint32_t> one{g};
        const std::size_t current = assigned_[g];
        // Sets in use first: a new one must save min_partition_gain over the best of them.
        std::size_t best_used = current;
        for (const std::size_t x : used()) {
          if (cands_[x].cost < cands_[best_used].cost && accepts(one, x)) best_used = x;
        }
        std::size_t choice = best_used;
        if (allow_new) {
          const std::size_t fresh_choice = cheapest_for(one, best_used);
          if (fresh_choice != kNone &&
              cands_[fresh_choice].cost <
                  cands_[best_used].cost * (1.0 - options_.min_partition_gain)) {
            choice = fresh_choice;
          }
        }
        if (choice != current) {
          assign(one, choice);
          moved = true;
        }
      }
      if (!moved) break;
    }
  }

  // Merges partitions while there are more than max_partitions or a merge costs less than
  // min_partition_gain of the total.
  void merge() {
    for (;;) {
      const std::vector<std::size_t> sets = used();
      if (sets.size() <= 1) return;
      double best_total = std::numeric_limits<double>::infinity();
      std::vector<std::uint32_t> best_groups;
      std::size_t best_x = kNone;
      for (std::size_t i = 0; i < sets.size(); ++i) {
        for (std::size_t j = i + 1; j < sets.size(); ++j) {
          std::vector<std::uint32_t> groups;
          for (std::uint32_t g = 0; g < assigned_.size(); ++g) {
            if (assigned_[g] == sets[i] || assigned_[g] == sets[j]) groups.push_back(g);
          }
          const std::size_t x = cheapest_for(groups, kNone);
          if (x == kNone) continue;
          const double total = cost_with(groups, x);
          if (total < best_total) {
            best_total = total;
            best_groups = groups;
            best_x = x;
          }
        }
      }
      if (best_x == kNone) return;
      const bool too_many = sets.size() > options_.max_partitions;
      if (!too_many && best_total - cost() >= options_.min_partition_gain * cost()) return;
      assign(best_groups, best_x);
    }
  }

  double cost() const { return cost_with({}, kNone); }

  std::vector<std::size_t> used() const {
    std::vector<std::size_t> sets;
    for (const std::size_t x : assigned_) {
      if (std::find(sets.begin(), sets.end(), x) == sets.end()) sets.push_back(x);
    }
    return sets;
  }
  std::size_t assigned(std::uint32_t g) const { return assigned_[g]; }

 private:
  double cost_with(const std::vector<std::uint32_t>& groups, std::size_t x) const {
    double total = 0;
    for (std::uint32_t g = 0; g < assigned_.size(); ++g) {
      const bool moved = std::find(groups.begin(), groups.end(), g) != groups.end();
      total += count_[g] * cands_[moved ? x : assigned_[g]].cost;
    }
    return total;
  }

  // Variance of constraint i at its check point (bootstrap input or decryption) under the
  // assignment `a`.
  double variance(std::size_t i, const std::vector<std::size_t>& a) const {
    const NoiseConstraint& c = constraints_[i];
    double v = bootstrapped_variance_of(c, [&](std::uint32_t g) { return cands_[a[g]].vc; }) +
               c.nu2_fresh * fresh_;
    if (c.kind == Kind::kLookup) v += cands_[a[*c.group]].v_in;
    return v;
  }

  double term(std::size_t i, double v) const {
    return static_cast<double>(constraints_[i].count) *
           std::exp2(log2_failure_probability_for_variance(constraints_[i].bits, v));
  }

  void recompute_terms() {
    if (!options_.global_p_error) return;
    total_ = 0;
    for (std::size_t i = 0; i < constraints_.size(); ++i) {
      terms_[i] = term(i, variance(i, assigned_));
      total_ += terms_[i];
    }
  }

  // The constraints `groups` touch, each once.
  std::vector<std::size_t> touched_by(const std::vector<std::uint32_t>& groups) const {
    if (groups.size() == 1) return affected_[groups[0]];
    std::vector<std::size_t> touched;
    for (const std::uint32_t g : groups) {
      touched.insert(touched.end(), affected_[g].begin(), affected_[g].end());
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    return touched;
  }

  bool accepts(const std::vector<std::uint32_t>& groups, const std::vector<std::size_t>& touched,
               std::size_t x) const {
    std::vector<std::size_t>& a = scratch_;
    a = assigned_;
    for (const std::uint32_t g : groups) a[g] = x;
    double total = total_;
    for (const std::size_t i : touched) {
      const double v = variance(i, a);
      if (!(v <= max_variance_[i])) return false;
      if (options_.global_p_error) total += term(i, v) - terms_[i];
    }
    return !options_.global_p_error || total <= *options_.global_p_error * kMargin;
  }
  bool accepts(const std::vector<std::uint32_t>& groups, std::size_t x) const {
    return accepts(groups, touched_by(groups), x);
  }

  // The cheapest candidate `groups` accept together, cheaper than `below` (kNone: any).
  std::size_t cheapest_for(const std::vector<std::uint32_t>& groups, std::size_t below) const {
    const double limit =
        below == kNone ? std::numeric_limits<double>::infinity() : cands_[below].cost;
    const std::vector<std::size_t> touched = touched_by(groups);
    for (std::size_t x = 0; x < cands_.size() && cands_[x].cost < limit; ++x) {
      if (accepts(groups, touched, x)) return x;
    }
    return kNone;
  }

  void assign(const std::vector<std::uint32_t>& groups, std::size_t x) {
    for (const std::uint32_t g : groups) assigned_[g] = x;
    recompute_terms();
  }

  std::span<const NoiseConstraint> constraints_;
  const CircuitSearchOptions& options_;
  std::vector<Candidate> cands_;
  double fresh_;
  std::vector<std::size_t> assigned_;
  std::vector<std::vector<std::size_t>> affected_;  // per group: constraints it touches
  std::vector<double> count_;                       // per group: lookups
  std::vector<double> max_variance_;                // per constraint
  std::vector<double> terms_;                       // global mode: count * P_fail
  double total_ = 0;
  mutable std::vector<std::size_t> scratch_;
};

}  // namespace

std::optional<Partitioning> search_partitions(std::span<const NoiseConstraint> constraints,
                                              const CircuitSearchOptions& options,
                                              double single_cost) {
  std::uint32_t group_count = 0;
  std::size_t max_bits = 0;
  for (const NoiseConstraint& c : constraints) {
    if (c.kind == Kind::kLookup) {
      group_count = std::max(group_count, *c.group + 1);
      max_bits = std::max(max_bits, c.bits.value);
    }
    for (const SourceShare& s : c.sources) group_count = std::max(group_count, s.group + 1);
  }
  const SearchOptions& o = options.search;
  double lookups = 0;
  for (const NoiseConstraint& c : constraints) {
    if (c.kind == Kind::kLookup) lookups += static_cast<double>(c.count);
  }
  // (k, N) by the least any set of theirs costs (the smallest n and single levels): every
  // lookup pays at least that, so once one partitioning is found most are skipped unbuilt.
  std::vector<std::pair<double, std::pair<std::size_t, std::size_t>>> shapes;
  for (std::size_t k = o.min_glwe_dimension; k <= o.max_glwe_dimension; ++k) {
    for (std::size_t log_n = std::max(o.min_log2_polynomial_size, max_bits + 1);
         log_n <= o.max_log2_polynomial_size; ++log_n) {
      const std::size_t big_n = std::size_t{1} << log_n;
      if (k * big_n < kMinSecureDimension) continue;
      PbsParameters least = default_parameters(MessageBits{1});
      least.lwe_dimension = LweDimension{o.min_lwe_dimension};
      least.glwe_dimension = GlweDimension{k};
      least.polynomial_size = PolynomialSize{big_n};
      least.pbs_level = DecompositionLevelCount{1};
      least.ks_level = DecompositionLevelCount{1};
      shapes.push_back({lookups * estimated_cost(least), {k, big_n}});
    }
  }
  std::sort(shapes.begin(), shapes.end());
  const std::vector<KeySwitchChoice> ks_choices = keyswitch_choices(o);
  std::optional<Partitioning> best;
  double best_cost = single_cost * (1.0 - options.min_partition_gain);
  for (const auto& [least_cost, shape] : shapes) {
    {
      if (least_cost >= best_cost) break;
      const auto [k, big_n] = shape;
      std::vector<Candidate> cands = candidates(k, big_n, o, ks_choices);
      if (cands.empty()) continue;
      Descent descent(constraints, options, std::move(cands), group_count);
      if (!descent.start()) continue;
      descent.descend(true);
      descent.merge();
      descent.descend(false);
      const double cost = descent.cost();
      const std::vector<std::size_t> sets = descent.used();
      // Merges that no set accepts can leave more than max_partitions: not a result.
      if (sets.size() < 2 || sets.size() > options.max_partitions || !(cost < best_cost)) continue;
      Partitioning p;
      p.cost = cost;
      // Partitions numbered by their first group.
      p.group_partition.resize(group_count);
      for (std::uint32_t g = 0; g < group_count; ++g) {
        const std::size_t x = descent.assigned(g);
        std::size_t index = 0;
        while (index < p.partitions.size() && !(p.partitions[index] == descent.candidate(x).params))
          ++index;
        if (index == p.partitions.size()) p.partitions.push_back(descent.candidate(x).params);
        p.group_partition[g] = static_cast<std::uint32_t>(index);
      }
      best_cost = cost;
      best = std::move(p);
    }
  }
  return best;
}

}  // namespace fheml::tfhe::internal
