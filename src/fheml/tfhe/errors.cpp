#include "fheml/tfhe/errors.h"

namespace fheml {

void throw_invalid_argument(const std::string& message) { throw std::invalid_argument(message); }

void throw_size_mismatch(const char* what, std::uint64_t expected, std::uint64_t found) {
  throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(expected) +
                              ", found " + std::to_string(found));
}

void assertion_failed(const char* expression, std::uint64_t left, std::uint64_t right,
                      const char* file, int line) {
  throw std::logic_error(std::string("internal check failed: ") + expression + " (" +
                         std::to_string(left) + " vs " + std::to_string(right) + ") at " + file +
                         ":" + std::to_string(line));
}

}  // namespace fheml
