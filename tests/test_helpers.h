// Helpers shared by the C++ test suites.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "fheml/common/warnings.h"

namespace fheml::test {

// The message of the std::invalid_argument that `f` throws ("" when it does not throw).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// A fresh directory under the system's temporary directory, deleted with its content at the end.
class TempDir {
 public:
  explicit TempDir(const std::string& label) {
    static std::atomic<unsigned> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("fheml-" + label + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Collects what fheml::warn says while alive (then restores the previous handler).
class CapturedWarnings {
 public:
  CapturedWarnings()
      : previous_(set_warning_handler([this](WarningKind kind, const std::string& message) {
          std::lock_guard<std::mutex> lock(mutex_);
          seen_.emplace_back(kind, message);
        })) {}
  ~CapturedWarnings() { set_warning_handler(std::move(previous_)); }
  CapturedWarnings(const CapturedWarnings&) = delete;
  CapturedWarnings& operator=(const CapturedWarnings&) = delete;

  std::vector<std::string> of(WarningKind kind) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [k, m] : seen_)
      if (k == kind) out.push_back(m);
    return out;
  }

 private:
  WarningHandler previous_;
  mutable std::mutex mutex_;
  std::vector<std::pair<WarningKind, std::string>> seen_;
};

}  // namespace fheml::test
