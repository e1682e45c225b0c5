// Cache-line-aligned storage for the buffers the FFT kernels stream through.
//
// std::allocator (glibc malloc) gives 16-byte alignment, so a 64-byte AVX-512 load or store of a
// malloc'd polynomial straddles two cache lines three times out of four: measured on the standard
// machine's kind, the blind rotation's forward transform runs 2.29-2.37 us per 2048-coefficient
// polynomial on buffers 16 bytes off a cache line against 1.98-2.05 us on aligned ones
// (bench/README.md, "Aligned buffers"). Every polynomial in these buffers starts at a multiple of
// N words, so aligning the buffer aligns all of them. (C++17's aligned operator new does the
// work; the standard library just has no allocator that asks for it.)
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace fheml::tfhe {

inline constexpr std::size_t kCacheLineBytes = 64;

template <class T>
struct CacheAlignedAllocator {
  using value_type = T;

  CacheAlignedAllocator() noexcept = default;
  template <class U>
  CacheAlignedAllocator(const CacheAlignedAllocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    if (count > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t{kCacheLineBytes}));
  }

  void deallocate(T* p, std::size_t) noexcept {
    ::operator delete(p, std::align_val_t{kCacheLineBytes});
  }

  template <class U>
  bool operator==(const CacheAlignedAllocator<U>&) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheAlignedAllocator<T>>;

}  // namespace fheml::tfhe
