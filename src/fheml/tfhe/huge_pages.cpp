#include "fheml/tfhe/huge_pages.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fheml::tfhe::detail {

void* allocate_huge(std::size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; the tail of the last huge page is unused.
  const std::size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (rounded < bytes) throw std::bad_alloc();
  void* p = std::aligned_alloc(kHugePageBytes, rounded);
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Advice only: without THP (or with it "never") the pages stay 4 KiB and everything works.
  (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

void free_huge(void* p) noexcept { std::free(p); }

}  // namespace fheml::tfhe::detail
