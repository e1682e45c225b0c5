// The two error channels of the library (see shared/style.md):
// - bad input from outside (user arrays, files, network bytes): std::invalid_argument or
//   std::runtime_error with a message saying what was expected, what was found, what to do;
// - a caller's broken precondition inside the library: FHEML_ASSERT_EQ, which also throws
//   (std::logic_error) rather than aborting, so a Python process survives a library bug, and
//   prints both values.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fheml {

[[noreturn]] void throw_invalid_argument(const std::string& message);

// "what: expected E, found F"
[[noreturn]] void throw_size_mismatch(const char* what, std::uint64_t expected,
                                      std::uint64_t found);

inline void require_size(const char* what, std::uint64_t expected, std::uint64_t found) {
  if (expected != found) throw_size_mismatch(what, expected, found);
}

[[noreturn]] void assertion_failed(const char* expression, std::uint64_t left, std::uint64_t right,
                                   const char* file, int line);

}  // namespace fheml

#define FHEML_ASSERT_EQ(a, b)                                                                  \
  do {                                                                                         \
    const auto fheml_left_ = (a);                                                              \
    const auto fheml_right_ = (b);                                                             \
    if (!(fheml_left_ == fheml_right_))                                                        \
      ::fheml::assertion_failed(#a " == " #b, static_cast<std::uint64_t>(fheml_left_),         \
                                static_cast<std::uint64_t>(fheml_right_), __FILE__, __LINE__); \
  } while (0)
