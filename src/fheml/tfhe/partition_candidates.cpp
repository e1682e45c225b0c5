// The partition search's candidates (the Pareto front of parameter sets of one k and N) and
// components (the groups of lookups that must share a big key); the descent over them is
// circuit_partitions.cpp.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <map>
#include <vector>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameter_search_internal.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe::internal {

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

std::vector<Candidate> candidates(std::size_t k, std::size_t big_n, std::size_t extension_log,
                                  std::size_t shape, const SearchOptions& o,
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
    const double ms =
        modulus_switch_variance(LweDimension{n}, PolynomialSize{big_n << extension_log});
    for (std::size_t ks_l = 1; ks_l <= o.max_ks_level; ++ks_l) {
      const KeySwitchChoice& ks =
          ks_choices[(n - o.min_lwe_dimension) * o.max_ks_level + (ks_l - 1)];
      if (ks.base_log == 0) continue;
      // From its own big key: the k*N - n coefficients the small key does not share.
      const std::size_t switched = switched_dimension(kn, n, true);
      const double v_in = static_cast<double>(switched) * ks.per_coefficient +
                          keyswitch_rounding_variance(LweDimension{switched}, LweDimension{n},
                                                      DecompositionBaseLog{ks.base_log},
                                                      DecompositionLevelCount{ks_l}) +
                          (switched < kn ? shared_prefix_rounding_variance(LweDimension{n}) : 0.0) +
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
                                 DecompositionLevelCount{ks_l},
                                 extension_log};
        c.cost = estimated_cost(c.params);
        c.vc = std::max(fresh, static_cast<double>(n) * pbs[l - 1].second);
        c.v_in = v_in;
        c.shape = shape;
        c.dimension = kn;
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

Components components(std::span<const NoiseConstraint> constraints, std::uint32_t group_count) {
  std::vector<std::uint32_t> parent(group_count + 1);
  for (std::uint32_t i = 0; i < parent.size(); ++i) parent[i] = i;
  const auto find = [&](std::uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  const std::uint32_t inputs = group_count;
  for (const NoiseConstraint& c : constraints) {
    const std::uint32_t first = c.sources.empty() ? inputs : c.sources.front().group;
    if (c.sources.empty() && c.nu2_fresh == 0) continue;
    for (const SourceShare& s : c.sources) parent[find(s.group)] = find(first);
    if (c.nu2_fresh > 0) parent[find(inputs)] = find(first);
  }
  Components out;
  out.of_group.resize(group_count);
  std::map<std::uint32_t, std::uint32_t> index;
  for (std::uint32_t g = 0; g <= group_count; ++g) {
    const auto [it, inserted] = index.try_emplace(find(g), out.count);
    if (inserted) ++out.count;
    if (g < group_count) {
      out.of_group[g] = it->second;
    } else {
      out.inputs = it->second;
    }
  }
  return out;
}

}  // namespace fheml::tfhe::internal
