#include "fheml/tfhe/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fheml/tfhe/aligned.h"
#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/parameters.h"
#include "test_support.h"

namespace fheml::tfhe {
namespace {

bool huge_page_aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % detail::kHugePageBytes == 0;
}

// The VmFlags line of the mapping holding p in /proc/self/smaps ("" when not found).
std::string vm_flags_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= address && address < end;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

TEST(HugePages, LargeKeysAreAlignedAndAdvisedSmallOnesAreOrdinary) {
  KeyVector<double> large(detail::kHugePageBytes / sizeof(double) + 3, 1.5);
  EXPECT_TRUE(huge_page_aligned(large.data()));
  EXPECT_EQ(large.back(), 1.5);
  KeyVector<std::uint32_t> small(100, 7);
  EXPECT_EQ(small[99], 7u);
  // Growing moves a vector between the two paths; its contents must follow.
  small.resize(detail::kHugePageBytes / sizeof(std::uint32_t), 9);
  EXPECT_TRUE(huge_page_aligned(small.data()));
  EXPECT_EQ(small[99], 7u);
  EXPECT_EQ(small.back(), 9u);
#if defined(__linux__)
  // madvise(MADV_HUGEPAGE) marks the mapping "hg" whatever the system's THP mode, wherever the
  // kernel has transparent huge pages at all.
  if (std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled").good()) {
    EXPECT_NE(vm_flags_of(large.data()).find(" hg"), std::string::npos)
        << vm_flags_of(large.data());
  }
#endif
}

// What the server streams: the Fourier bootstrap key and the key switching key's compute form.
TEST(HugePages, ServerKeysLiveOnThem) {
  const auto& keys = test::keys_for(default_parameters(MessageBits{4}));
  EXPECT_TRUE(huge_page_aligned(keys.server.bootstrap_key.data.data()));
  EXPECT_TRUE(huge_page_aligned(keys.server.keyswitch_key.data.data()));
}

}  // namespace
}  // namespace fheml::tfhe

namespace fheml::tfhe {
namespace {

bool cache_line_aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % kCacheLineBytes == 0;
}

// The buffers the transforms stream (scratch, tables, keys below a huge page) start on a cache
// line, whatever the size and however many other allocations came first.
TEST(AlignedBuffers, StartOnACacheLine) {
  std::vector<std::vector<char>> clutter;
  for (std::size_t size : {1u, 3u, 17u, 100u, 1000u, 4097u, 70000u}) {
    clutter.emplace_back(size);  // moves malloc's next address around
    AlignedVector<double> doubles(size);
    AlignedVector<std::int64_t> words(size + 1);
    KeyVector<std::uint32_t> small_key(size);
    EXPECT_TRUE(cache_line_aligned(doubles.data())) << size;
    EXPECT_TRUE(cache_line_aligned(words.data())) << size;
    EXPECT_TRUE(cache_line_aligned(small_key.data())) << size;
    doubles.resize(3 * size + 5);  // and after a reallocation
    EXPECT_TRUE(cache_line_aligned(doubles.data())) << size;
  }
}

}  // namespace
}  // namespace fheml::tfhe
