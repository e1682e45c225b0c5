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

#include "fheml/tfhe/bootstrap.h"
#include "fheml/tfhe/noise.h"
#include "fheml/tfhe/parameter_search_internal.h"
#include "fheml/tfhe/security.h"

namespace fheml::tfhe {
namespace {

// ---- Cost model -------------------------------------------------------------------------------
// Single-thread nanoseconds of one key switch plus one bootstrap, measured on this engine's
// kernels as they run inside a bootstrap (bench/calibrate/calibrate_cost.cpp;
// bench/results/cost-calibration-2026-12-05.json, after the aligned buffers and the row-by-row
// CMux; the project's standard machine: 2-core Intel Xeon VM, AVX-512 kernels, keys on huge
// pages; bench/README.md, "Cost model"; the run before, cost-calibration-standard-2026-12-04.json,
// had the CMux of k = 1, N = 2048 at 13139 ns against 10381 now):
//  - a CMux (cmux_rotate_add: rotation and digits read by the forward transforms, the products
//    with a GGSW streamed from a ring of keys larger than the last-level cache, the inverse
//    transforms) is the measured median for k = 1..3, N = 2^8..2^16 and 1..5 levels (the table
//    below). A two- or three-term fit over those 135 shapes left an rms error of 15-24% (worst
//    55-56%, 2026-12-04 and 2026-12-05): the time steps where a shape's transforms and GGSW
//    leave a cache level (k = 3, N = 512: 28 us at 3 levels, 64 us at 4 on 2026-12-05), which no
//    smooth formula follows, and the search
//    ranked sets by those errors. Outside the table (k > 3, N = 2^17, more levels) the least-
//    squares fit on the same data: 0.146 ns per (k+1) l N log2 N (a transform per decomposed
//    polynomial) plus 0.537 ns per (k+1)^2 l N (products with key polynomials); a third term for
//    the level-independent inverse transforms came out negative, so the data show none.
//  - a key switch streams (k N - n) l (n+1) 32-bit key words at 0.310 ns each (119 shapes, rms
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
constexpr double kTransformNs = 0.146;
constexpr double kProductNs = 0.537;
constexpr double kKeyswitchNsPerWord = 0.310;
constexpr std::size_t kTableMinLog2N = 8;
constexpr std::size_t kTableMaxLog2N = 16;
constexpr std::size_t kTableMaxK = 3;
constexpr std::size_t kTableMaxLevel = 5;
// Median ns per CMux, [k - 1][log2 N - 8][level - 1].
constexpr double kCmuxNs[kTableMaxK][kTableMaxLog2N - kTableMinLog2N + 1][kTableMaxLevel] = {
    {
        // k = 1: N = 2^8 .. 2^16, levels 1..5
        {974, 1851, 3365, 3852, 4995},
        {1904, 3791, 5817, 8319, 12021},
        {4485, 8204, 14199, 20572, 26146},
        {10381, 20271, 32027, 43714, 54492},
        {24520, 45065, 66743, 88758, 113076},
        {50090, 90808, 138233, 174609, 215083},
        {108691, 195621, 290858, 382246, 484068},
        {248531, 422440, 619119, 813910, 1015869},
        {620935, 1031643, 1522245, 1970208, 2434061},
    },
    {
        // k = 2: N = 2^8 .. 2^16, levels 1..5
        {1701, 3401, 5351, 8666, 13262},
        {3536, 7992, 15725, 22186, 28608},
        {8046, 18872, 33480, 39448, 50599},
        {20257, 39390, 57662, 78457, 98377},
        {44599, 78274, 116944, 158704, 198215},
        {88190, 160633, 235889, 322618, 400027},
        {190159, 350515, 523210, 695933, 866651},
        {446284, 806452, 1177641, 1592928, 1959791},
        {1094991, 1875599, 2676239, 3556408, 4467914},
    },
    {
        // k = 3: N = 2^8 .. 2^16, levels 1..5
        {2634, 5956, 12991, 19155, 24442},
        {5358, 17576, 27764, 64369, 39580},
        {15294, 66204, 45665, 60337, 76150},
        {31717, 61780, 92455, 123395, 158834},
        {65098, 119245, 181839, 246496, 311534},
        {131395, 249027, 373076, 506615, 630940},
        {303768, 556837, 817777, 1070845, 1312218},
        {722643, 1316220, 1924272, 2570104, 3191917},
        {1665194, 2924576, 4290456, 5594813, 7073342},
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

// An extended CMux (bootstrap.h: lookup tables of N * 2^e) is 2^e CMuxes of the key's ring that
// share one GGSW: 2^e times the table above, times a factor measured by `fheml_calibrate_cost`
// (bench/results/cost-calibration-2026-12-05.json, "extended_cmux": blind rotations through
// tables of N * 2^e against N on the same key): about 1 at e = 1 (a component copied per cycle
// of the rotation), falling with e and k as the GGSW, read from memory once, serves 2^e
// products. The measured shape's own factor (k = 1..3, N = 2^9..2^12, levels 1-2); elsewhere the
// median over those N and levels for its k and e (k > 3 as 3, e = 5 and 6 as 4). Per shape
// rather than the medians alone: with the medians 7 of the 481 pairs of real bootstraps measured
// at least 20% apart were misordered (cost-check-2026-12-05.json), with the shapes' own 3.
constexpr double kExtendedCmuxShapeFactor[3][4][2][4] = {
    {
        // k = 1: N = 2^9 .. 2^12, levels 1 and 2, e = 1..4
        {{1.006, 1.029, 1.007, 0.969}, {1.060, 1.024, 0.951, 0.916}},
        {{1.136, 1.065, 1.013, 0.964}, {1.150, 1.049, 0.986, 0.981}},
        {{1.110, 1.050, 0.980, 0.966}, {0.951, 0.882, 0.825, 0.800}},
        {{0.954, 0.895, 0.849, 0.829}, {0.917, 0.832, 0.774, 0.772}},
    },
    {
        // k = 2: N = 2^9 .. 2^12, levels 1 and 2, e = 1..4
        {{1.067, 1.082, 0.948, 0.904}, {1.200, 1.002, 0.908, 0.844}},
        {{1.092, 0.973, 0.887, 0.850}, {0.857, 0.778, 0.710, 0.685}},
        {{0.907, 0.822, 0.791, 0.768}, {0.853, 0.742, 0.699, 0.667}},
        {{0.910, 0.842, 0.781, 0.776}, {0.928, 0.839, 0.785, 0.776}},
    },
    {
        // k = 3: N = 2^9 .. 2^12, levels 1 and 2, e = 1..4
        {{1.254, 1.041, 0.937, 0.878}, {0.956, 0.765, 0.668, 0.593}},
        {{0.850, 0.736, 0.653, 0.648}, {1.090, 0.827, 0.648, 0.576}},
        {{0.835, 0.725, 0.661, 0.612}, {0.854, 0.732, 0.676, 0.648}},
        {{0.921, 0.829, 0.796, 0.779}, {0.910, 0.835, 0.785, 0.749}},
    },
};
constexpr double kExtendedCmuxFactor[3][5] = {
    {1.0, 1.033, 1.027, 0.966, 0.940},
    {1.0, 0.919, 0.840, 0.788, 0.776},
    {1.0, 0.916, 0.796, 0.672, 0.648},
};

double extended_cmux_cost(std::size_t glwe_dimension, std::size_t polynomial_size,
                          std::size_t level, std::size_t extension_log) {
  const double cmux = cmux_cost(glwe_dimension, polynomial_size, level);
  if (extension_log == 0) return cmux;
  const std::size_t log_n = static_cast<std::size_t>(std::countr_zero(polynomial_size));
  const std::size_t e = std::min<std::size_t>(extension_log, 4);
  const bool measured = glwe_dimension >= 1 && glwe_dimension <= 3 && log_n >= 9 && log_n <= 12 &&
                        level >= 1 && level <= 2;
  const double factor =
      measured ? kExtendedCmuxShapeFactor[glwe_dimension - 1][log_n - 9][level - 1][e - 1]
               : kExtendedCmuxFactor[std::clamp<std::size_t>(glwe_dimension, 1, 3) - 1][e];
  return std::ldexp(cmux, static_cast<int>(extension_log)) * factor;
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
  return estimated_cost(params,
                        LweDimension{params.glwe_dimension.value * params.polynomial_size.value});
}

double estimated_cost(const PbsParameters& params, LweDimension keyswitch_input) {
  // From the set's own big key (the one of its k*N), the key switch decomposes the k*N - n
  // coefficients that the small key does not share (keyswitch.h, "Shared prefix").
  const std::size_t switched = switched_dimension(
      keyswitch_input.value, params.lwe_dimension.value,
      keyswitch_input.value == params.glwe_dimension.value * params.polynomial_size.value);
  return keyswitch_cost(switched, params.lwe_dimension.value, params.ks_level.value) +
         static_cast<double>(params.lwe_dimension.value) *
             extended_cmux_cost(params.glwe_dimension.value, params.polynomial_size.value,
                                params.pbs_level.value, params.extension_log);
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
      // p=1: log2 p_fail = -40.53, cost 3.879e+06
      P{LweDimension{625}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.88332089ef6eep-14}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{3}, 0},
      // p=2: log2 p_fail = -40.31, cost 4.246e+06
      P{LweDimension{691}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.e433078352157p-16}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{4},
        DecompositionLevelCount{3}, 0},
      // p=3: log2 p_fail = -40.43, cost 6.950e+06
      P{LweDimension{751}, GlweDimension{2}, PolynomialSize{1024},
        NoiseStdDev{0x1.4c99f74d43fcp-17}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{4},
        DecompositionLevelCount{3}, 0},
      // p=4: log2 p_fail = -40.24, cost 9.375e+06
      P{LweDimension{757}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.2ae3ca658248p-17}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}, 0},
      // p=5: log2 p_fail = -40.52, cost 1.994e+07
      P{LweDimension{798}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.1ffed2916b737p-18}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}, 1},
      // p=6: log2 p_fail = -40.59, cost 3.798e+07
      P{LweDimension{814}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.b128c063e0221p-19}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{2},
        DecompositionLevelCount{8}, 2},
      // p=7: log2 p_fail = -40.13, cost 7.244e+07
      P{LweDimension{855}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.a15ee75330e9cp-20}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{2},
        DecompositionLevelCount{9}, 3},
      // p=8: log2 p_fail = -40.08, cost 1.473e+08
      P{LweDimension{900}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.768092b5576c2p-21}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{2},
        DecompositionLevelCount{9}, 4},
  }};
  static const std::array<PbsParameters, 8> k2m64 = {{
      // p=1: log2 p_fail = -65.45, cost 4.064e+06
      P{LweDimension{658}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.b3c7473c5442fp-15}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{4},
        DecompositionLevelCount{3}, 0},
      // p=2: log2 p_fail = -64.51, cost 4.416e+06
      P{LweDimension{722}, GlweDimension{3}, PolynomialSize{512},
        NoiseStdDev{0x1.16c1711772a05p-16}, NoiseStdDev{0x1.273a0762ad28cp-37},
        DecompositionBaseLog{18}, DecompositionLevelCount{1}, DecompositionBaseLog{4},
        DecompositionLevelCount{3}, 0},
      // p=3: log2 p_fail = -64.46, cost 7.476e+06
      P{LweDimension{813}, GlweDimension{2}, PolynomialSize{1024},
        NoiseStdDev{0x1.b8f18edaa228cp-19}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{5},
        DecompositionLevelCount{3}, 0},
      // p=4: log2 p_fail = -64.41, cost 9.732e+06
      P{LweDimension{789}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.52119b5e57516p-18}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}, 0},
      // p=5: log2 p_fail = -64.06, cost 2.084e+07
      P{LweDimension{836}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.24bac105c8a49p-19}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{3},
        DecompositionLevelCount{5}, 1},
      // p=6: log2 p_fail = -64.04, cost 3.977e+07
      P{LweDimension{854}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.a8df12babe078p-20}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{2},
        DecompositionLevelCount{8}, 2},
      // p=7: log2 p_fail = -64.16, cost 7.597e+07
      P{LweDimension{898}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.84156e6dd4ec4p-21}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{23}, DecompositionLevelCount{1}, DecompositionBaseLog{2},
        DecompositionLevelCount{9}, 3},
      // p=8: log2 p_fail = -64.30, cost 2.464e+08
      P{LweDimension{937}, GlweDimension{1}, PolynomialSize{2048},
        NoiseStdDev{0x1.837fcf0f5a40dp-22}, NoiseStdDev{0x1.08d4c0e9c91cbp-50},
        DecompositionBaseLog{15}, DecompositionLevelCount{2}, DecompositionBaseLog{2},
        DecompositionLevelCount{10}, 4},
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
  // A field added after the format's first sets: hashed only where it is not its default, so
  // that every set without it keeps the fingerprint it was written with.
  if (params.extension_log != 0) fnv1a_u64(hash, params.extension_log);
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
  std::string out = buffer;
  if (params.extension_log != 0) {
    out += " lut=N*2^" + std::to_string(params.extension_log);
  }
  return out;
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
  if (o.min_extension_log > o.max_extension_log ||
      (std::size_t{1} << std::min<std::size_t>(o.max_extension_log, 63)) > kMaxExtension) {
    fail("extension_log range must satisfy min <= max and 2^max <= " +
         std::to_string(kMaxExtension) + ", found [" + std::to_string(o.min_extension_log) + ", " +
         std::to_string(o.max_extension_log) + "]");
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
      // Extended lookup tables (bootstrap.h): the modulus switch at N * 2^e, everything else at
      // N, 2^e external products per CMux.
      for (std::size_t e = options.min_extension_log;
           e <= options.max_extension_log && log_n + e <= internal::kMaxLog2LookupSize; ++e) {
        for (std::size_t i = 0; i < n_count; ++i) {
          const std::size_t n = n_min + i;
          const double ms = modulus_switch_variance(LweDimension{n}, PolynomialSize{big_n << e});
          if (linear_fails(0.0, fresh, ms)) break;  // grows with n
          for (std::size_t l = 1; l <= options.max_pbs_level; ++l) {
            if (pbs_best[l - 1].base_log == 0) continue;
            const double ciphertext =
                std::max(fresh, static_cast<double>(n) * pbs_best[l - 1].variance);
            if (linear_fails(ciphertext, fresh, ms)) continue;
            const double pbs_cost = static_cast<double>(n) * extended_cmux_cost(k, big_n, l, e);
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
                                            DecompositionLevelCount{ks_l},
                                            e};
              if (!accept(candidate)) continue;
              found = candidate;
              best_cost = cost;
            }
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
  if ((std::size_t{1} << std::min<std::size_t>(p.extension_log, 63)) > kMaxExtension ||
      (big_n << p.extension_log) > (std::size_t{1} << 17)) {
    fail("lookup tables of N * 2^extension_log need 2^extension_log <= " +
         std::to_string(kMaxExtension) + " and at most 2^17 coefficients, found extension_log " +
         std::to_string(p.extension_log));
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
