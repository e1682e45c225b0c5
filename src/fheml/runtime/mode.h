// The three ways to run a compiled circuit (see runtime.h).
#pragma once

#include <string_view>

namespace fheml::runtime {

enum class Mode { kDisable, kSimulate, kExecute };
// "disable", "simulate", "execute"
std::string_view mode_name(Mode mode);

}  // namespace fheml::runtime
