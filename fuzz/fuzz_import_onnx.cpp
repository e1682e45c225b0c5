// libFuzzer target: the ONNX importer on arbitrary bytes. Every input must give a model or an
// OnnxImportError; anything else (a crash, another exception, a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fheml/models/onnx_import.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fheml::models::OnnxImportOptions options;
  options.max_tensor_elements = std::size_t{1} << 20;  // keeps each run's memory small
  try {
    (void)fheml::models::import_onnx(std::span<const std::uint8_t>(data, size), options);
  } catch (const fheml::models::OnnxImportError&) {
  }
  return 0;
}
