#include "fheml/tfhe/parameters.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameter_search_internal.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe {
namespace {

// ---- Cost model -------------------------------------------------------------------------------
// Single-thread nanoseconds of one key switch plus one bootstrap, fitted to this engine's kernels
// as they run inside a bootstrap (bench/calibrate/calibrate_cost.cpp;
// bench/results/cost-calibration-2026-12-03.json; 2-core AMD EPYC VM, AVX2 kernels;
// bench/README.md, "Cost model"):
//  - a CMux costs 0.40 ns per (k+1) l N log2 N (a transform per decomposed polynomial) plus
//    1.65 ns per (k+1)^2 l N (the products of transformed digits with key polynomials streamed
//    from memory); fitted on 135 shapes (k = 1..3, N = 2^8..2^16, levels 1..5, each CMux reading
//    the next GGSW of a ring larger than the last-level cache), rms error 19%. Both terms scale
//    with the level count: the data show no level-independent part.
//  - a key switch streams k N l (n+1) 32-bit key words at 0.35 ns each (120 shapes, rms 13%).
// Checked against real KS+PBS medians (tests/tfhe/parameters_test.cpp, CostModel.*): every pair
// of 32 measured sets at least 20% apart is ordered right.
//
// Concrete's operation counts (concrete-optimizer computing_cost: operators/cmux.rs with fft.rs,
// operators/keyswitch_lwe.rs), which this replaces, misordered 4 of those pairs: they weigh a
// product with the key like one FFT butterfly (here it costs 4x a transform unit), make a second
// bootstrap level cheaper than the first (here each level costs the same), and count two
// operations per key switch word (which, against their CMux count, weighs the key switch ~1.7x
// what it costs here: the search bought a larger n with fewer key switch levels).
// The values carry the calibration machine's speed; only their ratios matter to the search, and
// runtime/statistics.cpp anchors absolute times to measured KS+PBS medians.
constexpr double kTransformNs = 0.40;
constexpr double kProductNs = 1.65;
constexpr double kKeyswitchNsPerWord = 0.35;

double keyswitch_cost(std::size_t input_dimension, std::size_t output_dimension,
                      std::size_t level) {
  return kKeyswitchNsPerWord * static_cast<double>(input_dimension) * static_cast<double>(level) *
         static_cast<double>(output_dimension + 1);
}

double cmux_cost(std::size_t glwe_dimension, std::size_t polynomial_size, std::size_t level) {
  const double glwe_size = static_cast<double>(glwe_dimension + 1);
  const double big_n = static_cast<double>(polynomial_size);
  const double l = static_cast<double>(level);
  return kTransformNs * glwe_size * l * big_n * std::log2(big_n) +
         kProductNs * glwe_size * glwe_size * l * big_n;
}

// ---- Fingerprint ------------------------------------------------------------------------------
// FNV-1a 64 (Fowler, Noll, Vo; offset basis and prime from the reference description at
// http://www.isthe.com/chongo/tech/comp/fnv/).
constexpr std::uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;

void fnv1a_u64(std::uint64_t& hash, std::uint64_t value) {
  for (int byte = 0; byte < 8; ++byte) {  // little-endian, whatever the host order
    hash ^= (value >> (8 * byte)) & 0xffU;
    hash *= kFnvPrime;
  }
}

std::uint64_t double_bits(double value) {
  std::uint64_t bits = 0;
  static_assert(sizeof(bits) == sizeof(value));
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// ---- Search helpers ---------------------------------------------------------------------------

void validate(MessageBits p, const SearchOptions& o) {
  auto fail = [](const std::string& message) {
    throw std::invalid_argument("search_parameters: " + message);
  };
  if (p.value < 1 || p.value > 16) {
    fail("message bits must be in 1..16, found " + std::to_string(p.value) +
         " (for many-LUT pass p + m)");
  }
  if (!(o.log2_p_fail < 0.0) || !std::isfinite(o.log2_p_fail)) {
    fail("log2_p_fail must be a finite negative number, found " + std::to_string(o.log2_p_fail) +
         "; pass e.g. -40");
  }
  if (!(o.nu2 > 0.0) || !std::isfinite(o.nu2)) {
    fail("nu2 must be finite and > 0, found " + std::to_string(o.nu2) +
         "; pass the squared 2-norm of the weights (1 for a plain lookup)");
  }
  internal::validate_search_ranges("search_parameters", o);
}

struct BestBase {
  std::size_t base_log = 0;  // 0: no admissible base for this level
  double variance = std::numeric_limits<double>::infinity();
};

}  // namespace

double log2_bound(FailureBound bound) { return bound == FailureBound::k2m40 ? -40.0 : -64.0; }

bool same_big_key(const PbsParameters& a, const PbsParameters& b) {
  return a.glwe_dimension.value * a.polynomial_size.value ==
             b.glwe_dimension.value * b.polynomial_size.value &&
         a.glwe_noise == b.glwe_noise;
}

double estimated_cost(const PbsParameters& params) {
  return estimated_cost(
      params, LweDimension{params.glwe_dimension.value * params.polynomial_size.value});
}

double estimated_cost(const PbsParameters& params, LweDimension keyswitch_input) {
  return keyswitch_cost(keyswitch_input.value, params.lwe_dimension.value, params.ks_level.value) +
         static_cast<double>(params.lwe_dimension.value) * cmux_cost(params.glwe_dimension.value,
                                                                     params.polynomial_size.value,
                                                                     params.pbs_level.value);
}

const PbsParameters& default_parameters(MessageBits p, FailureBound bound) {
  if (p.value < 1 || p.value > 8) {
    throw std::invalid_argument("default_parameters: message bits must be in 1..8, found " +
                                std::to_string(p.value) +
                                "; use search_parameters for other precisions");
  }
  using P = PbsParameters;
  // Output of search_parameters(p, SearchOptions{.log2_p_fail = -40 or -64}) (nu2 = 1, default
  // ranges), copied verbatim; noise stds are the 128-bit curve minima (security.h) written as
  // exact hexadecimal doubles. tests/tfhe/parameters_test.cpp recomputes every entry.
  static const std::array<PbsParameters, 8> k2m40 = {{
      // p=1: log2 p_fail = -40.94, cost 1.424e+07
      P{LweDimension{604}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.1d0d186a3d2dap-13}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{2},
        DecompositionLevelCount{5}},
      // p=2: log2 p_fail = -40.05, cost 1.562e+07
      P{LweDimension{678}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.312e03d1fef31p-15}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{4}},
      // p=3: log2 p_fail = -40.25, cost 2.247e+07
      P{LweDimension{740}, GlweDimension{2}, PolynomialSize{1024},
        NoiseStdDev{0x1.9496ea853e45dp-17}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{4}},
      // p=4: log2 p_fail = -40.55, cost 2.708e+07
      P{LweDimension{771}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.d1d90be0d5b9cp-18}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}},
      // p=5: log2 p_fail = -40.36, cost 6.162e+07
      P{LweDimension{838}, GlweDimension{1}, PolynomialSize{4096},
        NoiseStdDev{0x1.1a7c2d9577b5ep-19}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{22},
        DecompositionLevelCount{1}, DecompositionBaseLog{3}, DecompositionLevelCount{5}},
      // p=6: log2 p_fail = -40.61, cost 1.407e+08
      P{LweDimension{899}, GlweDimension{1}, PolynomialSize{8192},
        NoiseStdDev{0x1.7d3b853e868a9p-21}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{22},
        DecompositionLevelCount{1}, DecompositionBaseLog{3}, DecompositionLevelCount{6}},
      // p=7: log2 p_fail = -40.21, cost 5.955e+08
      P{LweDimension{964}, GlweDimension{1}, PolynomialSize{16384},
        NoiseStdDev{0x1.df1e2a2491036p-23}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{15},
        DecompositionLevelCount{2}, DecompositionBaseLog{3}, DecompositionLevelCount{6}},
      // p=8: log2 p_fail = -40.40, cost 1.327e+09
      P{LweDimension{1021}, GlweDimension{1}, PolynomialSize{32768},
        NoiseStdDev{0x1.5b2cdd702ba3ep-24}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{15},
        DecompositionLevelCount{2}, DecompositionBaseLog{3}, DecompositionLevelCount{7}},
  }};
  static const std::array<PbsParameters, 8> k2m64 = {{
      // p=1: log2 p_fail = -64.80, cost 1.476e+07
      P{LweDimension{626}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.81469d445af37p-14}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{2},
        DecompositionLevelCount{5}},
      // p=2: log2 p_fail = -64.23, cost 1.641e+07
      P{LweDimension{712}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.4d1a64273091ap-16}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{4}},
      // p=3: log2 p_fail = -64.61, cost 2.365e+07
      P{LweDimension{761}, GlweDimension{2}, PolynomialSize{1024},
        NoiseStdDev{0x1.1655f843ef409p-17}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}},
      // p=4: log2 p_fail = -64.41, cost 2.828e+07
      P{LweDimension{805}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.fc78d4ba5b6abp-19}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}},
      // p=5: log2 p_fail = -64.43, cost 6.545e+07
      P{LweDimension{873}, GlweDimension{1}, PolynomialSize{4096},
        NoiseStdDev{0x1.2ee37c805b00cp-20}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{22},
        DecompositionLevelCount{1}, DecompositionBaseLog{3}, DecompositionLevelCount{6}},
      // p=6: log2 p_fail = -64.07, cost 1.512e+08
      P{LweDimension{966}, GlweDimension{1}, PolynomialSize{8192},
        NoiseStdDev{0x1.ce59ba57040fap-23}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{22},
        DecompositionLevelCount{1}, DecompositionBaseLog{3}, DecompositionLevelCount{6}},
      // p=7: log2 p_fail = -64.09, cost 6.285e+08
      P{LweDimension{981}, GlweDimension{1}, PolynomialSize{16384},
        NoiseStdDev{0x1.61f28d73e5f3bp-23}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{15},
        DecompositionLevelCount{2}, DecompositionBaseLog{2}, DecompositionLevelCount{10}},
      // p=8: log2 p_fail = -64.06, cost 1.433e+09
      P{LweDimension{1093}, GlweDimension{1}, PolynomialSize{32768},
        NoiseStdDev{0x1.812b9192bd45dp-26}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{15},
        DecompositionLevelCount{2}, DecompositionBaseLog{3}, DecompositionLevelCount{8}},
  }};
  return (bound == FailureBound::k2m40 ? k2m40 : k2m64)[p.value - 1];
}

std::uint64_t fingerprint(const PbsParameters& params) {
  std::uint64_t hash = kFnvOffsetBasis;
  fnv1a_u64(hash, 0x66686d6c70627331ULL);  // "fhemlpbs1": bump if the field list changes
  fnv1a_u64(hash, params.lwe_dimension.value);
  fnv1a_u64(hash, params.glwe_dimension.value);
  fnv1a_u64(hash, params.polynomial_size.value);
  fnv1a_u64(hash, double_bits(params.lwe_noise.value));
  fnv1a_u64(hash, double_bits(params.glwe_noise.value));
  fnv1a_u64(hash, params.pbs_base_log.value);
  fnv1a_u64(hash, params.pbs_level.value);
  fnv1a_u64(hash, params.ks_base_log.value);
  fnv1a_u64(hash, params.ks_level.value);
  return hash;
}

std::string describe(const PbsParameters& params) {
  char buffer[256];
  std::snprintf(buffer, sizeof(buffer),
                "n=%zu k=%zu N=%zu lwe_std=2^%.2f glwe_std=2^%.2f pbs=2^%zux%zu ks=2^%zux%zu",
                params.lwe_dimension.value, params.glwe_dimension.value,
                params.polynomial_size.value, std::log2(params.lwe_noise.value),
                std::log2(params.glwe_noise.value), params.pbs_base_log.value,
                params.pbs_level.value, params.ks_base_log.value, params.ks_level.value);
  return buffer;
}

std::optional<PbsParameters> search_parameters(MessageBits p, const SearchOptions& options) {
  validate(p, options);
  const internal::VarianceBound bound{options.nu2, 0.0,
                                      max_variance_for_failure(p, options.log2_p_fail), true};
  return internal::search_minimum_cost(
      options, std::span(&bound, 1), [&](const PbsParameters& candidate) {
        // The noise model's own verdict is authoritative (the bound is its inverse).
        return log2_failure_probability(candidate, p, options.nu2) <= options.log2_p_fail;
      });
}

namespace internal {

void validate_search_ranges(const char* caller, const SearchOptions& o) {
  auto fail = [caller](const std::string& message) {
    throw std::invalid_argument(std::string(caller) + ": " + message);
  };
  // Concrete's FFT noise fit is only claimed for 1 <= k <= 6 (external_product_glwe.rs).
  if (o.min_glwe_dimension < 1 || o.min_glwe_dimension > o.max_glwe_dimension ||
      o.max_glwe_dimension > 6) {
    fail("GLWE dimension range must satisfy 1 <= min <= max <= 6, found [" +
         std::to_string(o.min_glwe_dimension) + ", " + std::to_string(o.max_glwe_dimension) + "]");
  }
  if (o.min_log2_polynomial_size < 1 || o.min_log2_polynomial_size > o.max_log2_polynomial_size ||
      o.max_log2_polynomial_size > 16) {
    fail("log2 polynomial size range must satisfy 1 <= min <= max <= 16, found [" +
         std::to_string(o.min_log2_polynomial_size) + ", " +
         std::to_string(o.max_log2_polynomial_size) + "]");
  }
  if (o.min_lwe_dimension < kMinSecureDimension || o.min_lwe_dimension > o.max_lwe_dimension) {
    fail("LWE dimension range must satisfy " + std::to_string(kMinSecureDimension) +
         " <= min <= max, found [" + std::to_string(o.min_lwe_dimension) + ", " +
         std::to_string(o.max_lwe_dimension) + "]");
  }
  if (o.max_pbs_level < 1 || o.max_pbs_base_log_times_level < 1 ||
      o.max_pbs_base_log_times_level > 64) {
    fail("need max_pbs_level >= 1 and 1 <= max_pbs_base_log_times_level <= 64, found " +
         std::to_string(o.max_pbs_level) + " and " +
         std::to_string(o.max_pbs_base_log_times_level));
  }
  if (o.max_ks_level < 1 || o.max_ks_base_log_times_level < 1 ||
      o.max_ks_base_log_times_level > 64) {
    fail("need max_ks_level >= 1 and 1 <= max_ks_base_log_times_level <= 64, found " +
         std::to_string(o.max_ks_level) + " and " + std::to_string(o.max_ks_base_log_times_level));
  }
}

std::optional<PbsParameters> search_minimum_cost(
    const SearchOptions& options, std::span<const VarianceBound> bounds,
    const std::function<bool(const PbsParameters&)>& accept) {
  const std::size_t n_min = options.min_lwe_dimension;
  const std::size_t n_count = options.max_lwe_dimension - n_min + 1;
  const std::size_t ks_levels = options.max_ks_level;
  // A bound whose linear part alone (nu2 * ciphertext variance + nu2_fresh * fresh) is over its
  // limit.
  const auto linear_fails = [&](double ciphertext, double fresh, double ms) {
    for (const VarianceBound& b : bounds) {
      if (b.nu2 * ciphertext + b.nu2_fresh * fresh + (b.at_lookup ? ms : 0.0) >= b.max_variance)
        return true;
    }
    return false;
  };

  // Both noise terms are linear in a dimension that does not affect the best base: the key
  // switch is (k*N) * per-coefficient(n, B, l) and the blind rotation is n * cmux(k, N, B, l). So
  // for each level the variance-minimising base is found once, and a (level pair) is then
  // feasible iff it is feasible with those bases. Levels, not bases, set the cost.
  std::vector<NoiseStdDev> lwe_noise(n_count);
  std::vector<BestBase> ks_best(n_count * ks_levels);
  for (std::size_t i = 0; i < n_count; ++i) {
    lwe_noise[i] = min_noise_std(n_min + i, options.security);
    for (std::size_t l = 1; l <= ks_levels; ++l) {
      BestBase& best = ks_best[i * ks_levels + (l - 1)];
      for (std::size_t b = 1; b * l <= options.max_ks_base_log_times_level; ++b) {
        const double v = keyswitch_variance(LweDimension{1}, DecompositionBaseLog{b},
                                            DecompositionLevelCount{l}, lwe_noise[i]);
        if (v < best.variance) best = {b, v};
      }
    }
  }

  std::optional<PbsParameters> found;
  double best_cost = std::numeric_limits<double>::infinity();
  std::vector<BestBase> pbs_best(options.max_pbs_level);
  for (std::size_t k = options.min_glwe_dimension; k <= options.max_glwe_dimension; ++k) {
    for (std::size_t log_n = options.min_log2_polynomial_size;
         log_n <= options.max_log2_polynomial_size; ++log_n) {
      const std::size_t big_n = std::size_t{1} << log_n;
      const std::size_t kn = k * big_n;
      if (kn < kMinSecureDimension) continue;
      const NoiseStdDev glwe_noise = min_noise_std(kn, options.security);
      const double fresh = fresh_encryption_variance(glwe_noise);
      for (std::size_t l = 1; l <= options.max_pbs_level; ++l) {
        BestBase& best = pbs_best[l - 1];
        best = {};
        for (std::size_t b = 1; b * l <= options.max_pbs_base_log_times_level; ++b) {
          const double v = external_product_variance(GlweDimension{k}, PolynomialSize{big_n},
                                                     DecompositionBaseLog{b},
                                                     DecompositionLevelCount{l}, glwe_noise);
          if (v < best.variance) best = {b, v};
        }
      }
      for (std::size_t i = 0; i < n_count; ++i) {
        const std::size_t n = n_min + i;
        const double ms = modulus_switch_variance(LweDimension{n}, PolynomialSize{big_n});
        if (linear_fails(0.0, fresh, ms)) break;  // grows with n
        for (std::size_t l = 1; l <= options.max_pbs_level; ++l) {
          if (pbs_best[l - 1].base_log == 0) continue;
          const double ciphertext =
              std::max(fresh, static_cast<double>(n) * pbs_best[l - 1].variance);
          if (linear_fails(ciphertext, fresh, ms)) continue;
          const double pbs_cost = static_cast<double>(n) * cmux_cost(k, big_n, l);
          if (pbs_cost >= best_cost) break;  // grows with l
          for (std::size_t ks_l = 1; ks_l <= ks_levels; ++ks_l) {
            const BestBase& ks = ks_best[i * ks_levels + (ks_l - 1)];
            if (ks.base_log == 0) continue;
            const double cost = pbs_cost + keyswitch_cost(kn, n, ks_l);
            if (cost >= best_cost) break;  // grows with ks_l
            const double ks_variance = static_cast<double>(kn) * ks.variance;
            bool pruned = false;
            for (const VarianceBound& b : bounds) {
              if (b.at_lookup &&
                  b.nu2 * ciphertext + b.nu2_fresh * fresh + ms + ks_variance > b.max_variance) {
                pruned = true;
                break;
              }
            }
            if (pruned) continue;
            const PbsParameters candidate{LweDimension{n},
                                          GlweDimension{k},
                                          PolynomialSize{big_n},
                                          lwe_noise[i],
                                          glwe_noise,
                                          DecompositionBaseLog{pbs_best[l - 1].base_log},
                                          DecompositionLevelCount{l},
                                          DecompositionBaseLog{ks.base_log},
                                          DecompositionLevelCount{ks_l}};
            if (!accept(candidate)) continue;
            found = candidate;
            best_cost = cost;
          }
        }
      }
    }
  }
  return found;
}

}  // namespace internal

SecurityLevel achieved_security(const PbsParameters& p) {
  const std::size_t kn = p.glwe_dimension.value * p.polynomial_size.value;
  return is_secure(p.lwe_dimension.value, p.lwe_noise, SecurityLevel::k132) &&
                 is_secure(kn, p.glwe_noise, SecurityLevel::k132)
             ? SecurityLevel::k132
             : SecurityLevel::k128;
}

void validate(const PbsParameters& p, SecurityCheck check) {
  const auto fail = [&](const std::string& what) {
    throw std::invalid_argument("invalid parameter set (" + describe(p) + "): " + what);
  };
  const std::size_t k = p.glwe_dimension.value;
  const std::size_t big_n = p.polynomial_size.value;
  const std::size_t n = p.lwe_dimension.value;
  if (k < 1 || k > 16) fail("GLWE dimension k must be in 1..16, found " + std::to_string(k));
  if (big_n < 32 || big_n > (std::size_t{1} << 17) || (big_n & (big_n - 1)) != 0) {
    fail("polynomial size N must be a power of two in [32, 131072], found " +
         std::to_string(big_n));
  }
  if (n < 1 || n > (std::size_t{1} << 21)) {
    fail("LWE dimension n must be in 1..2^21, found " + std::to_string(n));
  }
  const auto check_decomposition = [&](const char* which, DecompositionBaseLog base,
                                       DecompositionLevelCount level, std::size_t max_product) {
    if (base.value < 1 || base.value > 32 || level.value < 1 ||
        base.value * level.value > max_product) {
      fail(std::string(which) + " decomposition needs base_log in 1..32, level >= 1 and " +
           "base_log * level <= " + std::to_string(max_product) + ", found base_log " +
           std::to_string(base.value) + ", level " + std::to_string(level.value));
    }
  };
  check_decomposition("bootstrap", p.pbs_base_log, p.pbs_level, 52);
  check_decomposition("key switching", p.ks_base_log, p.ks_level, 63);
  for (const auto& [name, noise] :
       {std::pair{"LWE", p.lwe_noise}, std::pair{"GLWE", p.glwe_noise}}) {
    if (!std::isfinite(noise.value) || noise.value <= 0 || noise.value > 0x1p-10) {
      fail(std::string(name) + " noise standard deviation must be in (0, 2^-10], found " +
           std::to_string(noise.value));
    }
  }
  if (check == SecurityCheck::kRequire128) {
    if (!is_secure_128(n, p.lwe_noise)) {
      fail("the LWE noise is below the 128-bit security curve for n = " + std::to_string(n) +
           " (or n < 450): use default_parameters() or search_parameters()");
    }
    if (!is_secure_128(k * big_n, p.glwe_noise)) {
      fail("the GLWE noise is below the 128-bit security curve for k*N = " +
           std::to_string(k * big_n) +
           " (or k*N < 450): use default_parameters() or "
           "search_parameters()");
    }
  }
}

}  // namespace fheml::tfhe
