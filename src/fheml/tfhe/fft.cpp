// Negacyclic FFT plans: twiddle tables, caching, SIMD level selection and dispatch to the
// kernels of fft_kernels.cpp. See fft.h for the method.
#include "fheml/tfhe/fft.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fheml/tfhe/fft_tables.h"

namespace fheml::tfhe {

namespace {

// Internal invariant check: prints both values, then aborts (a bug in this file, not bad input).
#define FHEML_FFT_CHECK_EQ(a, b)                                                                 \
  do {                                                                                           \
    const auto fheml_a_ = (a);                                                                   \
    const auto fheml_b_ = (b);                                                                   \
    if (!(fheml_a_ == fheml_b_)) {                                                               \
      std::fprintf(stderr, "%s:%d: check failed: %s == %s (%llu vs %llu)\n", __FILE__, __LINE__, \
                   #a, #b, static_cast<unsigned long long>(fheml_a_),                            \
                   static_cast<unsigned long long>(fheml_b_));                                   \
      std::abort();                                                                              \
    }                                                                                            \
  } while (false)

void require_size(const char* function, const char* arg, std::size_t found, std::size_t expected) {
  if (found != expected) {
    throw std::invalid_argument(std::string("FftPlan::") + function + ": " + arg + " has " +
                                std::to_string(found) + " elements, expected " +
                                std::to_string(expected));
  }
}

int log2_exact(std::size_t n) {
  int l = 0;
  while ((std::size_t{1} << l) < n) ++l;
  return l;
}

struct Complex {
  double re;
  double im;
};

// exp(-2 pi i k / n). Computed for the first quadrant only and rotated by exact multiplications
// by -i, so that w^(k + n/4) == -i * w^k bit for bit (the tables are symmetric, and a twiddle of
// -i or 1 acts exactly).
Complex twiddle(std::size_t k, std::size_t n) {
  k %= n;
  if (n < 4) return k == 0 ? Complex{1.0, 0.0} : Complex{-1.0, 0.0};
  const std::size_t quarter = n / 4;
  const std::size_t quadrant = k / quarter;
  const std::size_t r = k % quarter;
  // long double (x87, 64-bit mantissa) so that the rounded doubles are (nearly always) correct.
  const long double angle = 2.0L * 3.14159265358979323846264338327950288L *
                            static_cast<long double>(r) / static_cast<long double>(n);
  Complex w{static_cast<double>(std::cos(angle)),
            r == 0 ? 0.0 : -static_cast<double>(std::sin(angle))};
  for (std::size_t q = 0; q < quadrant; ++q) w = Complex{w.im, -w.re};
  return w;
}

int width_of(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return 8;
    case SimdLevel::kAvx2Fma:
      return 4;
    case SimdLevel::kScalar:
      break;
  }
  return 1;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Level selection.

bool cpu_supports(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return true;
#ifdef FHEML_FFT_HAVE_X86
    case SimdLevel::kAvx2Fma:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdLevel::kAvx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#else
    default:
      return false;
#endif
  }
  return false;
}

const char* to_string(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kAvx2Fma:
      return "avx2";
    case SimdLevel::kAvx512:
      return "avx512";
  }
  return "unknown";
}

SimdLevel best_simd_level() {
  static const SimdLevel level = [] {
    SimdLevel cap = SimdLevel::kAvx512;
    if (const char* env = std::getenv("FHEML_SIMD"); env != nullptr && *env != '\0') {
      const std::string value(env);
      if (value == "scalar") {
        cap = SimdLevel::kScalar;
      } else if (value == "avx2") {
        cap = SimdLevel::kAvx2Fma;
      } else if (value != "avx512") {
        std::fprintf(stderr, "fheml: ignoring FHEML_SIMD=%s (expected scalar, avx2 or avx512)\n",
                     env);
      }
    }
    for (SimdLevel l : {SimdLevel::kAvx512, SimdLevel::kAvx2Fma}) {
      if (static_cast<int>(l) <= static_cast<int>(cap) && cpu_supports(l)) return l;
    }
    return SimdLevel::kScalar;
  }();
  return level;
}

// ------------------------------------------------------------------------------------------------
// Plans.

FftPlan::FftPlan(PolynomialSize n, SimdLevel level) : n_(n), level_(level) {
  auto t = std::make_unique<detail::FftTables>();
  const std::size_t m = n.value / 2;
  const int w = width_of(level);
  t->m = m;
  t->width = w;

  t->twist.resize(2 * m);
  t->untwist.resize(2 * m);
  // A power of two (exact): 1/M, and 2^-64 more for the AVX-512 rounding (round_add).
  const double untwist_scale = std::ldexp(1.0, -log2_exact(m) - (w == 8 ? 64 : 0));
  for (std::size_t j = 0; j < m; ++j) {
    const Complex c = twiddle(j, 2 * n.value);  // exp(-i pi j / N)
    t->twist[j] = c.re;
    t->twist[m + j] = -c.im;
    // 1/M is a power of two: scaling the table loses nothing.
    t->untwist[j] = c.re * untwist_scale;
    t->untwist[m + j] = c.im * untwist_scale;
  }

  // Stages of distance M/2, ..., W pair whole vectors: run them two per (radix-4) pass. Each
  // pass's twiddles are laid out in loop order: per group of W consecutive t, w_{4q}^t,
  // w_{4q}^{2t}, w_{4q}^{3t}, each re[W] then im[W].
  const int vector_stages = log2_exact(m) - log2_exact(static_cast<std::size_t>(w));
  t->fused_stage = vector_stages % 2 == 1;
  // AVX-512 and M >= 64: the last six stages run in blocks of 64 points (dif_block64), so the
  // passes stop three stages earlier.
  t->transposed_final = w == 8 && m >= 64;
  const int pass_stages = t->transposed_final ? log2_exact(m) - 6 : vector_stages;
  if (t->transposed_final) t->fused_stage = pass_stages % 2 == 1;
  for (int p = 0; p < pass_stages / 2; ++p) {
    const std::size_t q = m >> (2 * p + 2);
    t->passes.push_back({q, t->pass_twiddles.size()});
    for (std::size_t s = 0; s < q; s += static_cast<std::size_t>(w)) {
      const std::size_t start = t->pass_twiddles.size();
      t->pass_twiddles.resize(start + 6 * static_cast<std::size_t>(w));
      for (int l = 0; l < w; ++l) {
        for (std::size_t power = 1; power <= 3; ++power) {
          const Complex c = twiddle(power * (s + static_cast<std::size_t>(l)), 4 * q);
          const std::size_t slot = power == 1 ? 0 : power == 2 ? 1 : 2;
          t->pass_twiddles[start + 2 * slot * static_cast<std::size_t>(w) + l] = c.re;
          t->pass_twiddles[start + (2 * slot + 1) * static_cast<std::size_t>(w) + l] = c.im;
        }
      }
    }
  }
  // The passes must end exactly where the final pass starts.
  FHEML_FFT_CHECK_EQ(m % (2 * static_cast<std::size_t>(w)), std::size_t{0});
  if (!t->passes.empty()) {
    const std::size_t last = t->transposed_final ? 64 : static_cast<std::size_t>(w);
    FHEML_FFT_CHECK_EQ(t->passes.back().quarter, t->fused_stage ? 2 * last : last);
  }
  // Depth-first schedule: passes 0 .. leaf_depth - 1 sweep the whole array, the rest run leaf
  // by leaf (blocks of m / 4^leaf_depth points, at most kLeafPoints unless no pass is left).
  t->leaf_depth = std::min<std::size_t>(1, t->passes.size());
  while (t->leaf_depth < t->passes.size() && (m >> (2 * t->leaf_depth)) > detail::kLeafPoints) {
    ++t->leaf_depth;
  }
  t->leaf = m >> (2 * t->leaf_depth);

  // Final pass: lane l of the fused stage (distance W) uses w_{2W}^l; in the stage of
  // distance g, lane l of the interleaved low half sits at offset l mod g of its 2g-block.
  auto push_lanes = [&](auto twiddle_of_lane) {
    const std::size_t start = t->lane_twiddles.size();
    t->lane_twiddles.resize(start + 2 * static_cast<std::size_t>(w));
    for (int l = 0; l < w; ++l) {
      const Complex c = twiddle_of_lane(l);
      t->lane_twiddles[start + l] = c.re;
      t->lane_twiddles[start + w + l] = c.im;
    }
  };
  push_lanes([&](int l) { return twiddle(l, 2 * static_cast<std::size_t>(w)); });
  for (int g = w / 2; g >= 1; g /= 2) {
    push_lanes([&](int l) { return twiddle(l % g, 2 * static_cast<std::size_t>(g)); });
  }
  if (t->transposed_final) {
    // dif4 twiddles of q = 16 (t = 0..15, two groups of W), then w_16^lane, then (odd stage
    // count) w_128^t for t < 64, in groups of W.
    for (std::size_t s = 0; s < 16; s += static_cast<std::size_t>(w)) {
      for (std::size_t slot = 0; slot < 3; ++slot) {
        const std::size_t power = slot == 0 ? 1 : slot == 1 ? 2 : 3;
        const std::size_t start = t->final_twiddles.size();
        t->final_twiddles.resize(start + 2 * static_cast<std::size_t>(w));
        for (int l = 0; l < w; ++l) {
          const Complex c = twiddle(power * (s + static_cast<std::size_t>(l)), 64);
          t->final_twiddles[start + l] = c.re;
          t->final_twiddles[start + w + l] = c.im;
        }
      }
    }
    auto push_final = [&](std::size_t first, std::size_t period) {
      const std::size_t start = t->final_twiddles.size();
      t->final_twiddles.resize(start + 2 * static_cast<std::size_t>(w));
      for (int l = 0; l < w; ++l) {
        const Complex c = twiddle(first + static_cast<std::size_t>(l), period);
        t->final_twiddles[start + l] = c.re;
        t->final_twiddles[start + w + l] = c.im;
      }
    };
    push_final(0, 16);
    if (t->fused_stage) {
      for (std::size_t s = 0; s < 64; s += static_cast<std::size_t>(w)) push_final(s, 128);
    }
  }
  tables_ = std::move(t);
}

FftPlan::~FftPlan() = default;

const FftPlan& FftPlan::get(PolynomialSize n) { return get(n, best_simd_level()); }

const FftPlan& FftPlan::get(PolynomialSize n, SimdLevel level) {
  if (n.value < kMinSize || n.value > kMaxSize || (n.value & (n.value - 1)) != 0) {
    throw std::invalid_argument("FftPlan::get: polynomial size " + std::to_string(n.value) +
                                " is not a power of two in [" + std::to_string(kMinSize) + ", " +
                                std::to_string(kMaxSize) + "]");
  }
  const int level_index = static_cast<int>(level);
  if (level_index < 0 || level_index > 2 || !cpu_supports(level)) {
    throw std::runtime_error(std::string("FftPlan::get: this CPU does not support SIMD level ") +
                             to_string(level));
  }
  // Lock-free lookup on the hot path; plans are built under a mutex and leaked on purpose (no
  // destruction-order hazards at exit, and references stay valid forever).
  constexpr int kLogs = 18;
  static std::array<std::atomic<const FftPlan*>, 3 * kLogs> cache{};
  static std::mutex build_mutex;
  std::atomic<const FftPlan*>& slot = cache[level_index * kLogs + log2_exact(n.value)];
  if (const FftPlan* plan = slot.load(std::memory_order_acquire)) return *plan;
  const std::lock_guard<std::mutex> lock(build_mutex);
  if (const FftPlan* plan = slot.load(std::memory_order_relaxed)) return *plan;
  const FftPlan* plan = new FftPlan(n, level);
  slot.store(plan, std::memory_order_release);
  return *plan;
}

void FftPlan::forward_torus(std::span<const Torus> poly, std::span<double> fourier) const {
  require_size("forward_torus", "poly", poly.size(), n_.value);
  require_size("forward_torus", "fourier", fourier.size(), n_.value);
  const std::uint64_t* in = poly.data();
  switch (level_) {
#ifdef FHEML_FFT_HAVE_X86
    case SimdLevel::kAvx512:
      return detail::forward_avx512(*tables_, in, fourier.data());
    case SimdLevel::kAvx2Fma:
      return detail::forward_avx2(*tables_, in, fourier.data());
#endif
    default:
      return detail::forward_scalar(*tables_, in, fourier.data());
  }
}

void FftPlan::forward_int(std::span<const std::int64_t> poly, std::span<double> fourier) const {
  require_size("forward_int", "poly", poly.size(), n_.value);
  // Same bits, same conversion: a Torus is read as a signed int64 anyway.
  forward_torus(std::span<const Torus>(reinterpret_cast<const Torus*>(poly.data()), poly.size()),
                fourier);
}

namespace {

detail::Prefetch prefetch_region(std::span<const double> memory) {
  const char* begin = reinterpret_cast<const char*>(memory.data());
  return {begin, begin + memory.size_bytes()};
}

}  // namespace

void FftPlan::forward_rotated_digit(std::span<const Torus> poly, std::size_t rotation,
                                    std::size_t base_log, std::size_t levels, std::size_t level,
                                    std::span<double> fourier, std::span<const double> prefetch,
                                    std::span<const Torus> subtrahend) const {
  require_size("forward_rotated_digit", "poly", poly.size(), n_.value);
  if (subtrahend.empty()) subtrahend = poly;
  require_size("forward_rotated_digit", "subtrahend", subtrahend.size(), n_.value);
  require_size("forward_rotated_digit", "fourier", fourier.size(), n_.value);
  if (base_log < 1 || levels < 1 || base_log * levels >= 64 || level >= levels) {
    throw std::invalid_argument("FftPlan::forward_rotated_digit: digit " + std::to_string(level) +
                                " of a decomposition with base_log " + std::to_string(base_log) +
                                " and " + std::to_string(levels) +
                                " levels (needs base_log >= 1, level < levels and base_log * "
                                "levels < 64)");
  }
  rotation %= 2 * n_.value;
  const bool wraps = rotation >= n_.value;
  const detail::RotatedDigit in{poly.data(),
                                subtrahend.data(),
                                wraps ? rotation - n_.value : rotation,
                                wraps ? ~std::uint64_t{0} : std::uint64_t{0},
                                static_cast<unsigned>(64 - base_log * levels),
                                static_cast<unsigned>(base_log),
                                static_cast<unsigned>(levels - 1 - level)};
  const detail::Prefetch region = prefetch_region(prefetch);
  switch (level_) {
#ifdef FHEML_FFT_HAVE_X86
    case SimdLevel::kAvx512:
      return detail::forward_rotated_digit_avx512(*tables_, in, fourier.data(), region);
    case SimdLevel::kAvx2Fma:
      return detail::forward_rotated_digit_avx2(*tables_, in, fourier.data(), region);
#endif
    default:
      return detail::forward_rotated_digit_scalar(*tables_, in, fourier.data(), region);
  }
}

void FftPlan::multiply_sum(std::span<double> out, std::span<const double> a,
                           std::span<const double> b, std::size_t rows, std::size_t cols) const {
  if (rows < 1 || cols < 1) {
    throw std::invalid_argument("FftPlan::multiply_sum: needs at least one row and one column");
  }
  require_size("multiply_sum", "out", out.size(), cols * n_.value);
  require_size("multiply_sum", "a", a.size(), rows * n_.value);
  require_size("multiply_sum", "b", b.size(), rows * cols * n_.value);
  const std::size_t m = tables_->m;
  switch (level_) {
#ifdef FHEML_FFT_HAVE_X86
    case SimdLevel::kAvx512:
      return detail::multiply_sum_avx512(m, rows, cols, out.data(), a.data(), b.data());
    case SimdLevel::kAvx2Fma:
      return detail::multiply_sum_avx2(m, rows, cols, out.data(), a.data(), b.data());
#endif
    default:
      return detail::multiply_sum_scalar(m, rows, cols, out.data(), a.data(), b.data());
  }
}

void FftPlan::backward_add_torus(std::span<double> fourier, std::span<Torus> poly,
                                 std::span<const double> prefetch) const {
  require_size("backward_add_torus", "fourier", fourier.size(), n_.value);
  require_size("backward_add_torus", "poly", poly.size(), n_.value);
  const detail::Prefetch region = prefetch_region(prefetch);
  switch (level_) {
#ifdef FHEML_FFT_HAVE_X86
    case SimdLevel::kAvx512:
      return detail::backward_avx512(*tables_, fourier.data(), poly.data(), region);
    case SimdLevel::kAvx2Fma:
      return detail::backward_avx2(*tables_, fourier.data(), poly.data(), region);
#endif
    default:
      return detail::backward_scalar(*tables_, fourier.data(), poly.data(), region);
  }
}

void FftPlan::multiply_accumulate(std::span<double> acc, std::span<const double> a,
                                  std::span<const double> b) const {
  require_size("multiply_accumulate", "acc", acc.size(), n_.value);
  require_size("multiply_accumulate", "a", a.size(), n_.value);
  require_size("multiply_accumulate", "b", b.size(), n_.value);
  const std::size_t m = tables_->m;
  switch (level_) {
#ifdef FHEML_FFT_HAVE_X86
    case SimdLevel::kAvx512:
      return detail::multiply_accumulate_avx512(m, acc.data(), a.data(), b.data());
    case SimdLevel::kAvx2Fma:
      return detail::multiply_accumulate_avx2(m, acc.data(), a.data(), b.data());
#endif
    default:
      return detail::multiply_accumulate_scalar(m, acc.data(), a.data(), b.data());
  }
}

}  // namespace fheml::tfhe
