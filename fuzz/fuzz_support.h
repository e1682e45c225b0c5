// Shared driver of the deserialization fuzz targets. Each input is tried twice per loader: as
// is (exercises the envelope checks), and with the envelope repaired (magic, version, object
// type, payload length and checksum made valid) so that the fuzzer reaches the payload parser
// instead of stopping at the checksum every time. Only DeserializationError may escape a loader;
// anything else (another exception, a crash, a sanitizer report) is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fheml/tfhe/serialization.h"
#include "fheml/tfhe/wire.h"

namespace fheml::fuzz {

inline std::vector<std::uint8_t> repaired(std::span<const std::uint8_t> input,
                                          tfhe::ObjectType type) {
  using namespace tfhe;
  std::vector<std::uint8_t> b(input.begin(), input.end());
  if (b.size() < kEnvelopeOverheadBytes) b.resize(kEnvelopeOverheadBytes, 0);
  const std::uint8_t magic[8] = {0x89, 'F', 'H', 'E', 'M', 'L', 0x0D, 0x0A};
  for (std::size_t i = 0; i < 8; ++i) b[i] = magic[i];
  b[8] = 1;
  b[9] = 0;
  b[10] = static_cast<std::uint8_t>(static_cast<std::uint16_t>(type));
  b[11] = static_cast<std::uint8_t>(static_cast<std::uint16_t>(type) >> 8);
  const std::uint64_t payload = b.size() - kEnvelopeOverheadBytes;
  for (std::size_t i = 0; i < 8; ++i) b[20 + i] = static_cast<std::uint8_t>(payload >> (8 * i));
  const std::size_t body = b.size() - kEnvelopeChecksumBytes;
  const auto sum = wire::checksum(std::span<const std::uint8_t>(b).first(body));
  for (std::size_t i = 0; i < sum.size(); ++i) b[body + i] = sum[i];
  return b;
}

template <class LoadFn>
void exercise(std::span<const std::uint8_t> input, tfhe::ObjectType type, LoadFn load) {
  using namespace tfhe;
  // Small limit: fuzz inputs are small, and a loader must never need more than the input.
  // Insecure sets allowed, so that the (toy) corpus parses deep into the payloads.
  const DeserializeOptions options{nullptr, std::uint64_t{1} << 24, true};
  static const PbsParameters expected = default_parameters(MessageBits{2});
  const DeserializeOptions with_parameters{&expected, std::uint64_t{1} << 24};
  try {
    (void)load(input, options);
  } catch (const DeserializationError&) {
  }
  const std::vector<std::uint8_t> fixed = repaired(input, type);
  for (const DeserializeOptions* o : {&options, &with_parameters}) {
    try {
      (void)load(fixed, *o);
    } catch (const DeserializationError&) {
    }
  }
}

}  // namespace fheml::fuzz
