#include "fheml/tfhe/parameters.h"

#include <array>
#include <bit>
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
// Single-thread nanoseconds of one key switch plus one bootstrap, measured on this engine's
// kernels as they run inside a bootstrap (bench/calibrate/calibrate_cost.cpp;
// bench/results/cost-calibration-standard-2026-12-04.json; the project's standard machine: 2-core
// Intel Xeon VM, AVX-512 kernels, keys on huge pages; bench/README.md, "Cost model"):
//  - a CMux (cmux_rotate_add: rotation and digits read by the forward transforms, the products
//    with a GGSW streamed from a ring of keys larger than the last-level cache, the inverse
//    transforms) is the measured median for k = 1..3, N = 2^8..2^16 and 1..5 levels (the table
//    below). A two- or three-term fit over those 135 shapes left an rms error of 23-24% (worst
//    55%): the time steps where a shape's transforms and GGSW leave a cache level (k = 3,
//    N = 512: 31 us at 3 levels, 78 us at 4), which no smooth formula follows, and the search
//    ranked sets by those errors. Outside the table (k > 3, N = 2^17, more levels) the least-
//    squares fit on the same data: 0.150 ns per (k+1) l N log2 N (a transform per decomposed
//    polynomial) plus 0.809 ns per (k+1)^2 l N (products with key polynomials); a third term for
//    the level-independent inverse transforms came out negative, so the data show none.
//  - a key switch streams (k N - n) l (n+1) 32-bit key words at 0.319 ns each (120 shapes, rms
//    6%): with the small key the big key's first n coefficients, only the others are switched
//    (keyswitch.h, "Shared prefix").
// Checked against real KS+PBS medians (tests/tfhe/parameters_test.cpp, CostModel.*): every pair
// of measured sets at least 20% apart is ordered right.
//
// Concrete's operation counts (concrete-optimizer computing_cost: operators/cmux.rs with fft.rs,
// operators/keyswitch_lwe.rs), which this replaced on 2026-12-03, misordered measured pairs: they
// weigh a product with the key like one FFT butterfly (here it costs ~5x a transform unit), make
// a second bootstrap level cheaper than the first (here each level costs about the same), and
// count two operations per key switch word.
// The values carry the calibration machine's speed; only their ratios matter to the search, and
// runtime/statistics.cpp anchors absolute times to measured KS+PBS medians.
constexpr double kTransformNs = 0.150;
constexpr double kProductNs = 0.809;
constexpr double kKeyswitchNsPerWord = 0.319;
constexpr std::size_t kTableMinLog2N = 8;
constexpr std::size_t kTableMaxLog2N = 16;
constexpr std::size_t kTableMaxK = 3;
constexpr std::size_t kTableMaxLevel = 5;
// Median ns per CMux, [k - 1][log2 N - 8][level - 1].
constexpr double kCmuxNs[kTableMaxK][kTableMaxLog2N - kTableMinLog2N + 1][kTableMaxLevel] = {
    {
        // k = 1: N = 2^8 .. 2^16, levels 1..5
        {1027, 1960, 3048, 4172, 5561},
        {2198, 4275, 7110, 11630, 15088},
        {5793, 9672, 15601, 22303, 27580},
        {13139, 23708, 35040, 47223, 58143},
        {27179, 50414, 77479, 104208, 126312},
        {63862, 111399, 159808, 220474, 274130},
        {128184, 228557, 356457, 486745, 628621},
        {306426, 531823, 755542, 1018522, 1309266},
        {690517, 1175206, 1702110, 2254980, 2813831},
    },
    {
        // k = 2: N = 2^8 .. 2^16, levels 1..5
        {1911, 3745, 6854, 11303, 14761},
        {4196, 11086, 17537, 23794, 30650},
        {9766, 20154, 39481, 75824, 99133},
        {21747, 42077, 68424, 131064, 154978},
        {53601, 100437, 160184, 268939, 348832},
        {108823, 206041, 359887, 570895, 741492},
        {238283, 468933, 795293, 1238290, 1592362},
        {538953, 1002605, 1856051, 2295875, 2996183},
        {1217719, 2161015, 3226430, 4545828, 5937103},
    },
    {
        // k = 3: N = 2^8 .. 2^16, levels 1..5
        {2804, 8375, 14758, 20700, 25617},
        {7257, 19475, 31034, 77455, 96752},
        {16532, 65131, 101188, 139657, 174405},
        {34387, 107405, 192668, 211535, 262067},
        {82182, 222899, 353069, 478479, 612151},
        {169919, 491120, 773850, 1009106, 1315847},
        {401948, 1058514, 1572169, 2172690, 2658120},
        {848824, 2089330, 3125509, 4213225, 5900947},
        {1822400, 3638613, 5776632, 7831001, 10250159},
    },
};

double keyswitch_cost(std::size_t switched_dimension, std::size_t output_dimension,
                      std::size_t level) {
  return kKeyswitchNsPerWord * static_cast<double>(switched_dimension) *
         static_cast<double>(level) * static_cast<double>(output_dimension + 1);
}

double cmux_cost(std::size_t glwe_dimension, std::size_t polynomial_size, std::size_t level) {
  const std::size_t log_n = static_cast<std::size_t>(std::countr_zero(polynomial_size));
  if (glwe_dimension >= 1 && glwe_dimension <= kTableMaxK && level >= 1 &&
      level <= kTableMaxLevel && log_n >= kTableMinLog2N && log_n <= kTableMaxLog2N &&
      polynomial_size == std::size_t{1} << log_n) {
    return kCmuxNs[glwe_dimension - 1][log_n - kTableMinLog2N][level - 1];
  }
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

bool shares_small_key(const PbsParameters& params) {
  return shares_small_key(params.lwe_dimension.value,
                          params.glwe_dimension.value * params.polynomial_size.value);
}

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
  // From the set's own big key (the one of its k*N), the key switch decomposes the k*N - n
  // coefficients that the small key does not share (keyswitch.h, "Shared prefix").
  const std::size_t switched = switched_dimension(
      keyswitch_input.value, params.lwe_dimension.value,
      keyswitch_input.value == params.glwe_dimension.value * params.polynomial_size.value);
  return keyswitch_cost(switched, params.lwe_dimension.value, params.ks_level.value) +
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
      // p=1: log2 p_fail = -40.53, cost 5.081e+06
      P{LweDimension{625}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.88332089ef6eep-14}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{3}},
      // p=2: log2 p_fail = -40.24, cost 5.536e+06
      P{LweDimension{661}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.9d1a94f3b3439p-15}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{4}},
      // p=3: log2 p_fail = -40.01, cost 8.253e+06
      P{LweDimension{720}, GlweDimension{2}, PolynomialSize{1024},
        NoiseStdDev{0x1.20dd64cf906edp-16}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{4}},
      // p=4: log2 p_fail = -40.24, cost 1.151e+07
      P{LweDimension{757}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.2ae3ca658248p-17}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}},
      // p=5: log2 p_fail = -40.65, cost 2.687e+07
      P{LweDimension{858}, GlweDimension{1}, PolynomialSize{4096},
        NoiseStdDev{0x1.8ba76740b5e05p-20}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{22},
        DecompositionLevelCount{1}, DecompositionBaseLog{4}, DecompositionLevelCount{4}},
      // p=6: log2 p_fail = -40.06, cost 6.888e+07
      P{LweDimension{942}, GlweDimension{1}, PolynomialSize{8192},
        NoiseStdDev{0x1.627b384f0e3ebp-22}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{22},
        DecompositionLevelCount{1}, DecompositionBaseLog{4}, DecompositionLevelCount{4}},
      // p=7: log2 p_fail = -40.40, cost 2.483e+08
      P{LweDimension{962}, GlweDimension{1}, PolynomialSize{16384},
        NoiseStdDev{0x1.f07e44b183bf5p-23}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{15},
        DecompositionLevelCount{2}, DecompositionBaseLog{3}, DecompositionLevelCount{6}},
      // p=8: log2 p_fail = -40.22, cost 6.133e+08
      P{LweDimension{1053}, GlweDimension{1}, PolynomialSize{32768},
        NoiseStdDev{0x1.88aefdc9188dfp-25}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{15},
        DecompositionLevelCount{2}, DecompositionBaseLog{4}, DecompositionLevelCount{5}},
  }};
  static const std::array<PbsParameters, 8> k2m64 = {{
      // p=1: log2 p_fail = -64.45, cost 5.286e+06
      P{LweDimension{628}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.73cae975558e9p-14}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{4}},
      // p=2: log2 p_fail = -64.06, cost 5.753e+06
      P{LweDimension{690}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.ece6a720a3ae3p-16}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{4}},
      // p=3: log2 p_fail = -64.56, cost 8.847e+06
      P{LweDimension{747}, GlweDimension{2}, PolynomialSize{1024},
        NoiseStdDev{0x1.6529a7bd7cf23p-17}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}},
      // p=4: log2 p_fail = -64.41, cost 1.195e+07
      P{LweDimension{789}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.52119b5e57516p-18}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}},
      // p=5: log2 p_fail = -64.17, cost 2.817e+07
      P{LweDimension{901}, GlweDimension{1}, PolynomialSize{4096},
        NoiseStdDev{0x1.6fe40ae2793bcp-21}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{22},
        DecompositionLevelCount{1}, DecompositionBaseLog{4}, DecompositionLevelCount{4}},
      // p=6: log2 p_fail = -64.10, cost 7.453e+07
      P{LweDimension{959}, GlweDimension{1}, PolynomialSize{8192},
        NoiseStdDev{0x1.05df5a2abe0c6p-22}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{22},
        DecompositionLevelCount{1}, DecompositionBaseLog{3}, DecompositionLevelCount{6}},
      // p=7: log2 p_fail = -64.03, cost 2.650e+08
      P{LweDimension{1008}, GlweDimension{1}, PolynomialSize{16384},
        NoiseStdDev{0x1.b5a21a715827bp-24}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{15},
        DecompositionLevelCount{2}, DecompositionBaseLog{3}, DecompositionLevelCount{7}},
      // p=8: log2 p_fail = -64.01, cost 6.685e+08
      P{LweDimension{1091}, GlweDimension{1}, PolynomialSize{32768},
        NoiseStdDev{0x1.8f2377b50bc41p-26}, NoiseStdDev{0x1p-62}, DecompositionBaseLog{15},
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
            const std::size_t switched = switched_dimension(kn, n, true);
            const double cost = pbs_cost + keyswitch_cost(switched, n, ks_l);
            if (cost >= best_cost) break;  // grows with ks_l
            const double ks_variance = static_cast<double>(switched) * ks.variance;
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
