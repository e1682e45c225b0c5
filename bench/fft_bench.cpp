// Negacyclic FFT kernels, one thread, for every SIMD level this CPU supports.
// Buffers are 64-byte aligned, as the library's own buffers should be.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <span>
#include <string>

#include "fheml/tfhe/fft.h"

namespace fheml::tfhe {
namespace {

template <class T>
struct AlignedBuffer {
  explicit AlignedBuffer(std::size_t n)
      : size(n), data(static_cast<T*>(::operator new[](n * sizeof(T), std::align_val_t{64}))) {}
  ~AlignedBuffer() { ::operator delete[](data, std::align_val_t{64}); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  std::span<T> span() { return {data, size}; }
  std::size_t size;
  T* data;
};

struct Inputs {
  explicit Inputs(const FftPlan& plan)
      : n(plan.polynomial_size().value),
        torus(n),
        digits(n),
        poly(n),
        fourier(plan.fourier_doubles()),
        a(plan.fourier_doubles()),
        b(plan.fourier_doubles()) {
    std::mt19937_64 rng(1);
    for (std::size_t i = 0; i < n; ++i) {
      torus.data[i] = rng();
      digits.data[i] = static_cast<std::int64_t>(rng() % (1u << 23)) - (1 << 22);
      poly.data[i] = 0;
    }
    plan.forward_torus(torus.span(), a.span());
    plan.forward_int(digits.span(), b.span());
    plan.forward_int(digits.span(), fourier.span());
  }
  std::size_t n;
  AlignedBuffer<Torus> torus;
  AlignedBuffer<std::int64_t> digits;
  AlignedBuffer<Torus> poly;
  AlignedBuffer<double> fourier;
  AlignedBuffer<double> a;
  AlignedBuffer<double> b;
};

const FftPlan& plan_for(const benchmark::State& state) {
  return FftPlan::get(PolynomialSize{static_cast<std::size_t>(state.range(0))},
                      static_cast<SimdLevel>(state.range(1)));
}

void BM_ForwardInt(benchmark::State& state) {
  const FftPlan& plan = plan_for(state);
  Inputs in(plan);
  for (auto _ : state) {
    plan.forward_int(in.digits.span(), in.fourier.span());
    benchmark::DoNotOptimize(in.fourier.data);
    benchmark::ClobberMemory();
  }
}

void BM_ForwardTorus(benchmark::State& state) {
  const FftPlan& plan = plan_for(state);
  Inputs in(plan);
  for (auto _ : state) {
    plan.forward_torus(in.torus.span(), in.fourier.span());
    benchmark::DoNotOptimize(in.fourier.data);
    benchmark::ClobberMemory();
  }
}

// The blind rotation's forward transform: digit 0 of a one-level (2^23) decomposition of
// X^a * p - p, rotation and decomposition read by the first pass (compare with BM_ForwardInt).
void BM_ForwardRotatedDigit(benchmark::State& state) {
  const FftPlan& plan = plan_for(state);
  Inputs in(plan);
  std::size_t rotation = 1;
  for (auto _ : state) {
    plan.forward_rotated_digit(in.torus.span(), rotation, 23, 1, 0, in.fourier.span());
    rotation = (rotation * 5 + 3) % (2 * in.n);
    benchmark::DoNotOptimize(in.fourier.data);
    benchmark::ClobberMemory();
  }
}

void BM_BackwardAddTorus(benchmark::State& state) {
  const FftPlan& plan = plan_for(state);
  Inputs in(plan);
  // The Fourier input is clobbered, but the timing does not depend on its values.
  for (auto _ : state) {
    plan.backward_add_torus(in.fourier.span(), in.poly.span());
    benchmark::DoNotOptimize(in.poly.data);
    benchmark::ClobberMemory();
  }
}

// forward_int + backward_add_torus: the per-polynomial cost of an external product.
void BM_ForwardIntBackward(benchmark::State& state) {
  const FftPlan& plan = plan_for(state);
  Inputs in(plan);
  for (auto _ : state) {
    plan.forward_int(in.digits.span(), in.fourier.span());
    plan.backward_add_torus(in.fourier.span(), in.poly.span());
    benchmark::DoNotOptimize(in.poly.data);
    benchmark::ClobberMemory();
  }
}

void BM_MultiplyAccumulate(benchmark::State& state) {
  const FftPlan& plan = plan_for(state);
  Inputs in(plan);
  for (auto _ : state) {
    plan.multiply_accumulate(in.fourier.span(), in.a.span(), in.b.span());
    benchmark::DoNotOptimize(in.fourier.data);
    benchmark::ClobberMemory();
  }
  // Bytes touched: read acc, a, b and write acc.
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 4 *
                          static_cast<std::int64_t>(plan.fourier_doubles() * sizeof(double)));
}

// An external product's products for k = 1, one level (2 rows, 2 columns), hot in cache: the
// part of a CMux that the blind rotation's key prefetch lets run from L2.
void BM_MultiplySum2x2(benchmark::State& state) {
  const FftPlan& plan = plan_for(state);
  const std::size_t n = plan.fourier_doubles();
  AlignedBuffer<double> digits(2 * n), ggsw(4 * n), out(2 * n);
  Inputs in(plan);
  for (std::size_t p = 0; p < 2; ++p) std::copy_n(in.b.data, n, digits.data + p * n);
  for (std::size_t p = 0; p < 4; ++p) std::copy_n(in.a.data, n, ggsw.data + p * n);
  for (auto _ : state) {
    plan.multiply_sum(out.span(), digits.span(), ggsw.span(), 2, 2);
    benchmark::DoNotOptimize(out.data);
    benchmark::ClobberMemory();
  }
}

void sizes_and_levels(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "level"});
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2Fma, SimdLevel::kAvx512}) {
    if (!cpu_supports(level)) continue;
    for (std::int64_t n : {1024, 2048, 4096, 16384, 32768}) {
      b->Args({n, static_cast<std::int64_t>(level)});
    }
  }
}

BENCHMARK(BM_ForwardInt)->Apply(sizes_and_levels);
BENCHMARK(BM_ForwardTorus)->Apply(sizes_and_levels);
BENCHMARK(BM_ForwardRotatedDigit)->Apply(sizes_and_levels);
BENCHMARK(BM_BackwardAddTorus)->Apply(sizes_and_levels);
BENCHMARK(BM_ForwardIntBackward)->Apply(sizes_and_levels);
BENCHMARK(BM_MultiplyAccumulate)->Apply(sizes_and_levels);
BENCHMARK(BM_MultiplySum2x2)->Apply(sizes_and_levels);

}  // namespace
}  // namespace fheml::tfhe
