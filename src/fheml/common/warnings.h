// Warnings: what the library does on the user's behalf and the user should know about, but that
// is not an error (values clipped to a model's range, a key directory others can read).
//
// One process-wide handler receives them. The default writes "fheml warning: ..." to std::clog;
// the Python bindings install one that issues a Python warning of the matching category
// (fheml.InputRangeWarning, fheml.KeyPermissionWarning), so `warnings.filterwarnings` applies.
// A handler may throw (Python's "error" filter turns a warning into an exception): warn() lets it
// through, and its callers emit warnings only at points where throwing loses nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace fheml {

enum class WarningKind : std::uint8_t {
  kInputRange,      // input values beyond what a quantizer represents were clipped
  kKeyPermissions,  // a key directory or file readable by others
};

using WarningHandler = std::function<void(WarningKind, const std::string&)>;

// Installs `handler` (an empty one restores the default) and returns the previous one.
WarningHandler set_warning_handler(WarningHandler handler);

void warn(WarningKind kind, const std::string& message);

}  // namespace fheml
