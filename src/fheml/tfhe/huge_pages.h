// Storage for the server's evaluation keys on transparent huge pages.
//
// A bootstrap streams its whole key once (48 MiB at 4 bits, 2 GiB at 8) and a key switch its
// whole key switching key; on 4 KiB pages that is one TLB miss (and one page walk) per 4 KiB,
// and the hardware prefetchers stop at every page boundary. Measured on the standard machine's
// kind (bench/README.md, "Keys on huge pages"): KS+PBS 0.84-0.96x at 1-6 bits (4 bits: 14.9 ->
// 12.9 ms), the key switch 0.70-0.82x; no change at 7-8 bits, bound by their transforms.
//
// Linux gives huge pages to an anonymous mapping aligned to 2 MiB when it is asked to with
// madvise(MADV_HUGEPAGE) (Debian's default THP mode is "madvise", so nothing happens unless we
// ask). Allocations of at least one huge page are aligned and advised; smaller ones, and other
// systems, get the ordinary allocator. Nothing else changes: a KeyVector is a std::vector.
// (No library does this one call for std::vector; the standard's allocator has no hint.)
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "fheml/tfhe/aligned.h"

namespace fheml::tfhe {

namespace detail {
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
// Aligned to a huge page and advised (Linux); nullptr never (throws std::bad_alloc).
void* allocate_huge(std::size_t bytes);
void free_huge(void* p) noexcept;
}  // namespace detail

template <class T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() noexcept = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    if (count > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    const std::size_t bytes = count * sizeof(T);
    // Cache-line aligned, as the kernels load it.
    if (bytes < detail::kHugePageBytes) return CacheAlignedAllocator<T>().allocate(count);
    return static_cast<T*>(detail::allocate_huge(bytes));
  }

  void deallocate(T* p, std::size_t count) noexcept {
    if (count * sizeof(T) < detail::kHugePageBytes) {
      CacheAlignedAllocator<T>().deallocate(p, count);
    } else {
      detail::free_huge(p);
    }
  }

  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

// The owned form of a large evaluation key the server streams (Fourier bootstrap key, key
// switching key in compute form).
template <class T>
using KeyVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace fheml::tfhe
