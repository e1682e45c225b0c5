// Negacyclic FFT kernels. See fft.h for the method.
//
// One generic implementation, templated on the vector width W (1 = scalar, 4 = AVX2, 8 =
// AVX-512), written with GCC/Clang vector extensions. The kernels are always_inline, so each is
// compiled inside a small entry function that carries the __attribute__((target)) of its level:
// the same source gives scalar, ymm and zmm code, and no inline function outside this file is
// ever compiled for a wider ISA (no ODR hazard).
//
// Data flow for M = N/2 complex points, split into re[M] and im[M]:
//   forward:  [fold + twist + radix-4 pass q = M/4] -> radix-4 passes q = M/16, ... -> final pass
//   backward: final pass inverse -> ... -> [radix-4 pass q = M/4 + untwist (1/M) + round + add]
// Stages of distance >= W pair whole vectors; they run as radix-4 DIF/DIT butterflies (two
// stages per load/store of the data, 3 complex products per 4 points), with twiddles stored in
// loop order; the fold/twist and untwist/round steps are fused into the outermost pass. When the
// stage count is odd, the last one (distance W) is fused into the final pass. Stages of distance
// < W pair lanes inside a vector pair: the final pass interleaves two vectors at granularity
// g = W/2, ..., 1 and butterflies the halves. The interleaving is never undone: the inverse pass
// reads the same interleaved order.
//
// AVX-512 with M >= 64 replaces that final pass (whose shuffles and lane twiddles cost about a
// third of the transform) by blocks of 64 points = 8 vectors: the stages of distance 32, 16
// (radix-4) and 8 on whole vectors, an 8x8 transpose of re and of im, then the stages of
// distance 4, 2, 1 on whole vectors again, whose twiddles (1, -i, w_8, w_8^3) are trivial. The
// result stays transposed; the inverse transposes back. The radix-4 passes then stop at q = 64;
// an odd leftover stage (distance 64) runs just before the blocks, on each leaf in L1.
//
// Schedule: the outer passes sweep the whole array until the blocks are at most kLeafPoints
// (16 KiB); each such leaf is then finished depth-first while it sits in L1 (large N no longer
// streams every pass through L2).
//
// The vector levels let the compiler contract a*b+c into FMA; each level is deterministic, but
// levels differ from each other within the rounding error (see fft.h).
#include "fheml/tfhe/fft.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

namespace detail {

// Depth-first leaves: blocks of at most this many complex points (16 KiB) are finished in L1.
inline constexpr std::size_t kLeafPoints = 1024;

struct FftTables {
  struct Pass {
    std::size_t quarter;  // q: this pass runs the stages of distance 2q and q
    std::size_t offset;   // into pass_twiddles (6q doubles, in loop order)
  };
  std::size_t m = 0;  // complex points (N/2)
  int width = 1;
  std::vector<double> twist;  // exp(+i pi j / N): re[M], im[M]
  // exp(-i pi j / N) / M: re[M], im[M]; with AVX-512 also times 2^-64 (see round_add).
  std::vector<double> untwist;
  std::vector<Pass> passes;  // forward order
  std::vector<double> pass_twiddles;
  std::size_t leaf_depth = 0;  // passes [0, leaf_depth) sweep the whole array
  std::size_t leaf = 0;        // points per leaf block for the later passes
  bool fused_stage = false;    // whether the final pass also runs the stage of distance W
  // Final pass, per lane: [fused stage w_{2W}^lane][stage g = W/2][g = W/4]...[g = 1]; each
  // entry re[W] then im[W].
  std::vector<double> lane_twiddles;
  // AVX-512 layout for M >= 64 (replaces the in-register stages): the radix-4 passes stop at
  // q = 64 (or q = 128 and a radix-2 stage of distance 64 when the stage count is odd), and
  // every block of 64 points is finished by transposed_final (see there).
  bool transposed_final = false;
  // [dif4 twiddles of q = 16: 2 groups of 6W][w_16^lane: re[W], im[W]]
  // [odd only: w_128^t, t < 64: 8 groups of re[W], im[W]]
  std::vector<double> final_twiddles;
};

}  // namespace detail

// ------------------------------------------------------------------------------------------------
// Generic kernels.

#pragma GCC push_options
// Each level is deterministic (the same instructions on every call), but levels are not
// bit-identical to each other: a*b+c may be contracted into an FMA, which the AVX2 and AVX-512
// entries do (fewer instructions, one rounding less) and the scalar one, compiled for the
// baseline ISA, cannot. Where exactness matters (the int64 conversion, the mod 2^64 reduction)
// every product that could be contracted is exact, so contraction does not change the result.
#pragma GCC optimize("fp-contract=fast")
// Vector arguments of the always_inline helpers never cross a real call boundary, so the ABI
// of wide vectors without AVX (what -Wpsabi warns about) is irrelevant. GCC reports it at the end
// of the file, so it stays off until then (nothing below the kernels uses vector types).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

#define FHEML_INLINE __attribute__((always_inline)) inline

template <int W>
struct Vec {
  typedef double D __attribute__((vector_size(8 * W)));
  typedef std::int64_t I __attribute__((vector_size(8 * W)));
  typedef std::uint64_t U __attribute__((vector_size(8 * W)));
};
template <>
struct Vec<1> {
  using D = double;
  using I = std::int64_t;
  using U = std::uint64_t;
};

template <int W>
using VD = typename Vec<W>::D;
template <int W>
using VI = typename Vec<W>::I;
template <int W>
using VU = typename Vec<W>::U;

template <class T, class P>
FHEML_INLINE T load(const P* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <class T, class P>
FHEML_INLINE void store(P* p, const T& v) {
  std::memcpy(p, &v, sizeof(T));
}

template <class To, class From>
FHEML_INLINE To bits_as(const From& v) {
  static_assert(sizeof(To) == sizeof(From));
  To r;
  std::memcpy(&r, &v, sizeof(To));
  return r;
}

template <class T, class S>
FHEML_INLINE T splat(S s) {
  if constexpr (sizeof(T) == sizeof(S)) {
    return static_cast<T>(s);
  } else {
    return T{} + s;
  }
}

template <int W>
struct CVec {
  VD<W> re;
  VD<W> im;
};

template <int W>
FHEML_INLINE CVec<W> cload(const double* re, const double* im) {
  return {load<VD<W>>(re), load<VD<W>>(im)};
}

template <int W>
FHEML_INLINE void cstore(double* re, double* im, const CVec<W>& v) {
  store(re, v.re);
  store(im, v.im);
}

template <int W>
FHEML_INLINE CVec<W> add(const CVec<W>& a, const CVec<W>& b) {
  return {a.re + b.re, a.im + b.im};
}

template <int W>
FHEML_INLINE CVec<W> sub(const CVec<W>& a, const CVec<W>& b) {
  return {a.re - b.re, a.im - b.im};
}

// a * w.
template <int W>
FHEML_INLINE CVec<W> mul(const CVec<W>& a, const CVec<W>& w) {
  return {a.re * w.re - a.im * w.im, a.re * w.im + a.im * w.re};
}

// a * conj(w).
template <int W>
FHEML_INLINE CVec<W> mul_conj(const CVec<W>& a, const CVec<W>& w) {
  return {a.re * w.re + a.im * w.im, a.im * w.re - a.re * w.im};
}

// int64 -> double, correctly rounded (as cvtsi2sd).
template <int W>
FHEML_INLINE VD<W> to_double(const std::uint64_t* p) {
  const VI<W> x = load<VI<W>>(p);
  if constexpr (W == 1) {
    return static_cast<double>(x);
  } else if constexpr (W == 8) {
    return __builtin_convertvector(x, VD<W>);  // vcvtqq2pd (AVX-512DQ)
  } else {
    // AVX2 has no int64 -> double: split x = hi * 2^32 + lo and build both halves exactly from
    // their bits; only the final addition rounds. 0x4538... is 2^84 + 2^83 (ulp 2^32), 0x4330...
    // is 2^52 (ulp 1).
    const VI<W> hi = x >> 32;
    const VI<W> lo = x & splat<VI<W>>(0xFFFFFFFFLL);
    const VD<W> hi_d = bits_as<VD<W>>(hi + splat<VI<W>>(0x4538000000000000LL)) -
                       splat<VD<W>>(0x1.80000001p84);  // 2^84 + 2^83 + 2^52
    const VD<W> lo_d = bits_as<VD<W>>(lo | splat<VI<W>>(0x4330000000000000LL));
    return hi_d + lo_d;
  }
}

// round(x) mod 2^64, ties to even, exact for every finite double. The integer is taken apart
// in doubles, with exact operations only:
//   q  = an integer within 1 of x / 2^64 (the 1.5 * 2^53 trick rounds to an even integer)
//   x' = x - q * 2^64 (exact, |x'| <= 2^64, x' = x mod 2^64)
//   x' = h * 2^32 + lo with h = round(x' / 2^32) and |lo| <= 2^31, both exact; h and round(lo)
//        are read from the mantissa bits after adding 1.5 * 2^52.
// |x| >= 2^116 is a multiple of 2^64 (its ulp is), so the result is 0 there.
// (Every product below is by a power of two and exact, so FMA contraction changes nothing.)
template <int W>
FHEML_INLINE VU<W> to_torus(const VD<W>& x) {
  using D = VD<W>;
  using I = VI<W>;
  using U = VU<W>;
  const D round_even = splat<D>(0x1.8p53);  // ulp 2
  const D round_unit = splat<D>(0x1.8p52);  // ulp 1
  const U round_unit_bits = splat<U>(0x4338000000000000ull);
  const D q = (x * splat<D>(0x1p-64) + round_even) - round_even;
  const D reduced = x - q * splat<D>(0x1p64);
  const D h_biased = reduced * splat<D>(0x1p-32) + round_unit;
  const D h = h_biased - round_unit;
  const D lo = reduced - h * splat<D>(0x1p32);
  const U h_int = bits_as<U>(h_biased) - round_unit_bits;
  const U lo_int = bits_as<U>(lo + round_unit) - round_unit_bits;
  const U result = (h_int << 32) + lo_int;
  const U magnitude_bits = bits_as<U>(x) & splat<U>(0x7FFFFFFFFFFFFFFFull);
  return bits_as<I>(magnitude_bits) < splat<I>(0x4730000000000000ll) ? result
                                                                     : splat<U>(0);  // 2^116
}

// *p += round(x) mod 2^64. With AVX-512 the input is x * 2^-64 (the untwist table carries the
// factor; scaling by a power of two is exact, and inputs small enough to become subnormal round
// to 0 either way): vreducepd gives its distance to the nearest integer (ties to even), exactly,
// in [-1/2, 1/2]; times 2^64 that is x - round(x / 2^64) * 2^64 in [-2^63, 2^63], which
// vcvtpd2qq rounds (ties to even, embedded rounding) in one instruction; its overflow value for
// exactly 2^63, 0x8000000000000000, is also the right residue. Same results as to_torus for
// finite inputs. (Inline assembly: the intrinsics would need the target attribute on this
// generic template; W = 8 is only ever inlined into the AVX-512 entries.)
template <int W>
FHEML_INLINE void round_add(std::uint64_t* p, const VD<W>& x) {
  if constexpr (W == 8) {
    VD<W> frac;
    asm("vreducepd $8, %1, %0" : "=v"(frac) : "v"(x));  // 8: to nearest, no exceptions
    const VD<W> reduced = frac * splat<VD<W>>(0x1p64);  // exact
    VI<W> r;
    asm("vcvtpd2qq %{rn-sae%}, %1, %0" : "=v"(r) : "v"(reduced));
    store(p, load<VU<W>>(p) + bits_as<VU<W>>(r));
  } else {
    store(p, load<VU<W>>(p) + to_torus<W>(x));
  }
}

// Interleaves x and y in blocks of G lanes: lo = [x.b0, y.b0, x.b2, y.b2, ...],
// hi = [x.b1, y.b1, x.b3, y.b3, ...]. lo[l] and hi[l] are lanes G apart in x (or y). Applied to
// (lo, hi) it gives back (x, y).
constexpr int interleave_source(int w, int g, bool hi, int lane) {
  const int block = lane / g;
  return (block % 2 ? w : 0) + (2 * (block / 2) + (hi ? 1 : 0)) * g + lane % g;
}

template <int W, int G, bool kHi, int... L>
FHEML_INLINE VD<W> interleave_impl(const VD<W>& x, const VD<W>& y,
                                   std::integer_sequence<int, L...>) {
  return __builtin_shufflevector(x, y, interleave_source(W, G, kHi, L)...);
}

template <int W, int G>
FHEML_INLINE void interleave(CVec<W>& x, CVec<W>& y) {
  const auto lanes = std::make_integer_sequence<int, W>{};
  const CVec<W> lo{interleave_impl<W, G, false>(x.re, y.re, lanes),
                   interleave_impl<W, G, false>(x.im, y.im, lanes)};
  const CVec<W> hi{interleave_impl<W, G, true>(x.re, y.re, lanes),
                   interleave_impl<W, G, true>(x.im, y.im, lanes)};
  x = lo;
  y = hi;
}

// Forward in-register stages g = G, G/2, ..., 1 on the vector pair (x, y).
template <int W, int G>
FHEML_INLINE void dif_lanes(CVec<W>& x, CVec<W>& y, const CVec<W>* tw) {
  if constexpr (G >= 1) {
    interleave<W, G>(x, y);
    const CVec<W> d = sub(x, y);
    x = add(x, y);
    y = G == 1 ? d : mul(d, tw[0]);  // the g = 1 twiddle is 1
    dif_lanes<W, G / 2>(x, y, tw + 1);
  }
}

// Inverse of dif_lanes (up to a factor 2 per stage): g = 1, 2, ..., G.
template <int W, int G>
FHEML_INLINE void dit_lanes(CVec<W>& x, CVec<W>& y, const CVec<W>* tw) {
  if constexpr (G >= 1) {
    dit_lanes<W, G / 2>(x, y, tw + 1);
    const CVec<W> b = G == 1 ? y : mul_conj(y, tw[0]);
    y = sub(x, b);
    x = add(x, b);
    interleave<W, G>(x, y);
  }
}

// Radix-4 DIF butterfly on points t, t+q, t+2q, t+3q of a block of 4q: the two radix-2 stages of
// distances 2q and q, with 3 complex products instead of 4. w points at the twiddles of this t,
// in loop order: w_{4q}^t, w_{4q}^{2t}, w_{4q}^{3t}, each re[W] then im[W].
// Outputs stay in the radix-2 (bit-reversed) order: slot 1 holds the frequencies 2 mod 4, slot 2
// the frequencies 1 mod 4.
template <int W>
FHEML_INLINE void dif4(CVec<W>& x0, CVec<W>& x1, CVec<W>& x2, CVec<W>& x3, const double* w) {
  const CVec<W> a0 = add(x0, x2);
  const CVec<W> b0 = sub(x0, x2);
  const CVec<W> a1 = add(x1, x3);
  const CVec<W> b1 = sub(x1, x3);
  x0 = add(a0, a1);
  x1 = mul(sub(a0, a1), cload<W>(w + 2 * W, w + 3 * W));
  x2 = mul(CVec<W>{b0.re + b1.im, b0.im - b1.re}, cload<W>(w, w + W));              // b0 - i b1
  x3 = mul(CVec<W>{b0.re - b1.im, b0.im + b1.re}, cload<W>(w + 4 * W, w + 5 * W));  // b0 + i b1
}

// Inverse of dif4 (up to a factor 4).
template <int W>
FHEML_INLINE void dit4(CVec<W>& x0, CVec<W>& x1, CVec<W>& x2, CVec<W>& x3, const double* w) {
  const CVec<W> z1 = mul_conj(x1, cload<W>(w + 2 * W, w + 3 * W));
  const CVec<W> z2 = mul_conj(x2, cload<W>(w, w + W));
  const CVec<W> z3 = mul_conj(x3, cload<W>(w + 4 * W, w + 5 * W));
  const CVec<W> a0 = add(x0, z1);
  const CVec<W> a1 = sub(x0, z1);
  const CVec<W> b0 = add(z2, z3);
  const CVec<W> d = sub(z2, z3);
  x0 = add(a0, b0);
  x2 = sub(a0, b0);
  x1 = CVec<W>{a1.re - d.im, a1.im + d.re};  // a1 + i d
  x3 = CVec<W>{a1.re + d.im, a1.im - d.re};  // a1 - i d
}

// One radix-4 pass (stages of distances 2q, q) over every block of 4q points in [0, len).
template <int W>
FHEML_INLINE void dif_pass(double* re, double* im, std::size_t len, std::size_t q,
                           const double* tw) {
  for (std::size_t base = 0; base < len; base += 4 * q) {
    double* r = re + base;
    double* i = im + base;
    const double* w = tw;
    for (std::size_t t = 0; t < q; t += W, w += 6 * W) {
      CVec<W> x0 = cload<W>(r + t, i + t);
      CVec<W> x1 = cload<W>(r + q + t, i + q + t);
      CVec<W> x2 = cload<W>(r + 2 * q + t, i + 2 * q + t);
      CVec<W> x3 = cload<W>(r + 3 * q + t, i + 3 * q + t);
      dif4<W>(x0, x1, x2, x3, w);
      cstore(r + t, i + t, x0);
      cstore(r + q + t, i + q + t, x1);
      cstore(r + 2 * q + t, i + 2 * q + t, x2);
      cstore(r + 3 * q + t, i + 3 * q + t, x3);
    }
  }
}

template <int W>
FHEML_INLINE void dit_pass(double* re, double* im, std::size_t len, std::size_t q,
                           const double* tw) {
  for (std::size_t base = 0; base < len; base += 4 * q) {
    double* r = re + base;
    double* i = im + base;
    const double* w = tw;
    for (std::size_t t = 0; t < q; t += W, w += 6 * W) {
      CVec<W> x0 = cload<W>(r + t, i + t);
      CVec<W> x1 = cload<W>(r + q + t, i + q + t);
      CVec<W> x2 = cload<W>(r + 2 * q + t, i + 2 * q + t);
      CVec<W> x3 = cload<W>(r + 3 * q + t, i + 3 * q + t);
      dit4<W>(x0, x1, x2, x3, w);
      cstore(r + t, i + t, x0);
      cstore(r + q + t, i + q + t, x1);
      cstore(r + 2 * q + t, i + 2 * q + t, x2);
      cstore(r + 3 * q + t, i + 3 * q + t, x3);
    }
  }
}

// Folded input point j: (a_j + i a_{j+M}) * exp(i pi j / N).
template <int W>
FHEML_INLINE CVec<W> twisted_input(const detail::FftTables& t, const std::uint64_t* in,
                                   std::size_t j) {
  const CVec<W> z{to_double<W>(in + j), to_double<W>(in + t.m + j)};
  return mul(z, cload<W>(t.twist.data() + j, t.twist.data() + t.m + j));
}

// Coefficients j and j + M from the inverse-transformed point j: untwist (the table includes the
// 1/M of the inverse transform), unfold, round and accumulate.
template <int W>
FHEML_INLINE void untwisted_output(const detail::FftTables& t, const CVec<W>& x, std::size_t j,
                                   std::uint64_t* out) {
  const CVec<W> z = mul(x, cload<W>(t.untwist.data() + j, t.untwist.data() + t.m + j));
  round_add<W>(out + j, z.re);
  round_add<W>(out + t.m + j, z.im);
}

// First forward pass (q = M/4, a single block) fused with the fold and twist of the input.
template <int W>
FHEML_INLINE void dif_pass_first(const detail::FftTables& t, const std::uint64_t* in, double* re,
                                 double* im, const double* tw) {
  const std::size_t q = t.m / 4;
  const double* w = tw;
  for (std::size_t s = 0; s < q; s += W, w += 6 * W) {
    CVec<W> x0 = twisted_input<W>(t, in, s);
    CVec<W> x1 = twisted_input<W>(t, in, q + s);
    CVec<W> x2 = twisted_input<W>(t, in, 2 * q + s);
    CVec<W> x3 = twisted_input<W>(t, in, 3 * q + s);
    dif4<W>(x0, x1, x2, x3, w);
    cstore(re + s, im + s, x0);
    cstore(re + q + s, im + q + s, x1);
    cstore(re + 2 * q + s, im + 2 * q + s, x2);
    cstore(re + 3 * q + s, im + 3 * q + s, x3);
  }
}

// Last inverse pass fused with the untwist, rounding and accumulation.
template <int W>
FHEML_INLINE void dit_pass_last(const detail::FftTables& t, const double* re, const double* im,
                                const double* tw, std::uint64_t* out) {
  const std::size_t q = t.m / 4;
  const double* w = tw;
  for (std::size_t s = 0; s < q; s += W, w += 6 * W) {
    CVec<W> x0 = cload<W>(re + s, im + s);
    CVec<W> x1 = cload<W>(re + q + s, im + q + s);
    CVec<W> x2 = cload<W>(re + 2 * q + s, im + 2 * q + s);
    CVec<W> x3 = cload<W>(re + 3 * q + s, im + 3 * q + s);
    dit4<W>(x0, x1, x2, x3, w);
    untwisted_output<W>(t, x0, s, out);
    untwisted_output<W>(t, x1, q + s, out);
    untwisted_output<W>(t, x2, 2 * q + s, out);
    untwisted_output<W>(t, x3, 3 * q + s, out);
  }
}

template <int W>
FHEML_INLINE void load_lane_twiddles(const detail::FftTables& t, CVec<W>& fused, CVec<W>* lanes) {
  const double* p = t.lane_twiddles.data();
  fused = cload<W>(p, p + W);
  int s = 0;
  for (int g = W / 2; g >= 1; g /= 2, ++s) {
    lanes[s] = cload<W>(p + 2 * W * (s + 1), p + 2 * W * (s + 1) + W);
  }
}

// In-place interleave of x and y in blocks of G lanes (see interleave_source).
template <int W, int G>
FHEML_INLINE void interleave_vd(VD<W>& x, VD<W>& y) {
  const auto lanes = std::make_integer_sequence<int, W>{};
  const VD<W> lo = interleave_impl<W, G, false>(x, y, lanes);
  const VD<W> hi = interleave_impl<W, G, true>(x, y, lanes);
  x = lo;
  y = hi;
}

// 8x8 transpose of double vectors, in three stages of interleaves (granularity 1, 2, 4).
// (Named arguments, no arrays: GCC keeps arrays of vectors in memory.)
template <int W>
FHEML_INLINE void transpose8(VD<W>& v0, VD<W>& v1, VD<W>& v2, VD<W>& v3, VD<W>& v4, VD<W>& v5,
                             VD<W>& v6, VD<W>& v7) {
  interleave_vd<W, 1>(v0, v1);
  interleave_vd<W, 1>(v2, v3);
  interleave_vd<W, 1>(v4, v5);
  interleave_vd<W, 1>(v6, v7);
  interleave_vd<W, 2>(v0, v2);
  interleave_vd<W, 2>(v1, v3);
  interleave_vd<W, 2>(v4, v6);
  interleave_vd<W, 2>(v5, v7);
  interleave_vd<W, 4>(v0, v4);
  interleave_vd<W, 4>(v1, v5);
  interleave_vd<W, 4>(v2, v6);
  interleave_vd<W, 4>(v3, v7);
}

template <int W>
FHEML_INLINE void ctranspose8(CVec<W>& v0, CVec<W>& v1, CVec<W>& v2, CVec<W>& v3, CVec<W>& v4,
                              CVec<W>& v5, CVec<W>& v6, CVec<W>& v7) {
  transpose8<W>(v0.re, v1.re, v2.re, v3.re, v4.re, v5.re, v6.re, v7.re);
  transpose8<W>(v0.im, v1.im, v2.im, v3.im, v4.im, v5.im, v6.im, v7.im);
}

constexpr double kSqrtHalf = 0x1.6a09e667f3bcdp-1;

// DIF radix-2 butterfly with twiddle 1: (x, y) <- (x + y, x - y).
template <int W>
FHEML_INLINE void bfly(CVec<W>& x, CVec<W>& y) {
  const CVec<W> d = sub(x, y);
  x = add(x, y);
  y = d;
}

// Radix-8 DIF on 8 vectors (points b = 0..7, one independent transform per lane) with the
// trivial twiddles of the last three stages: w_8^b = 1, w_8, -i, w_8^3, then w_4^b = 1, -i.
template <int W>
FHEML_INLINE void dif8_trivial(CVec<W>& u0, CVec<W>& u1, CVec<W>& u2, CVec<W>& u3, CVec<W>& u4,
                               CVec<W>& u5, CVec<W>& u6, CVec<W>& u7) {
  const VD<W> c = splat<VD<W>>(kSqrtHalf);
  bfly(u0, u4);
  bfly(u1, u5);
  bfly(u2, u6);
  bfly(u3, u7);
  u5 = CVec<W>{(u5.re + u5.im) * c, (u5.im - u5.re) * c};   // * w_8
  u6 = CVec<W>{u6.im, -u6.re};                              // * -i
  u7 = CVec<W>{(u7.im - u7.re) * c, -(u7.re + u7.im) * c};  // * w_8^3
  bfly(u0, u2);
  bfly(u1, u3);
  bfly(u4, u6);
  bfly(u5, u7);
  u3 = CVec<W>{u3.im, -u3.re};  // * -i
  u7 = CVec<W>{u7.im, -u7.re};
  bfly(u0, u1);
  bfly(u2, u3);
  bfly(u4, u5);
  bfly(u6, u7);
}

// Inverse of dif8_trivial (up to a factor 8).
template <int W>
FHEML_INLINE void dit8_trivial(CVec<W>& u0, CVec<W>& u1, CVec<W>& u2, CVec<W>& u3, CVec<W>& u4,
                               CVec<W>& u5, CVec<W>& u6, CVec<W>& u7) {
  const VD<W> c = splat<VD<W>>(kSqrtHalf);
  bfly(u0, u1);
  bfly(u2, u3);
  bfly(u4, u5);
  bfly(u6, u7);
  u3 = CVec<W>{-u3.im, u3.re};  // * i
  u7 = CVec<W>{-u7.im, u7.re};
  bfly(u0, u2);
  bfly(u1, u3);
  bfly(u4, u6);
  bfly(u5, u7);
  u5 = CVec<W>{(u5.re - u5.im) * c, (u5.im + u5.re) * c};   // * conj(w_8)
  u6 = CVec<W>{-u6.im, u6.re};                              // * i
  u7 = CVec<W>{-(u7.re + u7.im) * c, (u7.re - u7.im) * c};  // * conj(w_8^3)
  bfly(u0, u4);
  bfly(u1, u5);
  bfly(u2, u6);
  bfly(u3, u7);
}

// Forward stages of distance 32 .. 1 on a block of 64 points (8 vectors): a radix-4 pass
// (q = 16) and the stage of distance 8 on whole vectors, an 8x8 transpose (re and im), then
// the last three stages vertically with trivial twiddles. The result stays transposed.
template <int W>
FHEML_INLINE void dif_block64(const double* ftw, double* re, double* im) {
  CVec<W> v0 = cload<W>(re, im);
  CVec<W> v1 = cload<W>(re + W, im + W);
  CVec<W> v2 = cload<W>(re + 2 * W, im + 2 * W);
  CVec<W> v3 = cload<W>(re + 3 * W, im + 3 * W);
  CVec<W> v4 = cload<W>(re + 4 * W, im + 4 * W);
  CVec<W> v5 = cload<W>(re + 5 * W, im + 5 * W);
  CVec<W> v6 = cload<W>(re + 6 * W, im + 6 * W);
  CVec<W> v7 = cload<W>(re + 7 * W, im + 7 * W);
  dif4<W>(v0, v2, v4, v6, ftw);
  dif4<W>(v1, v3, v5, v7, ftw + 6 * W);
  const CVec<W> w16 = cload<W>(ftw + 12 * W, ftw + 13 * W);
  bfly(v0, v1);
  v1 = mul(v1, w16);
  bfly(v2, v3);
  v3 = mul(v3, w16);
  bfly(v4, v5);
  v5 = mul(v5, w16);
  bfly(v6, v7);
  v7 = mul(v7, w16);
  ctranspose8<W>(v0, v1, v2, v3, v4, v5, v6, v7);
  dif8_trivial<W>(v0, v1, v2, v3, v4, v5, v6, v7);
  cstore(re, im, v0);
  cstore(re + W, im + W, v1);
  cstore(re + 2 * W, im + 2 * W, v2);
  cstore(re + 3 * W, im + 3 * W, v3);
  cstore(re + 4 * W, im + 4 * W, v4);
  cstore(re + 5 * W, im + 5 * W, v5);
  cstore(re + 6 * W, im + 6 * W, v6);
  cstore(re + 7 * W, im + 7 * W, v7);
}

template <int W>
FHEML_INLINE void dit_bfly(CVec<W>& x, CVec<W>& y, const CVec<W>& w) {
  const CVec<W> b = mul_conj(y, w);
  y = sub(x, b);
  x = add(x, b);
}

template <int W>
FHEML_INLINE void dit_block64(const double* ftw, double* re, double* im) {
  CVec<W> v0 = cload<W>(re, im);
  CVec<W> v1 = cload<W>(re + W, im + W);
  CVec<W> v2 = cload<W>(re + 2 * W, im + 2 * W);
  CVec<W> v3 = cload<W>(re + 3 * W, im + 3 * W);
  CVec<W> v4 = cload<W>(re + 4 * W, im + 4 * W);
  CVec<W> v5 = cload<W>(re + 5 * W, im + 5 * W);
  CVec<W> v6 = cload<W>(re + 6 * W, im + 6 * W);
  CVec<W> v7 = cload<W>(re + 7 * W, im + 7 * W);
  dit8_trivial<W>(v0, v1, v2, v3, v4, v5, v6, v7);
  ctranspose8<W>(v0, v1, v2, v3, v4, v5, v6, v7);
  const CVec<W> w16 = cload<W>(ftw + 12 * W, ftw + 13 * W);
  dit_bfly(v0, v1, w16);
  dit_bfly(v2, v3, w16);
  dit_bfly(v4, v5, w16);
  dit_bfly(v6, v7, w16);
  dit4<W>(v0, v2, v4, v6, ftw);
  dit4<W>(v1, v3, v5, v7, ftw + 6 * W);
  cstore(re, im, v0);
  cstore(re + W, im + W, v1);
  cstore(re + 2 * W, im + 2 * W, v2);
  cstore(re + 3 * W, im + 3 * W, v3);
  cstore(re + 4 * W, im + 4 * W, v4);
  cstore(re + 5 * W, im + 5 * W, v5);
  cstore(re + 6 * W, im + 6 * W, v6);
  cstore(re + 7 * W, im + 7 * W, v7);
}

// Final forward pass of the transposed layout on [0, len): the optional radix-2 stage of
// distance 64 (blocks of 128), then every block of 64 points.
template <int W>
FHEML_INLINE void dif_final_transposed(const detail::FftTables& t, double* re, double* im,
                                       std::size_t len) {
  const double* ftw = t.final_twiddles.data();
  if (t.fused_stage) {
    const double* w2 = ftw + 14 * W;
    for (std::size_t c = 0; c < len; c += 16 * W) {
      for (int a = 0; a < 8; ++a) {
        const std::size_t lo = c + static_cast<std::size_t>(a) * W;
        const std::size_t hi = lo + 8 * W;
        const CVec<W> x = cload<W>(re + lo, im + lo);
        const CVec<W> y = cload<W>(re + hi, im + hi);
        cstore(re + lo, im + lo, add(x, y));
        cstore(re + hi, im + hi, mul(sub(x, y), cload<W>(w2 + 2 * W * a, w2 + 2 * W * a + W)));
      }
      dif_block64<W>(ftw, re + c, im + c);
      dif_block64<W>(ftw, re + c + 8 * W, im + c + 8 * W);
    }
  } else {
    for (std::size_t c = 0; c < len; c += 8 * W) dif_block64<W>(ftw, re + c, im + c);
  }
}

template <int W>
FHEML_INLINE void dit_first_transposed(const detail::FftTables& t, double* re, double* im,
                                       std::size_t len) {
  const double* ftw = t.final_twiddles.data();
  if (t.fused_stage) {
    const double* w2 = ftw + 14 * W;
    for (std::size_t c = 0; c < len; c += 16 * W) {
      dit_block64<W>(ftw, re + c, im + c);
      dit_block64<W>(ftw, re + c + 8 * W, im + c + 8 * W);
      for (int a = 0; a < 8; ++a) {
        const std::size_t lo = c + static_cast<std::size_t>(a) * W;
        const std::size_t hi = lo + 8 * W;
        const CVec<W> x = cload<W>(re + lo, im + lo);
        const CVec<W> b =
            mul_conj(cload<W>(re + hi, im + hi), cload<W>(w2 + 2 * W * a, w2 + 2 * W * a + W));
        cstore(re + lo, im + lo, add(x, b));
        cstore(re + hi, im + hi, sub(x, b));
      }
    }
  } else {
    for (std::size_t c = 0; c < len; c += 8 * W) dit_block64<W>(ftw, re + c, im + c);
  }
}

// Last forward pass on [0, len): the optional stage of distance W, then the in-register stages,
// on each pair of consecutive vectors.
template <int W>
FHEML_INLINE void dif_final(const detail::FftTables& t, double* re, double* im, std::size_t len) {
  if constexpr (W == 8) {
    if (t.transposed_final) return dif_final_transposed<W>(t, re, im, len);
  }
  if (W == 1 && !t.fused_stage) return;
  CVec<W> fused;
  CVec<W> lanes[W];  // (only log2 W used)
  load_lane_twiddles<W>(t, fused, lanes);
  for (std::size_t c = 0; c < len; c += 2 * W) {
    CVec<W> x = cload<W>(re + c, im + c);
    CVec<W> y = cload<W>(re + c + W, im + c + W);
    if (t.fused_stage) {
      const CVec<W> d = sub(x, y);
      x = add(x, y);
      y = mul(d, fused);
    }
    dif_lanes<W, W / 2>(x, y, lanes);
    cstore(re + c, im + c, x);
    cstore(re + c + W, im + c + W, y);
  }
}

template <int W>
FHEML_INLINE void dit_first(const detail::FftTables& t, double* re, double* im, std::size_t len) {
  if constexpr (W == 8) {
    if (t.transposed_final) return dit_first_transposed<W>(t, re, im, len);
  }
  if (W == 1 && !t.fused_stage) return;
  CVec<W> fused;
  CVec<W> lanes[W];
  load_lane_twiddles<W>(t, fused, lanes);
  for (std::size_t c = 0; c < len; c += 2 * W) {
    CVec<W> x = cload<W>(re + c, im + c);
    CVec<W> y = cload<W>(re + c + W, im + c + W);
    dit_lanes<W, W / 2>(x, y, lanes);
    if (t.fused_stage) {
      const CVec<W> b = mul_conj(y, fused);
      y = sub(x, b);
      x = add(x, b);
    }
    cstore(re + c, im + c, x);
    cstore(re + c + W, im + c + W, y);
  }
}

// Pass order. Pass 0 (fused with the input conversion) and the passes on blocks larger than a
// leaf each sweep the whole array (out of L1 for large N, whatever the order); then every leaf
// block, small enough to stay in L1, is finished depth-first: its remaining passes and the final
// pass. The inverse runs the same schedule backwards.
template <int W>
FHEML_INLINE void forward_impl(const detail::FftTables& t, const std::uint64_t* in, double* out) {
  const std::size_t m = t.m;
  double* re = out;
  double* im = out + m;
  const std::size_t passes = t.passes.size();
  const double* tw = t.pass_twiddles.data();
  if (passes == 0) {
    for (std::size_t j = 0; j < m; j += W) cstore(re + j, im + j, twisted_input<W>(t, in, j));
    dif_final<W>(t, re, im, m);
    return;
  }
  dif_pass_first<W>(t, in, re, im, tw + t.passes[0].offset);
  for (std::size_t p = 1; p < t.leaf_depth; ++p) {
    dif_pass<W>(re, im, m, t.passes[p].quarter, tw + t.passes[p].offset);
  }
  if (t.leaf_depth == passes) {
    dif_final<W>(t, re, im, m);
    return;
  }
  for (std::size_t b = 0; b < m; b += t.leaf) {
    for (std::size_t p = t.leaf_depth; p < passes; ++p) {
      dif_pass<W>(re + b, im + b, t.leaf, t.passes[p].quarter, tw + t.passes[p].offset);
    }
    dif_final<W>(t, re + b, im + b, t.leaf);
  }
}

template <int W>
FHEML_INLINE void backward_impl(const detail::FftTables& t, double* fourier, std::uint64_t* out) {
  const std::size_t m = t.m;
  double* re = fourier;
  double* im = fourier + m;
  const std::size_t passes = t.passes.size();
  const double* tw = t.pass_twiddles.data();
  if (passes == 0) {
    dit_first<W>(t, re, im, m);
    for (std::size_t j = 0; j < m; j += W) untwisted_output<W>(t, cload<W>(re + j, im + j), j, out);
    return;
  }
  if (t.leaf_depth == passes) {
    dit_first<W>(t, re, im, m);
  } else {
    for (std::size_t b = 0; b < m; b += t.leaf) {
      dit_first<W>(t, re + b, im + b, t.leaf);
      for (std::size_t p = passes; p-- > t.leaf_depth;) {
        dit_pass<W>(re + b, im + b, t.leaf, t.passes[p].quarter, tw + t.passes[p].offset);
      }
    }
  }
  for (std::size_t p = t.leaf_depth; p-- > 1;) {
    dit_pass<W>(re, im, m, t.passes[p].quarter, tw + t.passes[p].offset);
  }
  dit_pass_last<W>(t, re, im, tw + t.passes[0].offset, out);
}

template <int W>
FHEML_INLINE void multiply_accumulate_impl(std::size_t m, double* acc, const double* a,
                                           const double* b) {
  for (std::size_t k = 0; k < m; k += W) {
    const CVec<W> x = cload<W>(a + k, a + m + k);
    const CVec<W> y = cload<W>(b + k, b + m + k);
    cstore(acc + k, acc + m + k, add(cload<W>(acc + k, acc + m + k), mul(x, y)));
  }
}

// One set of non-inline entry points per level; only these carry a target attribute.
#define FHEML_FFT_ENTRIES(suffix, width, attributes)                                        \
  attributes void forward_##suffix(const detail::FftTables& t, const std::uint64_t* in,     \
                                   double* out) {                                           \
    forward_impl<width>(t, in, out);                                                        \
  }                                                                                         \
  attributes void backward_##suffix(const detail::FftTables& t, double* fourier,            \
                                    std::uint64_t* out) {                                   \
    backward_impl<width>(t, fourier, out);                                                  \
  }                                                                                         \
  attributes void multiply_accumulate_##suffix(std::size_t m, double* acc, const double* a, \
                                               const double* b) {                           \
    multiply_accumulate_impl<width>(m, acc, a, b);                                          \
  }

FHEML_FFT_ENTRIES(scalar, 1, )
#if defined(__x86_64__) || defined(__i386__)
#define FHEML_FFT_HAVE_X86 1
FHEML_FFT_ENTRIES(avx2, 4, __attribute__((target("avx2,fma"))))
FHEML_FFT_ENTRIES(avx512, 8, __attribute__((target("avx512f,avx512dq"))))
#endif

#undef FHEML_FFT_ENTRIES
#undef FHEML_INLINE

}  // namespace

#pragma GCC pop_options

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
      return forward_avx512(*tables_, in, fourier.data());
    case SimdLevel::kAvx2Fma:
      return forward_avx2(*tables_, in, fourier.data());
#endif
    default:
      return forward_scalar(*tables_, in, fourier.data());
  }
}

void FftPlan::forward_int(std::span<const std::int64_t> poly, std::span<double> fourier) const {
  require_size("forward_int", "poly", poly.size(), n_.value);
  // Same bits, same conversion: a Torus is read as a signed int64 anyway.
  forward_torus(std::span<const Torus>(reinterpret_cast<const Torus*>(poly.data()), poly.size()),
                fourier);
}

void FftPlan::backward_add_torus(std::span<double> fourier, std::span<Torus> poly) const {
  require_size("backward_add_torus", "fourier", fourier.size(), n_.value);
  require_size("backward_add_torus", "poly", poly.size(), n_.value);
  switch (level_) {
#ifdef FHEML_FFT_HAVE_X86
    case SimdLevel::kAvx512:
      return backward_avx512(*tables_, fourier.data(), poly.data());
    case SimdLevel::kAvx2Fma:
      return backward_avx2(*tables_, fourier.data(), poly.data());
#endif
    default:
      return backward_scalar(*tables_, fourier.data(), poly.data());
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
      return multiply_accumulate_avx512(m, acc.data(), a.data(), b.data());
    case SimdLevel::kAvx2Fma:
      return multiply_accumulate_avx2(m, acc.data(), a.data(), b.data());
#endif
    default:
      return multiply_accumulate_scalar(m, acc.data(), a.data(), b.data());
  }
}

}  // namespace fheml::tfhe
