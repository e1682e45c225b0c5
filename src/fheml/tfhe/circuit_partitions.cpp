// Partitions of a circuit's lookups, each with its own parameter set (Concrete's "multi-parameter"
// optimisation: zama-ai/concrete compilers/concrete-optimizer, optimization/dag/multi_parameters).
// A partition is its small key n, its key switch and its bootstrap decomposition; partitions of
// one k * N and GLWE noise share the big key, so linear parts mix them freely. That is what the
// circuits of this project need first: their lookups have one or two precisions but very
// different noise needs (a lookup whose outputs feed a dot product of squared norm 2^9 needs a
// low-noise, 2-level bootstrap key; the next one, read by a decrypted output, does not). With
// own_big_keys, components of lookups that no linear part adds to the others' may also take a
// (k, N) of their own, reading other big keys through key switches from them.
//
// The search, per (k, N): the sets on the Pareto front of (cost, ciphertext variance, variance
// added at a lookup's input), cheapest first; a start at the cheapest set that all groups accept
// together; a descent that moves each group to the cheapest set its own input and its consumers
// accept, of any (k, N) with its component's k * N (one big key reads as a GLWE key of each: a
// 2-bit rounding chunk at k = 2, N = 1024 beside 4-bit relus at k = 1, N = 2048) (a set already
// in use first; a new one only if it saves min_partition_gain); merges of partitions of one big
// key while there are more than max_partitions or one saves less than min_partition_gain.
// Then, from the best of those, each component in turn at every other (k, N) that could save
// anything: its groups to the cheapest set of that shape all constraints accept, the same
// descent and merges (within its big key), kept where the circuit saves min_partition_gain.
// Failure checks use the per-element bound, or (global_p_error) the union bound recomputed
// exactly for the constraints a move touches (all of them when a component changes shape).
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameter_search_internal.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe::internal {

namespace {

using Kind = NoiseConstraint::Kind;
constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
// Tables of N * 2^e the partition search tries: with k = 1 and N <= 2048 only (where the search's
// single sets take them). Every e for every (k, N) made 5x the shapes and their candidates, and
// compiling the MLP and CNN benchmarks 3-4x slower (0.22 -> 0.92 s, 0.63 -> 2.15 s) for no set
// they picked (bench/README.md, "Extended lookup tables"); the single-set search tries them all.
constexpr std::size_t kMaxPartitionExtendedLog2N = 11;
// Keeps the search's own sums (which add the terms in another order than variance_at_lookup)
// on the safe side of the exact check that follows it.
constexpr double kMargin = 1.0 - 1e-9;
constexpr int kRounds = 4;

// One (k, N) per component, groups assigned to candidates of their component's (k, N), with the
// checks of a move. Candidates are indexed across all shapes; by_shape_[s] lists those of shape
// s, cheapest first.
class Descent {
 public:
  Descent(std::span<const NoiseConstraint> constraints, const CircuitSearchOptions& options,
          const std::vector<Candidate>& cands, std::size_t shape_count, const Components& comps,
          std::size_t shape)
      : constraints_(constraints),
        options_(&options),
        cands_(&cands),
        by_shape_(shape_count),
        comps_(&comps),
        shape_of_comp_(comps.count, shape),
        assigned_(comps.of_group.size(), kNone),
        affected_(comps.of_group.size()),
        count_(comps.of_group.size(), 0),
        bits_(comps.of_group.size(), 0) {
    index_candidates();
    const bool global = options.global_p_error.has_value();
    for (std::size_t i = 0; i < constraints.size(); ++i) {
      const NoiseConstraint& c = constraints[i];
      // Per element: its bound; global: the whole budget on this constraint alone (necessary).
      const double log2_bound =
          global ? std::log2(*options.global_p_error / static_cast<double>(c.count))
                 : options.search.log2_p_fail;
      max_variance_.push_back(max_variance_for_failure(c.bits, log2_bound) * kMargin);
      source_comp_.push_back(c.sources.empty() ? comps.inputs
                                               : comps.of_group[c.sources.front().group]);
      std::set<std::uint32_t> groups;
      if (c.kind == Kind::kLookup) {
        groups.insert(*c.group);
        count_[*c.group] += static_cast<double>(c.count);
        bits_[*c.group] = std::max(bits_[*c.group], c.bits.value);
      }
      for (const SourceShare& s : c.sources) groups.insert(s.group);
      for (const std::uint32_t g : groups) affected_[g].push_back(i);
    }
    terms_.assign(constraints.size(), 0.0);
  }

  // Lists the candidates by shape again (after more shapes were built).
  void index_candidates() {
    for (auto& list : by_shape_) list.clear();
    for (std::size_t x = 0; x < cands_->size(); ++x) by_shape_[(*cands_)[x].shape].push_back(x);
  }

  const Candidate& candidate(std::size_t x) const { return (*cands_)[x]; }
  std::size_t shape_of_comp(std::uint32_t c) const { return shape_of_comp_[c]; }

  // Assigns every group to the cheapest candidate all accept together (every component at the
  // shape given to the constructor); false if none does.
  bool start() {
    std::vector<std::uint32_t> all(assigned_.size());
    for (std::uint32_t g = 0; g < all.size(); ++g) all[g] = g;
    const std::size_t x = cheapest_for(all, shape_of_comp_[comps_->inputs], kNone);
    if (x == kNone) return false;
    for (const std::uint32_t g : all) assigned_[g] = x;
    recompute_terms();
    return true;
  }

  // Component `comp` at shape s: its groups to the cheapest candidate of s they accept together,
  // the rest where it is (every constraint checked: the shape also moves the key switches and
  // fresh noise that read this component's big key); false if none accepts.
  bool set_shape(std::uint32_t comp, std::size_t s) {
    std::vector<std::uint32_t> groups;
    for (std::uint32_t g = 0; g < assigned_.size(); ++g) {
      if (comps_->of_group[g] != comp) continue;
      // The test polynomial holds 2^bits boxes of the padded message space.
      if ((*shapes_n_)[s] < (std::size_t{2} << bits_[g])) return false;
      groups.push_back(g);
    }
    shape_of_comp_[comp] = s;
    std::vector<std::size_t> all(constraints_.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    if (groups.empty()) {
      if (!accepts(groups, all, kNone, true)) return false;
      recompute_terms();
      return true;
    }
    for (const std::size_t x : by_shape_[s]) {
      if (accepts(groups, all, x, true)) {
        assign(groups, x);
        return true;
      }
    }
    return false;
  }

  // Moves single groups to cheaper sets of their shape until nothing moves (at most kRounds
  // passes).
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
        const std::size_t shape = shape_of_comp_[comps_->of_group[g]];
        // Sets in use first: a new one must save min_partition_gain over the best of them. Any
        // (k, N) of the component's k * N will do: one big key reads as a GLWE key of each.
        std::size_t best_used = current;
        for (const std::size_t x : used()) {
          if (same_key(candidate(x).shape, shape) && fits(one, candidate(x).shape) &&
              candidate(x).cost < candidate(best_used).cost && accepts(one, x))
            best_used = x;
        }
        std::size_t choice = best_used;
        if (allow_new) {
          const std::size_t fresh_choice = cheapest_for_key(one, shape, best_used);
          if (fresh_choice != kNone &&
              candidate(fresh_choice).cost <
                  candidate(best_used).cost * (1.0 - options_->min_partition_gain)) {
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

  // Merges partitions of one shape while there are more than max_partitions or a merge costs
  // less than min_partition_gain of the total.
  void merge() {
    for (;;) {
      const std::vector<std::size_t> sets = used();
      if (sets.size() <= 1) return;
      double best_total = std::numeric_limits<double>::infinity();
      std::vector<std::uint32_t> best_groups;
      std::size_t best_x = kNone;
      for (std::size_t i = 0; i < sets.size(); ++i) {
        for (std::size_t j = i + 1; j < sets.size(); ++j) {
          if (!same_key(candidate(sets[i]).shape, candidate(sets[j]).shape)) continue;
          std::vector<std::uint32_t> groups;
          for (std::uint32_t g = 0; g < assigned_.size(); ++g) {
            if (assigned_[g] == sets[i] || assigned_[g] == sets[j]) groups.push_back(g);
          }
          const std::size_t x = cheapest_for_key(groups, candidate(sets[i]).shape, kNone);
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
      const bool too_many = sets.size() > options_->max_partitions;
      if (!too_many && best_total - cost() >= options_->min_partition_gain * cost()) return;
      assign(best_groups, best_x);
    }
  }

  double cost() const { return cost_with({}, kNone); }

  // The lookups of component `comp` (a lower bound of their cost at another shape prunes it).
  double lookups_of(std::uint32_t comp) const {
    double total = 0;
    for (std::uint32_t g = 0; g < assigned_.size(); ++g) {
      if (comps_->of_group[g] == comp) total += count_[g];
    }
    return total;
  }

  // What the lookups of component `comp` cost now.
  double cost_of(std::uint32_t comp) const {
    double total = 0;
    for (std::size_t i = 0; i < constraints_.size(); ++i) {
      const NoiseConstraint& c = constraints_[i];
      if (c.kind != Kind::kLookup || comps_->of_group[*c.group] != comp) continue;
      total += static_cast<double>(c.count) * lookup_cost(i, assigned_[*c.group]);
    }
    return total;
  }

  // The inputs' big key is that of a set in use.
  bool inputs_have_a_key() const {
    for (const std::size_t x : used()) {
      if (candidate(x).shape == shape_of_comp_[comps_->inputs]) return true;
    }
    return false;
  }

  std::vector<std::size_t> used() const {
    std::vector<std::size_t> sets;
    for (const std::size_t x : assigned_) {
      if (std::find(sets.begin(), sets.end(), x) == sets.end()) sets.push_back(x);
    }
    return sets;
  }
  std::size_t assigned(std::uint32_t g) const { return assigned_[g]; }

 private:
  std::size_t dimension_of_comp(std::uint32_t comp) const {
    return (*shapes_dimension_)[shape_of_comp_[comp]];
  }

 public:
  // Per shape: its k * N, N and fresh encryption variance (set once, before any search).
  void set_shapes(const std::vector<std::size_t>* dimension, const std::vector<std::size_t>* n,
                  const std::vector<double>* fresh) {
    shapes_dimension_ = dimension;
    shapes_n_ = n;
    shapes_fresh_ = fresh;
  }

 private:
  // Cost of one lookup of constraint i at candidate x: its key switch reads the big key of the
  // constraint's source component.
  double lookup_cost(std::size_t i, std::size_t x) const {
    const std::size_t from = dimension_of_comp(source_comp_[i]);
    if (from == candidate(x).dimension) return candidate(x).cost;
    return estimated_cost(candidate(x).params, LweDimension{from});
  }

  double cost_with(const std::vector<std::uint32_t>& groups, std::size_t x) const {
    double total = 0;
    for (std::size_t i = 0; i < constraints_.size(); ++i) {
      const NoiseConstraint& c = constraints_[i];
      if (c.kind != Kind::kLookup) continue;
      const bool moved = std::find(groups.begin(), groups.end(), *c.group) != groups.end();
      total += static_cast<double>(c.count) * lookup_cost(i, moved ? x : assigned_[*c.group]);
    }
    return total;
  }

  // Variance of constraint i at its check point (bootstrap input or decryption) under the
  // assignment `a`.
  double variance(std::size_t i, const std::vector<std::size_t>& a) const {
    const NoiseConstraint& c = constraints_[i];
    double v = bootstrapped_variance_of(c, [&](std::uint32_t g) { return candidate(a[g]).vc; }) +
               c.nu2_fresh * (*shapes_fresh_)[shape_of_comp_[comps_->inputs]];
    if (c.kind == Kind::kLookup) {
      const Candidate& set = candidate(a[*c.group]);
      const std::size_t from = dimension_of_comp(source_comp_[i]);
      v += from == set.dimension ? set.v_in
                                 : variance_at_lookup(set.params, LweDimension{from}, 0.0);
    }
    return v;
  }

  double term(std::size_t i, double v) const {
    return static_cast<double>(constraints_[i].count) *
           std::exp2(log2_failure_probability_for_variance(constraints_[i].bits, v));
  }

  void recompute_terms() {
    if (!options_->global_p_error) return;
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

  // `all`: `touched` is every constraint, and the global sum is recomputed from scratch.
  bool accepts(const std::vector<std::uint32_t>& groups, const std::vector<std::size_t>& touched,
               std::size_t x, bool all = false) const {
    std::vector<std::size_t>& a = scratch_;
    a = assigned_;
    for (const std::uint32_t g : groups) a[g] = x;
    double total = all ? 0.0 : total_;
    for (const std::size_t i : touched) {
      const double v = variance(i, a);
      if (!(v <= max_variance_[i])) return false;
      if (options_->global_p_error) total += term(i, v) - (all ? 0.0 : terms_[i]);
    }
    return !options_->global_p_error || total <= *options_->global_p_error * kMargin;
  }
  bool accepts(const std::vector<std::uint32_t>& groups, std::size_t x) const {
    return accepts(groups, touched_by(groups), x);
  }

  // The cheapest candidate of `shape` that `groups` accept together, cheaper than `below`
  // (kNone: any).
  std::size_t cheapest_for(const std::vector<std::uint32_t>& groups, std::size_t shape,
                           std::size_t below) const {
    const double limit =
        below == kNone ? std::numeric_limits<double>::infinity() : candidate(below).cost;
    const std::vector<std::size_t> touched = touched_by(groups);
    for (const std::size_t x : by_shape_[shape]) {
      if (!(candidate(x).cost < limit)) break;
      if (accepts(groups, touched, x)) return x;
    }
    return kNone;
  }

 public:
  // Shapes of one k * N share the big key (its k * N bits read as a GLWE key of each k and N).
  bool same_key(std::size_t a, std::size_t b) const {
    return a == b || (*shapes_dimension_)[a] == (*shapes_dimension_)[b];
  }
  // The test polynomial of shape s holds 2^bits boxes of every group's padded message space.
  bool fits(const std::vector<std::uint32_t>& groups, std::size_t s) const {
    for (const std::uint32_t g : groups) {
      if ((*shapes_n_)[s] < (std::size_t{2} << bits_[g])) return false;
    }
    return true;
  }
  // cheapest_for over every shape of `shape`'s big key that the groups' lookups fit.
  std::size_t cheapest_for_key(const std::vector<std::uint32_t>& groups, std::size_t shape,
                               std::size_t below) const {
    std::size_t best = kNone;
    for (std::size_t s = 0; s < by_shape_.size(); ++s) {
      if (!same_key(s, shape) || by_shape_[s].empty() || !fits(groups, s)) continue;
      const std::size_t x = cheapest_for(groups, s, best == kNone ? below : best);
      if (x != kNone) best = x;
    }
    return best;
  }

 private:
  void assign(const std::vector<std::uint32_t>& groups, std::size_t x) {
    for (const std::uint32_t g : groups) assigned_[g] = x;
    recompute_terms();
  }

  std::span<const NoiseConstraint> constraints_;
  const CircuitSearchOptions* options_;
  const std::vector<Candidate>* cands_;
  std::vector<std::vector<std::size_t>> by_shape_;
  const Components* comps_;
  const std::vector<std::size_t>* shapes_dimension_ = nullptr;
  const std::vector<std::size_t>* shapes_n_ = nullptr;
  const std::vector<double>* shapes_fresh_ = nullptr;
  std::vector<std::size_t> shape_of_comp_;
  std::vector<std::uint32_t> source_comp_;  // per constraint
  std::vector<std::size_t> assigned_;
  std::vector<std::vector<std::size_t>> affected_;  // per group: constraints it touches
  std::vector<double> count_;                       // per group: lookups
  std::vector<std::size_t> bits_;                   // per group: its widest lookup
  std::vector<double> max_variance_;                // per constraint
  std::vector<double> terms_;                       // global mode: count * P_fail
  double total_ = 0;
  mutable std::vector<std::size_t> scratch_;
};

}  // namespace

namespace {

// The partitioning a descent holds: partitions numbered by their first group.
Partitioning partitioning_of(const Descent& descent, const Components& comps,
                             std::uint32_t group_count) {
  Partitioning p;
  p.cost = descent.cost();
  p.group_partition.resize(group_count);
  const auto index_of = [&](const PbsParameters& params) {
    std::size_t index = 0;
    while (index < p.partitions.size() && !(p.partitions[index] == params)) ++index;
    if (index == p.partitions.size()) p.partitions.push_back(params);
    return static_cast<std::uint32_t>(index);
  };
  for (std::uint32_t g = 0; g < group_count; ++g) {
    p.group_partition[g] = index_of(descent.candidate(descent.assigned(g)).params);
  }
  // The inputs: under the big key of the first partition of their shape (all of one shape
  // share it).
  const std::size_t shape = descent.shape_of_comp(comps.inputs);
  for (std::uint32_t g = 0; g < group_count; ++g) {
    if (descent.same_key(descent.candidate(descent.assigned(g)).shape, shape)) {
      p.input_partition = p.group_partition[g];
      break;
    }
  }
  return p;
}

}  // namespace

std::optional<Partitioning> search_partitions(std::span<const NoiseConstraint> constraints,
                                              const CircuitSearchOptions& options,
                                              const PbsParameters& single, double single_cost) {
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
  // Every component holds its largest lookup, so a shape below it serves only others: each
  // shape down to N = 2^(min bits + 1) joins the list, the one-shape search skips those below
  // the largest lookup.
  std::size_t min_bits = max_bits;
  for (const NoiseConstraint& c : constraints) {
    if (c.kind == Kind::kLookup) min_bits = std::min(min_bits, c.bits.value);
  }
  // A shape is (k, N, e): tables of N * 2^e (bootstrap.h), which must hold the lookups; the
  // shapes of one k * N share its big key whatever their e.
  struct Shape {
    double least = 0;  // per lookup
    std::size_t k = 0, big_n = 0, extension_log = 0;
  };
  std::vector<Shape> shapes;
  for (std::size_t k = o.min_glwe_dimension; k <= o.max_glwe_dimension; ++k) {
    for (std::size_t log_n = o.min_log2_polynomial_size; log_n <= o.max_log2_polynomial_size;
         ++log_n) {
      const std::size_t big_n = std::size_t{1} << log_n;
      if (k * big_n < kMinSecureDimension) continue;
      for (std::size_t e = o.min_extension_log;
           e <= o.max_extension_log && log_n + e <= kMaxLog2LookupSize; ++e) {
        if (log_n + e < min_bits + 1) continue;
        if (e > 0 && (k != 1 || log_n > kMaxPartitionExtendedLog2N)) continue;
        PbsParameters least = default_parameters(MessageBits{1});
        least.lwe_dimension = LweDimension{o.min_lwe_dimension};
        least.glwe_dimension = GlweDimension{k};
        least.polynomial_size = PolynomialSize{big_n};
        least.pbs_level = DecompositionLevelCount{1};
        least.ks_level = DecompositionLevelCount{1};
        least.extension_log = e;
        shapes.push_back({estimated_cost(least), k, big_n, e});
      }
    }
  }
  std::sort(shapes.begin(), shapes.end(),
            [](const Shape& a, const Shape& b) { return a.least < b.least; });
  const std::vector<KeySwitchChoice> ks_choices = keyswitch_choices(o);
  // Candidates of a shape, built when first needed.
  std::vector<Candidate> cands;
  std::vector<bool> built(shapes.size(), false);
  std::vector<std::size_t> dimension(shapes.size());
  std::vector<std::size_t> polynomial_size(shapes.size());
  std::vector<double> fresh(shapes.size());
  for (std::size_t s = 0; s < shapes.size(); ++s) {
    dimension[s] = shapes[s].k * shapes[s].big_n;
    polynomial_size[s] = shapes[s].big_n << shapes[s].extension_log;  // the tables' size
    fresh[s] = fresh_encryption_variance(min_noise_std(dimension[s], o.security));
  }
  // A shape's candidates with those of every shape of its k * N (they share its big key).
  const auto build = [&](std::size_t s) {
    for (std::size_t t = 0; t < shapes.size(); ++t) {
      if (built[t] || dimension[t] != dimension[s]) continue;
      built[t] = true;
      std::vector<Candidate> more =
          candidates(shapes[t].k, shapes[t].big_n, shapes[t].extension_log, t, o, ks_choices);
      cands.insert(cands.end(), more.begin(), more.end());
    }
  };
  const Components comps = options.own_big_keys
                               ? components(constraints, group_count)
                               : Components{std::vector<std::uint32_t>(group_count, 0), 0, 1};
  const auto fits = [&](std::size_t s) {
    return polynomial_size[s] >= (std::size_t{2} << max_bits);
  };

  // One shape for the whole circuit.
  std::optional<Descent> best;
  std::size_t best_shape = shapes.size();
  double best_cost = single_cost * (1.0 - options.min_partition_gain);
  for (std::size_t s = 0; s < shapes.size(); ++s) {
    if (!fits(s)) continue;
    if (lookups * shapes[s].least >= best_cost) break;
    build(s);
    Descent descent(constraints, options, cands, shapes.size(), comps, s);
    descent.set_shapes(&dimension, &polynomial_size, &fresh);
    if (!descent.start()) continue;
    descent.descend(true);
    descent.merge();
    descent.descend(false);
    const double cost = descent.cost();
    const std::size_t sets = descent.used().size();
    // Merges that no set accepts can leave more than max_partitions: not a result.
    if (sets < 2 || sets > options.max_partitions || !(cost < best_cost)) continue;
    best_cost = cost;
    best = descent;
    best_shape = s;
  }

  // Components of their own shape, each in turn, from the best one-shape result (or the single
  // set's shape when none beat it).
  if (options.own_big_keys && comps.count > 1) {
    std::size_t seed_shape = best_shape;
    for (std::size_t s = 0; s < shapes.size() && seed_shape == shapes.size(); ++s) {
      if (shapes[s].k == single.glwe_dimension.value &&
          shapes[s].big_n == single.polynomial_size.value &&
          shapes[s].extension_log == single.extension_log)
        seed_shape = s;
    }
    std::optional<Descent> current = best;
    double current_cost = best ? best_cost : single_cost;
    if (!current && seed_shape < shapes.size()) {
      // The single set as a one-shape assignment.
      build(seed_shape);
      Descent descent(constraints, options, cands, shapes.size(), comps, seed_shape);
      descent.set_shapes(&dimension, &polynomial_size, &fresh);
      if (descent.start()) current = descent;
    }
    if (current) {
      for (std::size_t s = 0; s < shapes.size(); ++s) build(s);
      current->index_candidates();  // indices of earlier shapes are unchanged
      std::vector<std::uint32_t> order(comps.count);
      std::vector<double> comp_lookups(comps.count);
      for (std::uint32_t c = 0; c < comps.count; ++c) {
        order[c] = c;
        comp_lookups[c] = current->lookups_of(c);
      }
      std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
        return comp_lookups[a] > comp_lookups[b];
      });
      for (const std::uint32_t comp : order) {
        for (std::size_t s = 0; s < shapes.size(); ++s) {
          if (s == current->shape_of_comp(comp)) continue;
          // Its lookups pay at least the shape's least cost: no gain where that is what they pay
          // now.
          const bool inputs_alone = comp == comps.inputs && comp_lookups[comp] == 0;
          if (!inputs_alone && comp_lookups[comp] * shapes[s].least >= current->cost_of(comp))
            continue;
          Descent trial = *current;
          if (!trial.set_shape(comp, s)) continue;
          // Inputs of no component of lookups follow where their key went.
          if (comps.inputs != comp && current->lookups_of(comps.inputs) == 0 &&
              !trial.inputs_have_a_key() && !trial.set_shape(comps.inputs, s))
            continue;
          trial.descend(true);
          trial.merge();
          trial.descend(false);
          const double cost = trial.cost();
          const std::size_t sets = trial.used().size();
          if (sets > options.max_partitions || !trial.inputs_have_a_key()) continue;
          if (!(cost < current_cost * (1.0 - options.min_partition_gain))) continue;
          current = trial;
          current_cost = cost;
        }
      }
      const std::size_t sets = current->used().size();
      if (sets >= 2 && current_cost < best_cost) {
        best = current;
        best_cost = current_cost;
      }
    }
  }
  if (!best) return std::nullopt;
  return partitioning_of(*best, comps, group_count);
}

}  // namespace fheml::tfhe::internal
