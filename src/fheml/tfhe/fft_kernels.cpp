// Negacyclic FFT kernels (the plans and dispatch are in fft.cpp). See fft.h for the method.
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
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "fheml/tfhe/fft_tables.h"

namespace fheml::tfhe {

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

#include "fheml/tfhe/fft_simd.inc"

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

// Walks a Prefetch region a few cache lines per loop iteration of the radix-4 passes, so that
// the requests overlap the arithmetic instead of queueing at once (a burst of a GGSW's 1024
// prefetches stalls the core: measured slower than none).
struct PrefetchCursor {
  const char* p;
  const char* end;
  std::size_t per_step;

  FHEML_INLINE void step() {
    for (std::size_t i = 0; i < per_step && p < end; ++i, p += 64) __builtin_prefetch(p, 0, 2);
  }
};

// Spread over the radix-4 passes' iterations (passes * M / (4W)): done before the final pass.
template <int W>
FHEML_INLINE PrefetchCursor prefetch_cursor(const detail::FftTables& t, detail::Prefetch region) {
  const std::size_t lines = static_cast<std::size_t>(region.end - region.begin + 63) / 64;
  const std::size_t steps = std::max<std::size_t>(1, t.passes.size() * t.m / (4 * W));
  return {region.begin, region.end, (lines + steps - 1) / steps};
}

// One radix-4 pass (stages of distances 2q, q) over every block of 4q points in [0, len):
// DIF butterflies for the forward transform, DIT for the inverse.
template <int W, bool kInverse>
FHEML_INLINE void radix4_pass(double* re, double* im, std::size_t len, std::size_t q,
                              const double* tw, PrefetchCursor& prefetch) {
  for (std::size_t base = 0; base < len; base += 4 * q) {
    double* r = re + base;
    double* i = im + base;
    const double* w = tw;
    for (std::size_t t = 0; t < q; t += W, w += 6 * W) {
      prefetch.step();
      CVec<W> x0 = cload<W>(r + t, i + t);
      CVec<W> x1 = cload<W>(r + q + t, i + q + t);
      CVec<W> x2 = cload<W>(r + 2 * q + t, i + 2 * q + t);
      CVec<W> x3 = cload<W>(r + 3 * q + t, i + 3 * q + t);
      if constexpr (kInverse) {
        dit4<W>(x0, x1, x2, x3, w);
      } else {
        dif4<W>(x0, x1, x2, x3, w);
      }
      cstore(r + t, i + t, x0);
      cstore(r + q + t, i + q + t, x1);
      cstore(r + 2 * q + t, i + 2 * q + t, x2);
      cstore(r + 3 * q + t, i + 3 * q + t, x3);
    }
  }
}

// Inputs of the forward transform: coefficients [j, j + W) as doubles, read by its first pass.

// A polynomial of int64 (or Torus words read as int64).
struct IntInput {
  const std::uint64_t* in;

  template <int W>
  FHEML_INLINE VD<W> load_at(std::size_t j) const {
    return to_double<W>(in + j);
  }
};

// The blind rotation's CMux input (RotatedDigitInput) and products (multiply_sum_impl).
#include "fheml/tfhe/fft_cmux.inc"

// Folded input point j: (a_j + i a_{j+M}) * exp(i pi j / N).
template <int W, class Input>
FHEML_INLINE CVec<W> twisted_input(const detail::FftTables& t, const Input& in, std::size_t j) {
  const CVec<W> z{in.template load_at<W>(j), in.template load_at<W>(t.m + j)};
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
template <int W, class Input>
FHEML_INLINE void dif_pass_first(const detail::FftTables& t, const Input& in, double* re,
                                 double* im, const double* tw, PrefetchCursor& prefetch) {
  const std::size_t q = t.m / 4;
  const double* w = tw;
  for (std::size_t s = 0; s < q; s += W, w += 6 * W) {
    prefetch.step();
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
                                const double* tw, std::uint64_t* out, PrefetchCursor& prefetch) {
  const std::size_t q = t.m / 4;
  const double* w = tw;
  for (std::size_t s = 0; s < q; s += W, w += 6 * W) {
    prefetch.step();
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
template <int W, class Input>
FHEML_INLINE void forward_impl(const detail::FftTables& t, const Input& in, double* out,
                               detail::Prefetch region = {}) {
  PrefetchCursor prefetch = prefetch_cursor<W>(t, region);
  const std::size_t m = t.m;
  double* re = out;
  double* im = out + m;
  const std::size_t passes = t.passes.size();
  const double* tw = t.pass_twiddles.data();
  if (passes == 0) {
    prefetch.step();
    for (std::size_t j = 0; j < m; j += W) cstore(re + j, im + j, twisted_input<W>(t, in, j));
    dif_final<W>(t, re, im, m);
    return;
  }
  dif_pass_first<W>(t, in, re, im, tw + t.passes[0].offset, prefetch);
  for (std::size_t p = 1; p < t.leaf_depth; ++p) {
    radix4_pass<W, false>(re, im, m, t.passes[p].quarter, tw + t.passes[p].offset, prefetch);
  }
  if (t.leaf_depth == passes) {
    dif_final<W>(t, re, im, m);
    return;
  }
  for (std::size_t b = 0; b < m; b += t.leaf) {
    for (std::size_t p = t.leaf_depth; p < passes; ++p) {
      radix4_pass<W, false>(re + b, im + b, t.leaf, t.passes[p].quarter, tw + t.passes[p].offset,
                            prefetch);
    }
    dif_final<W>(t, re + b, im + b, t.leaf);
  }
}

template <int W>
FHEML_INLINE void backward_impl(const detail::FftTables& t, double* fourier, std::uint64_t* out,
                                detail::Prefetch region) {
  PrefetchCursor prefetch = prefetch_cursor<W>(t, region);
  const std::size_t m = t.m;
  double* re = fourier;
  double* im = fourier + m;
  const std::size_t passes = t.passes.size();
  const double* tw = t.pass_twiddles.data();
  if (passes == 0) {
    prefetch.step();
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
        radix4_pass<W, true>(re + b, im + b, t.leaf, t.passes[p].quarter, tw + t.passes[p].offset,
                             prefetch);
      }
    }
  }
  for (std::size_t p = t.leaf_depth; p-- > 1;) {
    radix4_pass<W, true>(re, im, m, t.passes[p].quarter, tw + t.passes[p].offset, prefetch);
  }
  dit_pass_last<W>(t, re, im, tw + t.passes[0].offset, out, prefetch);
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

}  // namespace

namespace detail {

// One set of non-inline entry points per level; only these carry a target attribute.
#define FHEML_FFT_ENTRIES(suffix, width, attributes)                                           \
  attributes void forward_##suffix(const FftTables& t, const std::uint64_t* in, double* out) { \
    forward_impl<width>(t, IntInput{in}, out);                                                 \
  }                                                                                            \
  attributes void forward_rotated_digit_##suffix(const FftTables& t, const RotatedDigit& in,   \
                                                 double* out, Prefetch prefetch) {             \
    if (in.below == 0) {                                                                       \
      forward_impl<width>(t, rotated_digit_input<0>(t, in), out, prefetch);                    \
    } else if (in.below == 1) {                                                                \
      forward_impl<width>(t, rotated_digit_input<1>(t, in), out, prefetch);                    \
    } else {                                                                                   \
      forward_impl<width>(t, rotated_digit_input<-1>(t, in), out, prefetch);                   \
    }                                                                                          \
  }                                                                                            \
  attributes void multiply_sum_##suffix(std::size_t m, std::size_t rows, std::size_t cols,     \
                                        double* out, const double* a, const double* b) {       \
    multiply_sum_impl<width>(m, rows, cols, out, a, b);                                        \
  }                                                                                            \
  attributes void backward_##suffix(const FftTables& t, double* fourier, std::uint64_t* out,   \
                                    Prefetch prefetch) {                                       \
    backward_impl<width>(t, fourier, out, prefetch);                                           \
  }                                                                                            \
  attributes void multiply_accumulate_##suffix(std::size_t m, double* acc, const double* a,    \
                                               const double* b) {                              \
    multiply_accumulate_impl<width>(m, acc, a, b);                                             \
  }

FHEML_FFT_ENTRIES(scalar, 1, )
#ifdef FHEML_FFT_HAVE_X86
FHEML_FFT_ENTRIES(avx2, 4, __attribute__((target("avx2,fma"))))
FHEML_FFT_ENTRIES(avx512, 8, __attribute__((target("avx512f,avx512dq"))))
#endif

#undef FHEML_FFT_ENTRIES
#undef FHEML_INLINE

}  // namespace detail

#pragma GCC pop_options
}  // namespace fheml::tfhe
