// Internal to the FFT: the per-plan tables and the kernel entry points that fft.cpp (plans,
// dispatch) and fft_kernels.cpp (the SIMD kernels) share. Not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fheml/tfhe/aligned.h"

#if defined(__x86_64__) || defined(__i386__)
#define FHEML_FFT_HAVE_X86 1
#endif

namespace fheml::tfhe::detail {

// Depth-first leaves: blocks of at most this many complex points (16 KiB) are finished in L1.
inline constexpr std::size_t kLeafPoints = 1024;

struct FftTables {
  struct Pass {
    std::size_t quarter;  // q: this pass runs the stages of distance 2q and q
    std::size_t offset;   // into pass_twiddles (6q doubles, in loop order)
  };
  std::size_t m = 0;  // complex points (N/2)
  int width = 1;
  AlignedVector<double> twist;  // exp(+i pi j / N): re[M], im[M]
  // exp(-i pi j / N) / M: re[M], im[M]; with AVX-512 also times 2^-64 (see round_add).
  AlignedVector<double> untwist;
  std::vector<Pass> passes;  // forward order
  AlignedVector<double> pass_twiddles;
  std::size_t leaf_depth = 0;  // passes [0, leaf_depth) sweep the whole array
  std::size_t leaf = 0;        // points per leaf block for the later passes
  bool fused_stage = false;    // whether the final pass also runs the stage of distance W
  // Final pass, per lane: [fused stage w_{2W}^lane][stage g = W/2][g = W/4]...[g = 1]; each
  // entry re[W] then im[W].
  AlignedVector<double> lane_twiddles;
  // AVX-512 layout for M >= 64 (replaces the in-register stages): the radix-4 passes stop at
  // q = 64 (or q = 128 and a radix-2 stage of distance 64 when the stage count is odd), and
  // every block of 64 points is finished by transposed_final (see there).
  bool transposed_final = false;
  // [dif4 twiddles of q = 16: 2 groups of 6W][w_16^lane: re[W], im[W]]
  // [odd only: w_128^t, t < 64: 8 groups of re[W], im[W]]
  AlignedVector<double> final_twiddles;
};

// The digit of X^rotation * poly - subtrahend a forward transform reads (see RotatedDigitInput
// in fft_kernels.cpp); built and validated by FftPlan::forward_rotated_digit.
struct RotatedDigit {
  const std::uint64_t* poly;
  const std::uint64_t* subtrahend;  // poly itself for the classic CMux
  std::size_t rotation;             // in [0, N)
  std::uint64_t negate_all;         // all ones when the rotation was >= N, else 0
  unsigned shift;                   // 64 - base_log * levels
  unsigned base_log;
  unsigned below;  // digits below the one read
};

// Memory a transform asks the caches to fetch while it computes (the blind rotation's next GGSW,
// whose multiply would otherwise wait on it): [begin, end), spread over the transform's radix-4
// passes, into L2. Empty (the default): nothing.
struct Prefetch {
  const char* begin = nullptr;
  const char* end = nullptr;
};

// Kernel entry points, one set per SIMD level (fft_kernels.cpp); only these carry a target
// attribute. The AVX2 and AVX-512 ones must only be called where the CPU has the feature.
void forward_scalar(const FftTables& t, const std::uint64_t* in, double* out);
void backward_scalar(const FftTables& t, double* fourier, std::uint64_t* out, Prefetch prefetch);
void multiply_accumulate_scalar(std::size_t m, double* acc, const double* a, const double* b);
void forward_rotated_digit_scalar(const FftTables& t, const RotatedDigit& in, double* out,
                                  Prefetch prefetch);
void multiply_sum_scalar(std::size_t m, std::size_t rows, std::size_t cols, double* out,
                         const double* a, const double* b);
#ifdef FHEML_FFT_HAVE_X86
void forward_avx2(const FftTables& t, const std::uint64_t* in, double* out);
void backward_avx2(const FftTables& t, double* fourier, std::uint64_t* out, Prefetch prefetch);
void multiply_accumulate_avx2(std::size_t m, double* acc, const double* a, const double* b);
void forward_rotated_digit_avx2(const FftTables& t, const RotatedDigit& in, double* out,
                                Prefetch prefetch);
void multiply_sum_avx2(std::size_t m, std::size_t rows, std::size_t cols, double* out,
                       const double* a, const double* b);
void forward_avx512(const FftTables& t, const std::uint64_t* in, double* out);
void backward_avx512(const FftTables& t, double* fourier, std::uint64_t* out, Prefetch prefetch);
void multiply_accumulate_avx512(std::size_t m, double* acc, const double* a, const double* b);
void forward_rotated_digit_avx512(const FftTables& t, const RotatedDigit& in, double* out,
                                  Prefetch prefetch);
void multiply_sum_avx512(std::size_t m, std::size_t rows, std::size_t cols, double* out,
                         const double* a, const double* b);
#endif

}  // namespace fheml::tfhe::detail
