// Memory that holds secrets (key coefficients, their FFT forms, serialized keys) is wiped before
// it returns to the allocator: a freed page or a heap reuse never shows a secret key.
#pragma once

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace fheml::tfhe {

// std::allocator that zeroes every block it frees (sodium_memzero: not optimized away). Vectors
// of it zero their old buffer when they grow, and their whole buffer when destroyed.
template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <class U>
  constexpr WipingAllocator(const WipingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    sodium_memzero(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  template <class U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};

// Secret key coefficients (0 or 1, one word each).
using SecretWords = std::vector<std::uint64_t, WipingAllocator<std::uint64_t>>;
template <class T>
using SecretVector = std::vector<T, WipingAllocator<T>>;

// Zeroes a buffer that held a secret (a serialized key) and leaves it empty.
template <class T, class A>
void wipe(std::vector<T, A>& v) noexcept {
  if (!v.empty()) sodium_memzero(v.data(), v.size() * sizeof(T));
  v.clear();
}

}  // namespace fheml::tfhe
