#include "fheml/common/warnings.h"

#include <iostream>
#include <mutex>
#include <utility>

namespace fheml {
namespace {

std::mutex& handler_mutex() {
  static std::mutex m;
  return m;
}

WarningHandler& handler_slot() {
  static WarningHandler handler;
  return handler;
}

}  // namespace

WarningHandler set_warning_handler(WarningHandler handler) {
  std::lock_guard<std::mutex> lock(handler_mutex());
  return std::exchange(handler_slot(), std::move(handler));
}

void warn(WarningKind kind, const std::string& message) {
  WarningHandler handler;
  {
    // A copy, called outside the lock: a handler may take its own locks (Python's GIL) or
    // install another handler.
    std::lock_guard<std::mutex> lock(handler_mutex());
    handler = handler_slot();
  }
  if (handler) {
    handler(kind, message);
    return;
  }
  std::clog << "fheml warning: " << message << '\n';
}

}  // namespace fheml
